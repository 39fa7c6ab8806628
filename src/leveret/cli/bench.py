"""``leveret bench``: a quick measurement of leveret's own RPC path.

The client and the server run in this process, on the in-process transport
by default or on the broker that ``--url`` names. The comparison with
oslo.messaging, aio-pika, nameko and raw pika is ``make bench``
(scripts/run-bench), which runs each side in a process of its own.
"""

from __future__ import annotations

import asyncio
import math
import queue
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import click

from .._client import AsyncRPCClient, RPCClient
from .._server import AsyncRPCServer, RPCServer
from .._target import Target
from .._transport_url import get_transport
from ._options import redact_url, url_option

__all__ = ["bench"]

PAYLOAD = "x" * 100  # bytes per request, and per reply
IN_FLIGHT_THREADS = 8
IN_FLIGHT_TASKS = 100
STREAM_ITEMS = 500
CALL_TIMEOUT = 30.0  # seconds; only a hang reaches it
CONNECT_TIMEOUT = 10.0  # seconds to reach the broker before giving up
QUICK_DURATION = 0.2  # seconds per measurement with --quick

Row = tuple[str, float, str]


class _Endpoint:
    def __init__(self) -> None:
        self.casts = 0

    def echo(self, payload: str) -> str:
        return payload

    def tick(self) -> None:
        self.casts += 1

    def numbers(self, count: int) -> Iterator[int]:
        yield from range(count)


class _AsyncEndpoint:
    """Runs on the transport's event loop, so its counters need no lock."""

    def __init__(self) -> None:
        self.casts = 0
        self.expected: int | None = None
        self.all_arrived = asyncio.Event()

    async def echo(self, payload: str) -> str:
        return payload

    async def tick(self) -> None:
        self.casts += 1
        if self.expected is not None and self.casts >= self.expected:
            self.all_arrived.set()

    async def numbers(self, count: int) -> AsyncIterator[int]:
        for number in range(count):
            yield number


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


def _latency_rows(name: str, samples: list[float]) -> list[Row]:
    return [
        (f"{name} p50", _percentile(samples, 0.5) * 1e6, "µs"),
        (f"{name} p99", _percentile(samples, 0.99) * 1e6, "µs"),
    ]


def _sequential(operation: Callable[[], object], duration: float) -> list[float]:
    samples: list[float] = []
    deadline = time.perf_counter() + duration
    while len(samples) < 5 or time.perf_counter() < deadline:
        began = time.perf_counter()
        operation()
        samples.append(time.perf_counter() - began)
    return samples


async def _sequential_async(
    operation: Callable[[], Awaitable[object]], duration: float
) -> list[float]:
    samples: list[float] = []
    deadline = time.perf_counter() + duration
    while len(samples) < 5 or time.perf_counter() < deadline:
        began = time.perf_counter()
        await operation()
        samples.append(time.perf_counter() - began)
    return samples


def _threads_rate(
    operation: Callable[[], object], workers: int, duration: float
) -> float:
    """Return operations per second with *workers* threads running back to back."""
    completed: list[None] = []
    clock: dict[str, float] = {}

    def start_clock() -> None:
        clock["began"] = time.perf_counter()
        clock["deadline"] = clock["began"] + duration

    # The barrier's action starts the clock once every thread has warmed up,
    # before any of them is released.
    barrier = threading.Barrier(workers + 1, action=start_clock)

    def work() -> None:
        operation()  # warm-up, not counted
        barrier.wait()
        while time.perf_counter() < clock["deadline"]:
            operation()
            completed.append(None)

    threads = [threading.Thread(target=work, daemon=True) for _ in range(workers)]
    for thread in threads:
        thread.start()
    barrier.wait(timeout=CALL_TIMEOUT)
    for thread in threads:
        thread.join()
    return len(completed) / (time.perf_counter() - clock["began"])


async def _tasks_rate(
    operation: Callable[[], Awaitable[object]], workers: int, duration: float
) -> float:
    """Return operations per second with *workers* tasks awaiting back to back."""
    await asyncio.gather(*(operation() for _ in range(workers)))  # warm-up
    completed = 0
    began = time.perf_counter()
    deadline = began + duration

    async def work() -> None:
        nonlocal completed
        while time.perf_counter() < deadline:
            await operation()
            completed += 1

    await asyncio.gather(*(work() for _ in range(workers)))
    return completed / (time.perf_counter() - began)


def _thread_hop_floor(duration: float) -> list[Row]:
    """Time a round trip between two threads through queue.SimpleQueue."""
    requests: queue.SimpleQueue[int | None] = queue.SimpleQueue()
    replies: queue.SimpleQueue[int | None] = queue.SimpleQueue()

    def echo_back() -> None:
        while (item := requests.get()) is not None:
            replies.put(item)

    thread = threading.Thread(target=echo_back, daemon=True)
    thread.start()

    def round_trip() -> None:
        requests.put(1)
        replies.get()

    samples = _sequential(round_trip, duration)
    requests.put(None)
    thread.join()
    return [
        (
            "thread hop floor: SimpleQueue round trip p50",
            _percentile(samples, 0.5) * 1e6,
            "µs",
        )
    ]


def _measure_sync(url: str, topic: str, duration: float) -> list[Row]:
    transport = get_transport(url)
    try:
        # A server waits for the broker for as long as it takes: a benchmark
        # gives up instead, with ConnectionLost.
        transport.connect(CONNECT_TIMEOUT)
    except BaseException:
        transport.close()
        raise
    endpoint = _Endpoint()
    server = RPCServer(transport, Target(topic=topic, server="bench"), [endpoint])
    server.start()
    try:
        client = RPCClient(transport, Target(topic=topic), timeout=CALL_TIMEOUT)
        client.call("echo", payload=PAYLOAD)

        def call() -> Any:
            return client.call("echo", payload=PAYLOAD)

        rows = _latency_rows("sync call", _sequential(call, duration))
        rate = _threads_rate(call, IN_FLIGHT_THREADS, duration)
        rows.append((f"sync calls, {IN_FLIGHT_THREADS} threads", rate, "calls/s"))

        def stream() -> int:
            with client.stream("numbers", count=STREAM_ITEMS) as items:
                return sum(1 for _ in items)

        streams = _sequential(stream, duration)
        rate = STREAM_ITEMS * len(streams) / sum(streams)
        rows.append((f"sync stream of {STREAM_ITEMS} items", rate, "items/s"))
        return rows
    finally:
        server.stop()
        transport.close()


async def _measure_async(url: str, topic: str, duration: float) -> list[Row]:
    # A transport binds to the event loop that first uses it: this one.
    transport = get_transport(url)
    endpoint = _AsyncEndpoint()
    server = AsyncRPCServer(transport, Target(topic=topic, server="bench"), [endpoint])
    await server.start()
    try:
        client = AsyncRPCClient(transport, Target(topic=topic), timeout=CALL_TIMEOUT)
        await client.call("echo", payload=PAYLOAD)

        def call() -> Awaitable[Any]:
            return client.call("echo", payload=PAYLOAD)

        rows = _latency_rows("async call", await _sequential_async(call, duration))
        rate = await _tasks_rate(call, IN_FLIGHT_TASKS, duration)
        rows.append((f"async calls, {IN_FLIGHT_TASKS} tasks", rate, "calls/s"))
        rows.append(await _cast_rate(client, endpoint, duration))

        async def stream() -> None:
            async with client.stream("numbers", count=STREAM_ITEMS) as items:
                async for _ in items:
                    pass

        streams = await _sequential_async(stream, duration)
        rate = STREAM_ITEMS * len(streams) / sum(streams)
        rows.append((f"async stream of {STREAM_ITEMS} items", rate, "items/s"))
        return rows
    finally:
        await server.stop()
        await transport.aclose()


async def _cast_rate(
    client: AsyncRPCClient, endpoint: _AsyncEndpoint, duration: float
) -> Row:
    """Send casts from one task for *duration*; rate of arrival at the server."""
    sent = 0
    began = time.perf_counter()
    while time.perf_counter() - began < duration:
        await client.cast("tick")
        sent += 1
    endpoint.expected = sent
    if endpoint.casts >= sent:
        endpoint.all_arrived.set()
    await asyncio.wait_for(endpoint.all_arrived.wait(), CALL_TIMEOUT)
    rate = endpoint.casts / (time.perf_counter() - began)
    return ("async casts delivered, 1 sender", rate, "casts/s")


def _format(value: float, unit: str) -> str:
    if unit == "µs" and value < 100:
        return f"{value:.1f}"
    return f"{value:,.0f}"


@click.command()
@url_option(
    help_text=(
        "Transport URL: memory:// (the in-process broker) or "
        "amqp://USER:PASSWORD@HOST:PORT/VHOST for RabbitMQ."
    )
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0.05),
    default=1.0,
    show_default=True,
    help="Seconds each measurement runs.",
)
@click.option(
    "--quick",
    is_flag=True,
    help=f"Run each measurement for {QUICK_DURATION} s: a smoke check, not figures.",
)
def bench(url: str, duration: float, quick: bool) -> None:
    """Measure leveret's call latency and throughput, client and server here.

    Both sides run in this process, so the figures include the server's work.
    For the comparison with oslo.messaging, aio-pika, nameko and raw pika, run
    `make bench` in a leveret checkout.
    """
    if quick:
        duration = min(duration, QUICK_DURATION)
    # A topic of its own, so that a shared broker's other servers are not hit.
    topic = f"leveret_bench_{uuid.uuid4().hex[:8]}"
    click.echo(f"leveret bench on {redact_url(url)}, {duration:g} s per measurement")
    rows = _thread_hop_floor(duration)
    rows += _measure_sync(url, f"{topic}_sync", duration)
    rows += asyncio.run(_measure_async(url, f"{topic}_async", duration))
    width = max(len(name) for name, _, _ in rows)
    click.echo(f"{'measurement':<{width}}  {'value':>10}  unit")
    for name, value, unit in rows:
        click.echo(f"{name:<{width}}  {_format(value, unit):>10}  {unit}")
