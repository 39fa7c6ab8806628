"""Calls, casts, fanout, streams and errors through a real RabbitMQ broker."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from broker_api import WAIT_SECONDS, Api, new_topic, wait_until

import leveret


class Service:
    """Endpoint methods the tests call; records what casts delivered."""

    def __init__(self, name: str = "server-1") -> None:
        self.name = name
        self.received: list[Any] = []
        self.generator_closed = threading.Event()

    def add(self, a: int, b: int) -> int:
        return a + b

    def whoami(self) -> str:
        return self.name

    def echo(self, value: Any) -> Any:
        return value

    def record(self, value: Any) -> None:
        self.received.append(value)

    def fail(self, message: str) -> None:
        raise ValueError(message)

    def fail_custom(self) -> None:
        raise CustomError("custom failure")

    def sleep_then_return(self, seconds: float, value: Any) -> Any:
        time.sleep(seconds)
        return value

    async def add_async(self, a: int, b: int) -> int:
        await asyncio.sleep(0)
        return a + b

    def count(self, n: int) -> Iterator[int]:
        yield from range(n)

    async def count_async(self, n: int) -> AsyncIterator[int]:
        for i in range(n):
            await asyncio.sleep(0)
            yield i

    def with_none(self) -> Iterator[Any]:
        yield None
        yield 1
        yield None

    def fail_after_two(self) -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("broke at item 3")

    def endless(self) -> Iterator[int]:
        try:
            i = 0
            while True:
                yield i
                i += 1
                time.sleep(0.01)
        finally:
            self.generator_closed.set()


class CustomError(Exception):
    """An exception type the client does not allow, so it arrives as RemoteError."""


class VersionedService:
    target = leveret.Target(namespace="inventory", version="2.3")

    def describe(self) -> str:
        return "inventory 2.3"


class DefaultService:
    def describe(self) -> str:
        return "default 1.0"


# Calls and casts.


def test_call_returns_result(api: Api) -> None:
    topic = new_topic()
    api.serve(topic, [Service()])
    client = api.client(topic)

    assert api.call(client, "add", a=2, b=3) == 5


def test_call_async_method(api: Api) -> None:
    topic = new_topic()
    api.serve(topic, [Service()])
    client = api.client(topic)

    assert api.call(client, "add_async", a=4, b=5) == 9


def test_cast_runs_method(api: Api) -> None:
    topic = new_topic()
    service = Service()
    api.serve(topic, [service])
    client = api.client(topic)

    api.cast(client, "record", value="hello")

    assert wait_until(lambda: service.received == ["hello"])


def test_fanout_cast_reaches_three_servers(
    api: Api, amqp_url: str, make_transport: Callable[[str], leveret.Transport]
) -> None:
    topic = new_topic()
    services = [Service(f"server-{i}") for i in range(3)]
    for service in services:
        # Each server on a connection of its own, as separate processes would be.
        api.serve(
            topic, [service], server=service.name, transport=make_transport(amqp_url)
        )
    client = api.client(topic).prepare(fanout=True)

    api.cast(client, "record", value="to all")

    for service in services:
        assert wait_until(lambda s=service: s.received == ["to all"]), service.name


def test_server_targeted_call(api: Api) -> None:
    topic = new_topic()
    for name in ("server-a", "server-b", "server-c"):
        api.serve(topic, [Service(name)], server=name)
    client = api.client(topic).prepare(server="server-b")

    answers = {api.call(client, "whoami") for _ in range(10)}

    assert answers == {"server-b"}


def test_shared_topic_spreads_calls(api: Api) -> None:
    topic = new_topic()
    for name in ("server-a", "server-b"):
        api.serve(topic, [Service(name)], server=name)
    client = api.client(topic)

    answers = {api.call(client, "whoami") for _ in range(20)}

    assert answers <= {"server-a", "server-b"}
    assert answers, "no call was answered"


def test_namespaced_versioned_call(api: Api) -> None:
    topic = new_topic()
    api.serve(topic, [DefaultService(), VersionedService()])
    client = api.client(topic)

    versioned = client.prepare(namespace="inventory", version="2.1")
    assert api.call(versioned, "describe") == "inventory 2.3"
    assert api.call(client, "describe") == "default 1.0"


def test_unsupported_version_raises(api: Api) -> None:
    topic = new_topic()
    api.serve(topic, [VersionedService()])
    client = api.client(topic).prepare(namespace="inventory", version="3.0")

    with pytest.raises(leveret.UnsupportedVersion):
        api.call(client, "describe")


# Remote errors and results.


def test_builtin_remote_error_reraised(api: Api) -> None:
    topic = new_topic()
    api.serve(topic, [Service()])
    client = api.client(topic)

    with pytest.raises(ValueError, match="bad input"):
        api.call(client, "fail", message="bad input")


def test_custom_remote_error_is_remoteerror(api: Api) -> None:
    topic = new_topic()
    api.serve(topic, [Service()])
    client = api.client(topic)

    with pytest.raises(leveret.RemoteError) as caught:
        api.call(client, "fail_custom")
    assert "custom failure" in str(caught.value)
    assert "CustomError" in str(caught.value)


def test_missing_method_raises_nosuchmethod(api: Api) -> None:
    topic = new_topic()
    api.serve(topic, [Service()])
    client = api.client(topic)

    with pytest.raises(leveret.NoSuchMethod):
        api.call(client, "no_such_method")


@pytest.mark.parametrize("value", [0, 0.0, "", [], {}, False, None])
def test_falsy_results_returned(api: Api, value: Any) -> None:
    topic = new_topic()
    api.serve(topic, [Service()])
    client = api.client(topic)

    result = api.call(client, "echo", value=value)

    assert result == value
    assert type(result) is type(value)


def test_server_keeps_serving_after_error(api: Api) -> None:
    topic = new_topic()
    api.serve(topic, [Service()])
    client = api.client(topic)

    with pytest.raises(ValueError):
        api.call(client, "fail", message="first")

    assert api.call(client, "add", a=1, b=1) == 2


# Streams.


@pytest.mark.parametrize("method", ["count", "count_async"])
def test_stream_yields_items(api: Api, method: str) -> None:
    topic = new_topic()
    api.serve(topic, [Service()])
    client = api.client(topic)

    items, error = api.stream(client, method, n=5)

    assert error is None
    assert items == [0, 1, 2, 3, 4]


def test_stream_keeps_none_items(api: Api) -> None:
    topic = new_topic()
    api.serve(topic, [Service()])
    client = api.client(topic)

    items, error = api.stream(client, "with_none")

    assert error is None
    assert items == [None, 1, None]


def test_stream_error_midway(api: Api) -> None:
    topic = new_topic()
    api.serve(topic, [Service()])
    client = api.client(topic)

    items, error = api.stream(client, "fail_after_two")

    assert items == [1, 2]
    assert isinstance(error, ValueError)
    assert "broke at item 3" in str(error)


def test_stream_early_close_stops_generator(api: Api) -> None:
    topic = new_topic()
    service = Service()
    api.serve(topic, [service])
    client = api.client(topic)

    items, error = api.stream(client, "endless", take=3)

    assert error is None
    assert items == [0, 1, 2]
    assert service.generator_closed.wait(WAIT_SECONDS), "generator still running"


def test_stream_of_plain_method(api: Api) -> None:
    topic = new_topic()
    api.serve(topic, [Service()])
    client = api.client(topic)

    items, error = api.stream(client, "add", a=1, b=2)

    assert error is None
    assert items == [3]


# No server, timeouts and late replies.


def test_call_without_queue_raises_noserver(api: Api) -> None:
    client = api.client(new_topic("nobody"), timeout=30)

    started = time.monotonic()
    with pytest.raises(leveret.NoServerError):
        api.call(client, "add", a=1, b=2)
    # At once, not after the 30 s timeout.
    assert time.monotonic() - started < 10


def test_cast_without_queue_raises_noserver(api: Api) -> None:
    client = api.client(new_topic("nobody"))

    with pytest.raises(leveret.NoServerError):
        api.cast(client, "record", value=1)


def test_targeted_call_unknown_server_raises(api: Api) -> None:
    topic = new_topic()
    api.serve(topic, [Service()], server="server-1")
    client = api.client(topic, timeout=30).prepare(server="server-2")

    with pytest.raises(leveret.NoServerError):
        api.call(client, "whoami")


def test_fanout_cast_without_servers_raises(api: Api) -> None:
    client = api.client(new_topic("nobody")).prepare(fanout=True)

    with pytest.raises(leveret.NoServerError):
        api.cast(client, "record", value=1)


def test_slow_method_times_out(api: Api) -> None:
    topic = new_topic()
    api.serve(topic, [Service()])
    client = api.client(topic, timeout=1)

    started = time.monotonic()
    with pytest.raises(leveret.MessagingTimeout):
        api.call(client, "sleep_then_return", seconds=4, value="late")
    elapsed = time.monotonic() - started

    assert elapsed >= 0.9, f"raised after {elapsed:.2f} s, before the 1 s timeout"
    assert elapsed < 5, f"raised after {elapsed:.2f} s, long past the 1 s timeout"


def test_late_reply_not_taken(api: Api, transport: leveret.Transport) -> None:
    topic = new_topic()
    api.serve(topic, [Service()])
    client = api.client(topic)

    with pytest.raises(leveret.MessagingTimeout):
        api.call(
            client.prepare(timeout=0.5), "sleep_then_return", seconds=1.5, value="late"
        )
    # The late reply of the first call arrives while this call waits.
    result = api.call(client, "sleep_then_return", seconds=2.5, value="second")

    assert result == "second"
    assert transport.replies.dropped_replies >= 1


# Concurrency.


def test_concurrent_calls_from_threads(transport: leveret.Transport) -> None:
    topic = new_topic()
    with leveret.RPCServer(
        transport, leveret.Target(topic, server="server-1"), [Service()]
    ):
        client = leveret.RPCClient(
            transport, leveret.Target(topic), timeout=WAIT_SECONDS
        )
        with concurrent.futures.ThreadPoolExecutor(50) as pool:
            futures = [pool.submit(client.call, "add", a=i, b=1000) for i in range(50)]
            results = [future.result() for future in futures]

    assert results == [i + 1000 for i in range(50)]


def test_concurrent_calls_from_tasks(transport: leveret.Transport) -> None:
    topic = new_topic()

    async def main() -> list[Any]:
        server = leveret.AsyncRPCServer(
            transport, leveret.Target(topic, server="server-1"), [Service()]
        )
        async with server:
            client = leveret.AsyncRPCClient(
                transport, leveret.Target(topic), timeout=WAIT_SECONDS
            )
            return await asyncio.gather(
                *(client.call("add_async", a=i, b=1000) for i in range(200))
            )

    results = asyncio.run(main())

    assert results == [i + 1000 for i in range(200)]


def test_fanout_reaches_server_started_after_exchange_deleted(
    transport: leveret.Transport,
) -> None:
    topic = new_topic("fanout-again")
    fanout = leveret.RPCClient(
        transport, leveret.Target(topic, fanout=True), timeout=WAIT_SECONDS
    )
    first, second = Service("first"), Service("second")
    with leveret.RPCServer(transport, leveret.Target(topic, server="a"), [first]):
        fanout.cast("record", value=1)
        assert wait_until(lambda: first.received == [1])
    # The broker deleted the fanout exchange with the server's queue; this
    # transport declared it before, and must declare it again.
    with leveret.RPCServer(transport, leveret.Target(topic, server="b"), [second]):
        fanout.cast("record", value=3)
        assert wait_until(lambda: second.received == [3])


def test_fanout_to_deleted_exchange_isolated(transport: leveret.Transport) -> None:
    """A fanout cast whose exchange the broker deleted fails alone.

    The fanout exchange auto-deletes with its last queue, after the transport
    has declared it once. Casts to it must raise NoServerError without
    disturbing calls that run at the same time on the same connection.
    """
    gone = new_topic("gone")
    topic = new_topic()

    async def main() -> list[Any]:
        target = leveret.Target(gone, server="server-1")
        async with leveret.AsyncRPCServer(transport, target, [Service()]):
            pass  # its fanout queue, and with it the exchange, are now deleted
        server = leveret.AsyncRPCServer(
            transport, leveret.Target(topic, server="server-1"), [Service()]
        )
        async with server:
            client = leveret.AsyncRPCClient(
                transport, leveret.Target(topic), timeout=WAIT_SECONDS
            )
            fanout = leveret.AsyncRPCClient(
                transport, leveret.Target(gone, fanout=True), timeout=WAIT_SECONDS
            )
            requests = [client.call("add_async", a=i, b=0) for i in range(300)]
            for position in range(10, 300, 15):
                requests.insert(position, fanout.cast("record", value=position))
            return await asyncio.gather(*requests, return_exceptions=True)

    outcomes = asyncio.run(main())

    results = [o for o in outcomes if not isinstance(o, BaseException | type(None))]
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert sorted(results) == list(range(300)), errors[:3]
    assert len(errors) == 20
    for error in errors:
        assert isinstance(error, leveret.NoServerError), repr(error)
    assert transport._supervisor.connections_opened == 1  # type: ignore[attr-defined]


# Stopping a server with a call in progress.


class Blocking:
    """A plain method that blocks until released, outlasting a grace period."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

    def hold(self) -> str:
        self.started.set()
        self.release.wait(WAIT_SECONDS)
        return "first server"


class Finisher:
    def hold(self) -> str:
        return "second server"


def _call_in_thread(
    pool: concurrent.futures.ThreadPoolExecutor,
    transport: leveret.Transport,
    topic: str,
) -> concurrent.futures.Future[Any]:
    client = leveret.RPCClient(transport, leveret.Target(topic), timeout=WAIT_SECONDS)
    return pool.submit(client.call, "hold")


def test_stop_past_grace_fails_the_call_at_once(
    transport: leveret.Transport,
) -> None:
    topic = new_topic()
    blocking = Blocking()
    server = leveret.RPCServer(
        transport, leveret.Target(topic, server="s1"), [blocking], grace_period=0.2
    )
    server.start()
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = _call_in_thread(pool, transport, topic)
            assert blocking.started.wait(WAIT_SECONDS)
            stopped_at = time.monotonic()
            server.stop()

            with pytest.raises(leveret.MessagingTimeout, match="stopped before hold"):
                pending.result(WAIT_SECONDS)
            # At once, not at the caller's own deadline of WAIT_SECONDS.
            assert time.monotonic() - stopped_at < WAIT_SECONDS / 2
    finally:
        blocking.release.set()


def test_ack_after_requeues_cut_off_call(
    transport: leveret.Transport,
) -> None:
    topic = new_topic()
    blocking = Blocking()
    first = leveret.RPCServer(
        transport,
        leveret.Target(topic, server="s1"),
        [blocking],
        grace_period=0.2,
        ack_policy="after",
    )
    first.start()
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = _call_in_thread(pool, transport, topic)
            assert blocking.started.wait(WAIT_SECONDS)
            first.stop()
            # Requeued, not failed: the next server on the topic runs it.
            assert not pending.done()
            second = leveret.RPCServer(
                transport, leveret.Target(topic, server="s2"), [Finisher()]
            )
            with second:
                assert pending.result(WAIT_SECONDS) == "second server"
    finally:
        blocking.release.set()
