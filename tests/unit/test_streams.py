"""Streamed replies from generator methods."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from harness import WAIT_SECONDS, Api, wait_until

import leveret


class Generators:
    def __init__(self) -> None:
        self.closed = threading.Event()
        self.release = threading.Event()

    def count(self, n: int) -> Iterator[int]:
        yield from range(n)

    async def count_async(self, n: int) -> AsyncIterator[int]:
        for i in range(n):
            await asyncio.sleep(0)
            yield i

    def with_none(self) -> Iterator[Any]:
        yield 1
        yield None
        yield 2
        yield None

    def fail_after_two(self) -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("broke at item 3")

    async def fail_after_two_async(self) -> AsyncIterator[int]:
        yield 1
        yield 2
        raise ValueError("broke at item 3")

    def endless(self) -> Iterator[int]:
        try:
            i = 0
            while True:
                yield i
                i += 1
                time.sleep(0.005)
        finally:
            self.closed.set()

    async def endless_async(self) -> AsyncIterator[int]:
        try:
            i = 0
            while True:
                yield i
                i += 1
                await asyncio.sleep(0.005)
        finally:
            self.closed.set()

    def one_then_stall(self) -> Iterator[str]:
        yield "first"
        self.release.wait(WAIT_SECONDS)
        yield "late"

    def plain(self, value: Any) -> Any:
        return value

    def unsendable_item(self) -> Iterator[Any]:
        yield 1
        yield object()
        yield 3


@pytest.mark.parametrize("method", ["count", "count_async"])
def test_stream_items_in_order(api: Api, method: str) -> None:
    api.serve([Generators()])
    items, error = api.stream(api.client(), method, n=20)
    assert error is None
    assert items == list(range(20))


@pytest.mark.parametrize("method", ["count", "count_async"])
def test_stream_empty_generator(api: Api, method: str) -> None:
    api.serve([Generators()])
    items, error = api.stream(api.client(), method, n=0)
    assert error is None
    assert items == []


def test_stream_none_item_continues(api: Api) -> None:
    api.serve([Generators()])
    items, error = api.stream(api.client(), "with_none")
    assert error is None
    assert items == [1, None, 2, None]


@pytest.mark.parametrize("method", ["fail_after_two", "fail_after_two_async"])
def test_stream_error_after_items(api: Api, method: str) -> None:
    api.serve([Generators()])
    items, error = api.stream(api.client(), method)
    assert items == [1, 2]
    assert isinstance(error, ValueError)
    assert str(error) == "broke at item 3"


@pytest.mark.parametrize("method", ["endless", "endless_async"])
def test_stream_close_stops_generator(api: Api, method: str) -> None:
    generators = Generators()
    api.serve([generators])
    client = api.client()
    items, error = api.stream(client, method, take=3)
    assert error is None
    assert items == [0, 1, 2]
    assert generators.closed.wait(WAIT_SECONDS)
    assert api.call(client, "plain", value="served") == "served"


@pytest.mark.parametrize("method", ["endless", "endless_async"])
def test_stream_dropped_unclosed_is_closed(api: Api, method: str) -> None:
    generators = Generators()
    api.serve([generators])
    client = api.client()
    items, error = api.stream(client, method, take=3, close=False)
    assert error is None
    assert items == [0, 1, 2]
    # Collected once dropped, the stream stops the generator and stops
    # taking its items.
    assert generators.closed.wait(WAIT_SECONDS)
    assert wait_until(lambda: len(api.transport.replies) == 0)
    assert api.call(client, "plain", value="served") == "served"


def test_stream_item_deadline(api: Api) -> None:
    generators = Generators()
    api.serve([generators])
    try:
        items, error = api.stream(api.client(timeout=0.3), "one_then_stall")
    finally:
        generators.release.set()
    assert items == ["first"]
    assert isinstance(error, leveret.MessagingTimeout)
    assert "next item" in str(error)


def test_stream_deadline_not_held_by_cancel(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    generators = Generators()
    api.serve([generators])
    send = api.transport.send

    async def slow_cancel(address: Any, body: bytes, **options: Any) -> None:
        if b"_leveret_cancel" in body:
            # A broker that does not take the cancel: it waits out its bound.
            await asyncio.sleep(WAIT_SECONDS)
        await send(address, body, **options)

    monkeypatch.setattr(api.transport, "send", slow_cancel)
    timeout = 1.0
    started = time.monotonic()
    try:
        items, error = api.stream(api.client(timeout=timeout), "one_then_stall")
    finally:
        generators.release.set()
    elapsed = time.monotonic() - started

    assert items == ["first"]
    assert isinstance(error, leveret.MessagingTimeout)
    # Without the cancel in the background it would take twice the timeout.
    assert elapsed < timeout * 1.6


@pytest.mark.parametrize("value", [5, None, [1, 2]])
def test_stream_plain_method_one_item(api: Api, value: Any) -> None:
    api.serve([Generators()])
    items, error = api.stream(api.client(), "plain", value=value)
    assert error is None
    assert items == [value]


def test_stream_unsendable_item_ends_stream(api: Api) -> None:
    api.serve([Generators()])
    client = api.client()
    items, error = api.stream(client, "unsendable_item")
    assert items == [1]
    assert isinstance(error, leveret.RemoteError)
    assert error.exc_type == "SerializationError"
    assert api.call(client, "plain", value=1) == 1


@pytest.mark.parametrize("method", ["count", "count_async"])
def test_call_generator_returns_last_item(api: Api, method: str) -> None:
    api.serve([Generators()])
    client = api.client()
    assert api.call(client, method, n=4) == 3
    assert api.call(client, method, n=0) is None


@pytest.mark.parametrize("method", ["fail_after_two", "fail_after_two_async"])
def test_call_generator_raises_its_error(api: Api, method: str) -> None:
    api.serve([Generators()])
    with pytest.raises(ValueError, match="broke at item 3"):
        api.call(api.client(), method)


def test_stream_sends_on_first_item(api: Api) -> None:
    api.serve([Generators()])
    client = api.client(topic="nobody-listens")
    stream = client.stream("count", n=1)  # nothing is sent yet
    assert isinstance(stream, (leveret.ReplyStream, leveret.AsyncReplyStream))
    items, error = api.stream(client, "count", n=1)
    assert items == []
    assert isinstance(error, leveret.NoServerError)


def test_stream_iterated_after_end(api: Api) -> None:
    api.serve([Generators()])
    client = api.client()
    if isinstance(client, leveret.RPCClient):
        stream = client.stream("count", n=2)
        assert list(stream) == [0, 1]
        assert list(stream) == []
        stream.close()
        return

    async def drain_twice() -> tuple[list[Any], list[Any]]:
        stream = client.stream("count", n=2)
        first = [item async for item in stream]
        second = [item async for item in stream]
        await stream.aclose()
        return first, second

    first, second = api.run(drain_twice())
    assert first == [0, 1]
    assert second == []


def test_stream_close_from_another_thread_ends_reader(
    transport: leveret.Transport,
) -> None:
    generators = Generators()
    target = leveret.Target("close-elsewhere", server="s1")
    client = leveret.RPCClient(
        transport, leveret.Target("close-elsewhere"), timeout=WAIT_SECONDS
    )
    read: list[Any] = []
    first_read = threading.Event()

    def read_all(stream: leveret.ReplyStream) -> None:
        for item in stream:
            read.append(item)
            first_read.set()

    with leveret.RPCServer(transport, target, [generators]):
        stream = client.stream("one_then_stall")
        reader = threading.Thread(target=read_all, args=(stream,))
        reader.start()
        try:
            assert first_read.wait(WAIT_SECONDS)
            closed_at = time.monotonic()
            stream.close()
            reader.join(WAIT_SECONDS)
        finally:
            generators.release.set()

    assert not reader.is_alive()
    # At once, not at the next item's deadline of WAIT_SECONDS.
    assert time.monotonic() - closed_at < WAIT_SECONDS / 2
    assert read == ["first"]


def test_async_stream_close_from_another_task_ends_reader(
    transport: leveret.Transport,
) -> None:
    generators = Generators()
    target = leveret.Target("close-elsewhere-async", server="s1")

    async def scenario() -> tuple[list[Any], float]:
        client = leveret.AsyncRPCClient(
            transport, leveret.Target("close-elsewhere-async"), timeout=WAIT_SECONDS
        )
        read: list[Any] = []
        first_read = asyncio.Event()
        async with leveret.AsyncRPCServer(transport, target, [generators]):
            stream = client.stream("one_then_stall")

            async def read_all() -> None:
                async for item in stream:
                    read.append(item)
                    first_read.set()

            reader = asyncio.create_task(read_all())
            await asyncio.wait_for(first_read.wait(), WAIT_SECONDS)
            started = time.monotonic()
            await stream.aclose()
            await asyncio.wait_for(reader, WAIT_SECONDS)
            elapsed = time.monotonic() - started
            generators.release.set()
        return read, elapsed

    try:
        read, elapsed = asyncio.run(scenario())
    finally:
        generators.release.set()

    assert read == ["first"]
    assert elapsed < WAIT_SECONDS / 2


class SlowAsyncItems:
    async def one_per_second(self, count: int) -> AsyncIterator[int]:
        for number in range(count):
            await asyncio.sleep(1)
            yield number


def test_async_generator_cut_off_by_stop_reports_timeout(
    transport: leveret.Transport,
) -> None:
    # The transport's I/O on a thread of its own and the server on another
    # loop, so each item is a step on the app's loop when the stop comes.
    transport.binding.bind_thread()
    client = leveret.RPCClient(
        transport, leveret.Target("cut-off"), timeout=WAIT_SECONDS
    )
    errors: list[BaseException] = []

    def read(stream: leveret.ReplyStream) -> None:
        try:
            list(stream)
        except Exception as exc:  # any type, asserted on below
            errors.append(exc)

    async def scenario() -> None:
        server = leveret.AsyncRPCServer(
            transport,
            leveret.Target("cut-off", server="s1"),
            [SlowAsyncItems()],
            grace_period=0.5,
        )
        await server.start()
        readers = [
            threading.Thread(
                target=read, args=(client.stream("one_per_second", count=10),)
            )
            for _ in range(3)
        ]
        for reader in readers:
            reader.start()
        await asyncio.sleep(0.3)
        await server.stop()
        await asyncio.to_thread(lambda: [r.join(WAIT_SECONDS) for r in readers])

    asyncio.run(scenario())

    assert len(errors) == 3
    for error in errors:
        assert isinstance(error, leveret.MessagingTimeout), repr(error)
        assert "stopped before one_per_second" in str(error)


class Slow:
    """Generators whose steps outlast the server's grace period."""

    def __init__(self) -> None:
        self.started = threading.Event()

    def ticks(self, n: int) -> Iterator[int]:
        for number in range(n):
            self.started.set()
            time.sleep(0.5)
            yield number

    async def ticks_async(self, n: int) -> AsyncIterator[int]:
        for number in range(n):
            self.started.set()
            await asyncio.sleep(0.5)
            yield number


@pytest.mark.parametrize("method", ["ticks", "ticks_async"])
def test_stream_cut_off_by_stop(api: Api, method: str) -> None:
    slow = Slow()
    server = api.serve([slow], grace_period=0.2)
    stopper = threading.Thread(
        target=lambda: slow.started.wait(WAIT_SECONDS) and api.stop(server)
    )
    stopper.start()
    try:
        items, error = api.stream(api.client(), method, n=100)
    finally:
        stopper.join(WAIT_SECONDS)
    # Stopped in the middle of the first step.
    assert items == []
    assert isinstance(error, leveret.MessagingTimeout), repr(error)
    assert f"stopped before {method}" in str(error)
