"""The benchmark cases. A case is one shape with fixed parameters, which
several systems ("runs") take turns at for several repetitions."""

from __future__ import annotations

import dataclasses
from typing import Any

# Seconds each measurement runs, and its warm-up, at scale 1.
BASE_DURATION = 1.0
BASE_WARMUP = 0.3
PAYLOAD_SIZES = (100, 10_000, 1_000_000)  # bytes
CALLERS = (1, 8, 64, 256)
CAST_SENDERS = (1, 64)
STREAM_ITEMS = 500
MEMORY_IN_FLIGHT = 100


@dataclasses.dataclass(frozen=True)
class Run:
    """One system's part in a case, and the row label in the report."""

    label: str
    system: str
    params: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def is_leveret(self) -> bool:
        return self.system.startswith("leveret")


@dataclasses.dataclass(frozen=True)
class Case:
    """A shape with its parameters; ``metric`` is ``latency`` or ``rate``."""

    id: str
    group: str
    shape: str
    params: dict[str, Any]
    runs: tuple[Run, ...]
    metric: str
    unit: str
    # Arrival records to collect at the server (casts, fanout, notifications).
    arrivals: tuple[str, ...] = ()


LEVERET_SYNC = Run("leveret sync", "leveret", {"api": "sync"})
LEVERET_ASYNC = Run("leveret async", "leveret", {"api": "async"})
# The transport on the client's own event loop (the own_loop=false option).
LEVERET_ASYNC_SHARED = Run(
    "leveret async, shared loop", "leveret", {"api": "async", "own_loop": False}
)
OSLO = Run("oslo.messaging", "oslo", {"api": "sync"})
AIOPIKA = Run("aio-pika", "aiopika", {"api": "async"})
NAMEKO = Run("nameko", "nameko", {"api": "sync"})
PIKA = Run("pika (floor)", "pika", {"api": "sync"})
PIKA_CONFIRMS = Run("pika, confirms", "pika", {"api": "sync", "confirm": True})
PIKA_TRANSIENT = Run(
    "pika, transient queue", "pika", {"api": "sync", "transient": True}
)
MEMORY_SYNC = Run("leveret sync", "leveret-memory", {"api": "sync"})
MEMORY_ASYNC = Run("leveret async", "leveret-memory", {"api": "async"})
OSLO_FAKE = Run("oslo.messaging fake://", "oslo-fake", {"api": "sync"})
FANOUT_NAMES = ("fanout-0", "fanout-1", "fanout-2")


# The systems that make calls on the broker.
CALL_RUNS = (LEVERET_SYNC, LEVERET_ASYNC, LEVERET_ASYNC_SHARED, OSLO, AIOPIKA, NAMEKO)


def _floor(hop: str, label: str) -> Run:
    return Run(label, "floor", {"hop": hop})


def build_cases(scale: float) -> list[Case]:
    """Return every case, with durations multiplied by *scale*."""
    duration = max(0.2, BASE_DURATION * scale)
    warmup = max(0.1, BASE_WARMUP * scale)
    timed = {"duration": duration, "warmup": warmup}
    cases: list[Case] = []

    for size in PAYLOAD_SIZES:
        runs = [*CALL_RUNS, PIKA]
        if size == PAYLOAD_SIZES[0]:
            runs.append(PIKA_CONFIRMS)
        cases.append(
            Case(
                id=f"call_latency/{size}",
                group="call_latency",
                shape="call_latency",
                params={
                    "payload": size,
                    "duration": duration,
                    "warmup_calls": 2 if size >= 1_000_000 else 20,
                },
                runs=tuple(runs),
                metric="latency",
                unit="µs",
            )
        )
    for callers in CALLERS:
        cases.append(
            Case(
                id=f"call_throughput/{callers}",
                group="call_throughput",
                shape="call_throughput",
                params={"payload": 100, "workers": callers, **timed},
                runs=CALL_RUNS,
                metric="rate",
                unit="calls/s",
            )
        )
    for senders in CAST_SENDERS:
        runs = [LEVERET_SYNC, LEVERET_ASYNC, LEVERET_ASYNC_SHARED, OSLO, AIOPIKA]
        if senders == 1:
            runs += [PIKA, PIKA_TRANSIENT]
        cases.append(
            Case(
                id=f"cast/{senders}",
                group="cast",
                shape="cast",
                params={"workers": senders, **timed},
                runs=tuple(runs),
                metric="rate",
                unit="casts/s delivered",
                arrivals=("cast",),
            )
        )
    cases.append(
        Case(
            id="fanout/3",
            group="fanout",
            shape="fanout",
            params={"workers": 1, **timed},
            runs=(LEVERET_SYNC, LEVERET_ASYNC, OSLO, PIKA),
            metric="rate",
            unit="casts/s delivered to each of 3 servers",
            arrivals=FANOUT_NAMES,
        )
    )
    cases.append(
        Case(
            id="stream/500",
            group="stream",
            shape="stream",
            params={"items": STREAM_ITEMS, "duration": duration},
            runs=(LEVERET_SYNC, LEVERET_ASYNC),
            metric="rate",
            unit="items/s",
        )
    )
    cases.append(
        Case(
            id="notify/1",
            group="notify",
            shape="notify",
            params={"workers": 1, **timed},
            runs=(Run("leveret", "leveret", {"api": "sync"}), OSLO),
            metric="rate",
            unit="notifications/s delivered",
            arrivals=("notify",),
        )
    )
    cases.append(
        Case(
            id="memory_latency",
            group="memory_latency",
            shape="call_latency",
            params={"payload": 100, "duration": duration, "warmup_calls": 100},
            runs=(
                MEMORY_SYNC,
                MEMORY_ASYNC,
                OSLO_FAKE,
                _floor("queue_pingpong", "floor: SimpleQueue ping-pong"),
                _floor("loop_roundtrip", "floor: thread -> loop -> thread"),
                _floor(
                    "loop_pool_roundtrip",
                    "floor: thread -> loop -> pool -> loop -> thread",
                ),
            ),
            metric="latency",
            unit="µs",
        )
    )
    cases.append(
        Case(
            id=f"memory_throughput/{MEMORY_IN_FLIGHT}",
            group="memory_throughput",
            shape="call_throughput",
            params={"payload": 100, "workers": MEMORY_IN_FLIGHT, **timed},
            runs=(
                MEMORY_ASYNC,
                MEMORY_SYNC,
                OSLO_FAKE,
                _floor("future_hop", "floor: asyncio future hop"),
            ),
            metric="rate",
            unit="calls/s",
        )
    )
    return cases
