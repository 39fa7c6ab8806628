"""Drive the blocking and the asyncio API against RabbitMQ through one interface.

Each test that applies to both APIs takes the ``api`` fixture and runs twice.
:class:`SyncApi` calls ``RPCClient`` and ``RPCServer`` from the test's thread.
:class:`AsyncApi` awaits ``AsyncRPCClient`` and ``AsyncRPCServer`` on an
application event loop in a thread of its own, not the transport's loop.
"""

from __future__ import annotations

import asyncio
import json
import pathlib
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

import leveret

T = TypeVar("T")

# Seconds a test waits for something that should happen at once, so only a
# hang reaches it.
WAIT_SECONDS = 20.0
# Seconds stop() waits for requests in progress at teardown.
GRACE_SECONDS = 5.0


def new_topic(prefix: str = "it") -> str:
    """Return a topic name no other test uses, so tests can share a broker."""
    return f"{prefix}-{uuid.uuid4().hex}"


def wait_until(condition: Callable[[], bool], seconds: float = WAIT_SECONDS) -> bool:
    """Poll *condition* until it holds; return False if *seconds* pass first."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def run_rabbitmqctl(state_dir: pathlib.Path, *arguments: str) -> str:
    """Run ``rabbitmqctl ARGUMENTS --quiet`` on the broker of *state_dir*.

    Returns what it prints. Works only for a broker a test started itself
    (``own_broker``), whose env file names it.
    """
    script = f'. "{state_dir}/env" && rabbitmqctl "$@" --quiet'
    result = subprocess.run(
        ["bash", "-c", script, "rabbitmqctl", *arguments],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"rabbitmqctl {arguments} failed: {result.stderr}"
    return result.stdout


def rabbitmqctl(state_dir: pathlib.Path, *arguments: str) -> list[dict[str, Any]]:
    """Run a ``rabbitmqctl list_*`` command; return the rows it prints."""
    output = run_rabbitmqctl(state_dir, *arguments, "--formatter", "json")
    rows: list[dict[str, Any]] = json.loads(output)
    return rows


class SyncApi:
    """The blocking API: ``RPCServer`` and ``RPCClient``."""

    name = "sync"

    def __init__(self, transport: leveret.Transport) -> None:
        self.transport = transport
        self._servers: list[leveret.RPCServer] = []

    def serve(
        self,
        topic: str,
        endpoints: Sequence[object],
        *,
        server: str = "server-1",
        transport: leveret.Transport | None = None,
        **options: Any,
    ) -> leveret.RPCServer:
        """Start a server of *topic*; :meth:`close` stops it."""
        options.setdefault("grace_period", GRACE_SECONDS)
        rpc_server = leveret.RPCServer(
            transport or self.transport,
            leveret.Target(topic=topic, server=server),
            endpoints,
            **options,
        )
        rpc_server.start()
        self._servers.append(rpc_server)
        return rpc_server

    def client(self, topic: str, **options: Any) -> leveret.RPCClient:
        options.setdefault("timeout", WAIT_SECONDS)
        return leveret.RPCClient(self.transport, leveret.Target(topic=topic), **options)

    def call(self, client: Any, method: str, /, **kwargs: Any) -> Any:
        return client.call(method, **kwargs)

    def cast(self, client: Any, method: str, /, **kwargs: Any) -> None:
        client.cast(method, **kwargs)

    def stream(
        self, client: Any, method: str, /, *, take: int | None = None, **kwargs: Any
    ) -> tuple[list[Any], BaseException | None]:
        """Iterate a stream; return its items and the exception that ended it.

        With *take*, stop after that many items and close the stream.
        """
        items: list[Any] = []
        try:
            with client.stream(method, **kwargs) as stream:
                for item in stream:
                    items.append(item)
                    if take is not None and len(items) == take:
                        break
        except Exception as exc:
            return items, exc
        return items, None

    def close(self) -> None:
        for rpc_server in self._servers:
            rpc_server.stop()


class AsyncApi:
    """The asyncio API: ``AsyncRPCServer`` and ``AsyncRPCClient``."""

    name = "async"

    def __init__(self, transport: leveret.Transport) -> None:
        self.transport = transport
        self._servers: list[leveret.AsyncRPCServer] = []
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="integration-app-loop", daemon=True
        )
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run *coro* on the application loop and return its result."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(WAIT_SECONDS * 3)

    def serve(
        self,
        topic: str,
        endpoints: Sequence[object],
        *,
        server: str = "server-1",
        transport: leveret.Transport | None = None,
        **options: Any,
    ) -> leveret.AsyncRPCServer:
        options.setdefault("grace_period", GRACE_SECONDS)
        rpc_server = leveret.AsyncRPCServer(
            transport or self.transport,
            leveret.Target(topic=topic, server=server),
            endpoints,
            **options,
        )
        self.run(rpc_server.start())
        self._servers.append(rpc_server)
        return rpc_server

    def client(self, topic: str, **options: Any) -> leveret.AsyncRPCClient:
        options.setdefault("timeout", WAIT_SECONDS)
        return leveret.AsyncRPCClient(
            self.transport, leveret.Target(topic=topic), **options
        )

    def call(self, client: Any, method: str, /, **kwargs: Any) -> Any:
        return self.run(client.call(method, **kwargs))

    def cast(self, client: Any, method: str, /, **kwargs: Any) -> None:
        self.run(client.cast(method, **kwargs))

    async def _stream(
        self, client: Any, method: str, take: int | None, kwargs: dict[str, Any]
    ) -> tuple[list[Any], BaseException | None]:
        items: list[Any] = []
        try:
            async with client.stream(method, **kwargs) as stream:
                async for item in stream:
                    items.append(item)
                    if take is not None and len(items) == take:
                        break
        except Exception as exc:
            return items, exc
        return items, None

    def stream(
        self, client: Any, method: str, /, *, take: int | None = None, **kwargs: Any
    ) -> tuple[list[Any], BaseException | None]:
        return self.run(self._stream(client, method, take, kwargs))

    def close(self) -> None:
        try:
            for rpc_server in self._servers:
                if not rpc_server.transport.closed:
                    self.run(rpc_server.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(WAIT_SECONDS)
            self.loop.close()


Api = SyncApi | AsyncApi
