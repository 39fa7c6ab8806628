"""Server start, stop and wait, and where endpoint methods run."""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import threading
import time
from typing import Any

import pytest
from harness import TOPIC, WAIT_SECONDS, Api, AsyncApi, SyncApi, wait_until

import leveret


class Worker:
    def __init__(self) -> None:
        self.started = threading.Event()
        self.finished = threading.Event()
        self.lock = threading.Lock()
        self.active = 0
        self.max_active = 0

    def echo(self, value: Any) -> Any:
        return value

    def busy(self) -> str:
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        time.sleep(0.1)
        with self.lock:
            self.active -= 1
        return threading.current_thread().name

    def finish_late(self) -> str:
        self.started.set()
        time.sleep(0.3)
        self.finished.set()
        return "finished"

    async def where_async(self) -> tuple[int, str]:
        return id(asyncio.get_running_loop()), threading.current_thread().name

    def where_sync(self) -> str:
        return threading.current_thread().name


def test_server_start_stop_wait(url: str) -> None:
    transport = leveret.get_transport(url)
    try:
        server = leveret.RPCServer(transport, leveret.Target(topic=TOPIC), [Worker()])
        assert server.wait(0) is False
        server.start()
        client = leveret.RPCClient(transport, leveret.Target(topic=TOPIC), timeout=20)
        assert client.call("echo", value=1) == 1
        assert server.wait(0.05) is False
        server.stop()
        assert server.wait(WAIT_SECONDS) is True
        with pytest.raises(leveret.NoServerError):
            client.call("echo", value=1)
        server.stop()  # a second stop does nothing
        with pytest.raises(leveret.TransportClosed, match="create a new server"):
            server.start()
    finally:
        transport.close()


def test_async_server_start_stop_wait(url: str) -> None:
    async def scenario() -> None:
        transport = leveret.get_transport(url)
        try:
            server = leveret.AsyncRPCServer(
                transport, leveret.Target(topic=TOPIC), [Worker()]
            )
            await server.start()
            client = leveret.AsyncRPCClient(
                transport, leveret.Target(topic=TOPIC), timeout=20
            )
            assert await client.call("echo", value=1) == 1
            waiter = asyncio.create_task(server.wait())
            await asyncio.sleep(0.05)
            assert not waiter.done()
            await server.stop()
            await asyncio.wait_for(waiter, WAIT_SECONDS)
            with pytest.raises(leveret.NoServerError):
                await client.call("echo", value=1)
            await server.stop()
            with pytest.raises(leveret.TransportClosed, match="create a new server"):
                await server.start()
        finally:
            await transport.aclose()

    asyncio.run(scenario())


def test_server_context_manager(url: str) -> None:
    transport = leveret.get_transport(url)
    try:
        client = leveret.RPCClient(transport, leveret.Target(topic=TOPIC), timeout=20)
        target = leveret.Target(topic=TOPIC, server="cm")
        with leveret.RPCServer(transport, target, [Worker()]) as server:
            assert server.server_name == "cm"
            assert client.call("echo", value=2) == 2
        assert server.wait(0) is True
        with pytest.raises(leveret.NoServerError):
            client.call("echo", value=2)
    finally:
        transport.close()


def test_async_server_context_manager(url: str) -> None:
    async def scenario() -> None:
        transport = leveret.get_transport(url)
        client = leveret.AsyncRPCClient(
            transport, leveret.Target(topic=TOPIC), timeout=20
        )
        try:
            target = leveret.Target(topic=TOPIC, server="cm")
            async with leveret.AsyncRPCServer(transport, target, [Worker()]):
                assert await client.call("echo", value=2) == 2
            with pytest.raises(leveret.NoServerError):
                await client.call("echo", value=2)
        finally:
            await transport.aclose()

    asyncio.run(scenario())


def test_server_name_defaults_to_host(transport: leveret.Transport) -> None:
    server = leveret.RPCServer(transport, leveret.Target(topic=TOPIC), [Worker()])
    assert server.server_name == socket.gethostname()


def test_stop_lets_request_finish(api: Api) -> None:
    worker = Worker()
    server = api.serve([worker], grace_period=WAIT_SECONDS)
    client = api.client()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(api.call, client, "finish_late")
        assert worker.started.wait(WAIT_SECONDS)
        api.stop(server)
        assert worker.finished.is_set()  # stop waited for the method
        assert pending.result(WAIT_SECONDS) == "finished"


def test_stop_cancels_after_grace(api: Api) -> None:
    release = threading.Event()

    class Stuck:
        async def stuck(self) -> str:
            release.set()
            await asyncio.sleep(WAIT_SECONDS * 10)
            return "never"

    server = api.serve([Stuck()], grace_period=0.1)
    client = api.client(timeout=WAIT_SECONDS)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(api.call, client, "stuck")
        assert release.wait(WAIT_SECONDS)
        api.stop(server)
        # The server's failure reply, not the caller's own deadline.
        with pytest.raises(leveret.MessagingTimeout, match="stopped before stuck"):
            pending.result(WAIT_SECONDS)


def test_sync_methods_bounded_pool(api: Api) -> None:
    worker = Worker()
    api.serve([worker], max_workers=2)
    names = api.call_concurrently(api.client(), "busy", [(None, {})] * 8)
    assert worker.max_active == 2
    assert len(set(names)) == 2
    assert all(name.startswith(f"leveret-{TOPIC}") for name in names)


def test_async_methods_run_on_loop(api: Api) -> None:
    api.serve([Worker()])
    loop_id, thread_name = api.call(api.client(), "where_async")
    if isinstance(api, AsyncApi):
        # The loop the server was started on.
        assert loop_id == id(api.loop)
        assert thread_name == "unit-app-loop"
    else:
        loop = api.transport.binding.loop
        assert loop is not None
        assert loop_id == id(loop)
        assert thread_name.startswith("leveret-")
    assert api.call(api.client(), "where_sync") != thread_name


@pytest.mark.parametrize("max_workers", [0, -1])
def test_bad_max_workers_rejected(
    transport: leveret.Transport, max_workers: int
) -> None:
    with pytest.raises(leveret.ConfigurationError, match="max_workers"):
        leveret.RPCServer(
            transport, leveret.Target(topic=TOPIC), [Worker()], max_workers=max_workers
        )


@pytest.mark.parametrize(
    "options",
    [
        {"prefetch": 0},
        {"prefetch": 70_000},
        {"max_redeliveries": -1},
        {"grace_period": -1.0},
        {"grace_period": float("nan")},
        {"grace_period": "3"},
        {"grace_period": 10**400},
        {"prefetch": 1.5},
        {"max_redeliveries": float("inf")},
        {"max_redeliveries": 1.5},
        {"max_workers": "4"},
        {"max_workers": True},
    ],
)
def test_bad_server_options_rejected(
    transport: leveret.Transport, options: dict[str, Any]
) -> None:
    with pytest.raises(leveret.InvalidTarget, match=next(iter(options))):
        leveret.RPCServer(transport, leveret.Target(topic=TOPIC), [Worker()], **options)


@pytest.mark.parametrize("limit", [0, 1.5, True, "x"])
def test_bad_server_message_limit_rejected(
    transport: leveret.Transport, limit: object
) -> None:
    with pytest.raises(leveret.ConfigurationError, match="max_message_bytes"):
        leveret.RPCServer(
            transport,
            leveret.Target(topic=TOPIC),
            [Worker()],
            max_message_bytes=limit,  # type: ignore[arg-type]
        )


def test_async_client_other_loop(url: str) -> None:
    api = SyncApi(leveret.get_transport(url))
    try:
        api.serve([Worker()])

        async def call_from_own_loop() -> Any:
            client = leveret.AsyncRPCClient(
                api.transport, leveret.Target(topic=TOPIC), timeout=20
            )
            return await client.call("echo", value="across loops")

        assert asyncio.run(call_from_own_loop()) == "across loops"
    finally:
        api.close()


def test_blocking_call_on_loop_rejected(url: str) -> None:
    async def scenario() -> None:
        transport = leveret.get_transport(url)
        try:
            async with leveret.AsyncRPCServer(
                transport, leveret.Target(topic=TOPIC), [Worker()]
            ):
                client = leveret.RPCClient(transport, leveret.Target(topic=TOPIC))
                with pytest.raises(RuntimeError, match="deadlock"):
                    client.call("echo", value=1)
        finally:
            await transport.aclose()

    asyncio.run(scenario())


def test_transport_of_finished_loop_rejected(url: str) -> None:
    transport = leveret.get_transport(url)

    async def bind() -> None:
        await leveret.AsyncRPCServer(
            transport, leveret.Target(topic=TOPIC), [Worker()]
        ).start()

    asyncio.run(bind())
    try:
        client = leveret.RPCClient(transport, leveret.Target(topic=TOPIC))
        with pytest.raises(leveret.TransportClosed, match="one transport per"):
            client.call("echo", value=1)
    finally:
        transport.close()


def test_close_fails_pending_call(api: Api) -> None:
    release = threading.Event()

    class Blocking:
        def block(self) -> None:
            release.wait(WAIT_SECONDS)

    api.serve([Blocking()])
    client = api.client()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(api.call, client, "block")
        assert wait_until(lambda: len(api.transport.replies) == 1)
        try:
            api.close_transport()
            with pytest.raises(leveret.TransportClosed):
                pending.result(WAIT_SECONDS)
        finally:
            release.set()
