"""Drive the blocking and the asyncio API through one interface.

Tests that apply to both APIs take the ``api`` fixture and run twice.
:class:`SyncApi` calls ``RPCClient`` and ``RPCServer`` from the test's thread.
:class:`AsyncApi` awaits ``AsyncRPCClient`` and ``AsyncRPCServer`` on an
application event loop in a thread of its own, and the transport binds to it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

import leveret

T = TypeVar("T")

TOPIC = "unit-topic"
# Seconds a test waits for something that should happen at once. Only a hang
# reaches it.
WAIT_SECONDS = 20.0
# Seconds stop() waits for requests in progress. Tests release their slow
# methods before teardown, so only a hang reaches it.
GRACE_SECONDS = 10.0


def wait_until(condition: Callable[[], bool], seconds: float = WAIT_SECONDS) -> bool:
    """Poll *condition* until it holds, or return False after *seconds*."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


class SyncApi:
    """The blocking API: ``RPCServer`` and ``RPCClient``."""

    name = "sync"

    def __init__(self, transport: leveret.Transport) -> None:
        self.transport = transport
        self._servers: list[leveret.RPCServer] = []

    def serve(
        self,
        endpoints: Sequence[object],
        *,
        topic: str = TOPIC,
        server: str = "server-1",
        **options: Any,
    ) -> leveret.RPCServer:
        """Start a server of *topic*, which teardown stops."""
        options.setdefault("grace_period", GRACE_SECONDS)
        rpc_server = leveret.RPCServer(
            self.transport,
            leveret.Target(topic=topic, server=server),
            endpoints,
            **options,
        )
        rpc_server.start()
        self._servers.append(rpc_server)
        return rpc_server

    def stop(self, rpc_server: Any) -> None:
        rpc_server.stop()

    def client(self, *, topic: str = TOPIC, **options: Any) -> leveret.RPCClient:
        options.setdefault("timeout", WAIT_SECONDS)
        return leveret.RPCClient(self.transport, leveret.Target(topic=topic), **options)

    def call(self, client: Any, method: str, /, **kwargs: Any) -> Any:
        return client.call(method, **kwargs)

    def call_bound(
        self,
        context: leveret.RequestContext | None,
        client: Any,
        method: str,
        /,
        **kwargs: Any,
    ) -> Any:
        """Call *method* with *context* bound in the calling thread."""
        with leveret.bind_context(context):
            return client.call(method, **kwargs)

    def call_concurrently(
        self,
        client: Any,
        method: str,
        calls: Sequence[tuple[leveret.RequestContext | None, dict[str, Any]]],
    ) -> list[Any]:
        """Make one call per ``(bound context, kwargs)`` pair, each in its own
        thread; return the results in order."""
        with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
            futures = [
                pool.submit(self.call_bound, context, client, method, **kwargs)
                for context, kwargs in calls
            ]
            return [future.result() for future in futures]

    def cast(self, client: Any, method: str, /, **kwargs: Any) -> None:
        client.cast(method, **kwargs)

    def stream(
        self,
        client: Any,
        method: str,
        /,
        *,
        take: int | None = None,
        close: bool = True,
        **kwargs: Any,
    ) -> tuple[list[Any], BaseException | None]:
        """Iterate a stream, and return its items and the exception that ended it.

        With *take*, stop after that many items and close the stream, unless
        *close* is false: then the stream is only dropped.
        """
        items: list[Any] = []
        try:
            stream = client.stream(method, **kwargs)
            with stream if close else contextlib.nullcontext(stream):
                for item in stream:
                    items.append(item)
                    if take is not None and len(items) == take:
                        break
        except Exception as exc:
            return items, exc
        return items, None

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run *coro* on the transport's loop (the blocking API's loop thread)."""
        return self.transport.binding.run_blocking(coro)

    def close_transport(self) -> None:
        self.transport.close()

    def close(self) -> None:
        # Stopping a server needs the transport's loop, which close() stops.
        if not self.transport.closed:
            for rpc_server in self._servers:
                rpc_server.stop()
        self.transport.close()


class AsyncApi:
    """The asyncio API: ``AsyncRPCServer`` and ``AsyncRPCClient``."""

    name = "async"

    def __init__(self, transport: leveret.Transport) -> None:
        self.transport = transport
        self._servers: list[leveret.AsyncRPCServer] = []
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="unit-app-loop", daemon=True
        )
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run *coro* on the application loop and return its result."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(WAIT_SECONDS * 3)

    def serve(
        self,
        endpoints: Sequence[object],
        *,
        topic: str = TOPIC,
        server: str = "server-1",
        **options: Any,
    ) -> leveret.AsyncRPCServer:
        options.setdefault("grace_period", GRACE_SECONDS)
        rpc_server = leveret.AsyncRPCServer(
            self.transport,
            leveret.Target(topic=topic, server=server),
            endpoints,
            **options,
        )
        self.run(rpc_server.start())
        self._servers.append(rpc_server)
        return rpc_server

    def stop(self, rpc_server: Any) -> None:
        self.run(rpc_server.stop())

    def client(self, *, topic: str = TOPIC, **options: Any) -> leveret.AsyncRPCClient:
        options.setdefault("timeout", WAIT_SECONDS)
        return leveret.AsyncRPCClient(
            self.transport, leveret.Target(topic=topic), **options
        )

    def call(self, client: Any, method: str, /, **kwargs: Any) -> Any:
        return self.run(client.call(method, **kwargs))

    async def _call_bound(
        self,
        context: leveret.RequestContext | None,
        client: Any,
        method: str,
        kwargs: dict[str, Any],
    ) -> Any:
        with leveret.bind_context(context):
            return await client.call(method, **kwargs)

    def call_bound(
        self,
        context: leveret.RequestContext | None,
        client: Any,
        method: str,
        /,
        **kwargs: Any,
    ) -> Any:
        """Call *method* with *context* bound in the calling task."""
        return self.run(self._call_bound(context, client, method, kwargs))

    def call_concurrently(
        self,
        client: Any,
        method: str,
        calls: Sequence[tuple[leveret.RequestContext | None, dict[str, Any]]],
    ) -> list[Any]:
        """Make one call per ``(bound context, kwargs)`` pair, each in its own
        task; return the results in order."""

        async def gather() -> list[Any]:
            tasks = [
                asyncio.create_task(self._call_bound(context, client, method, kwargs))
                for context, kwargs in calls
            ]
            return list(await asyncio.gather(*tasks))

        return self.run(gather())

    def cast(self, client: Any, method: str, /, **kwargs: Any) -> None:
        self.run(client.cast(method, **kwargs))

    async def _stream(
        self,
        client: Any,
        method: str,
        take: int | None,
        close: bool,
        kwargs: dict[str, Any],
    ) -> tuple[list[Any], BaseException | None]:
        items: list[Any] = []
        try:
            stream = client.stream(method, **kwargs)
            async with stream if close else contextlib.nullcontext(stream):
                async for item in stream:
                    items.append(item)
                    if take is not None and len(items) == take:
                        break
        except Exception as exc:
            return items, exc
        return items, None

    def stream(
        self,
        client: Any,
        method: str,
        /,
        *,
        take: int | None = None,
        close: bool = True,
        **kwargs: Any,
    ) -> tuple[list[Any], BaseException | None]:
        """Iterate a stream, and return its items and the exception that ended it."""
        return self.run(self._stream(client, method, take, close, kwargs))

    async def _cancel_remaining_tasks(self) -> None:
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.loop.shutdown_asyncgens()

    def close_transport(self) -> None:
        self.run(self.transport.aclose())

    def close(self) -> None:
        try:
            for rpc_server in self._servers:
                self.run(rpc_server.stop())
            self.run(self.transport.aclose())
            self.run(self._cancel_remaining_tasks())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(WAIT_SECONDS)
            self.loop.close()
            self.transport.close()


Api = SyncApi | AsyncApi
