"""Measurement loops shared by every system, so that each is timed alike.

Times are ``time.monotonic()`` seconds. On Linux that is CLOCK_MONOTONIC,
which all processes of one machine share, so a client's send times and a
server's arrival times can be compared directly.

A throughput measurement runs its workers (threads, tasks or an in-flight
window) for ``warmup + duration`` seconds and counts only what completes in
the window ``[start + warmup, start + warmup + duration)``, so connection
set-up, ramp-up and the last stragglers do not count.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

clock = time.monotonic

# Seconds a worker thread may take to finish after its window ends before the
# measurement gives up on it (a peer that hangs must not hang the harness).
JOIN_SECONDS = 120.0


class Window:
    """The measured interval and what the workers completed."""

    def __init__(self, warmup: float, duration: float) -> None:
        self.warmup = warmup
        self.duration = duration
        self.start = 0.0
        self.end = 0.0
        self.completions: list[float] = []
        self.errors = 0
        self.first_error: str | None = None
        # One entry per worker whose warm-up operation succeeded; a cast sent
        # during warm-up still reaches the server and must be expected there.
        self.warmed: list[None] = []

    def open(self) -> None:
        self.start = clock() + self.warmup
        self.end = self.start + self.duration

    def record_error(self, exc: BaseException) -> None:
        self.errors += 1
        if self.first_error is None:
            self.first_error = f"{type(exc).__name__}: {exc}"

    def result(self) -> dict[str, Any]:
        """Return the rate of completions in the window, per second."""
        counted = sum(1 for t in self.completions if self.start <= t < self.end)
        return {
            "rate": counted / self.duration,
            "counted": counted,
            "total": len(self.completions),
            "window": [self.start, self.end],
            "warmed": len(self.warmed),
            "errors": self.errors,
            "first_error": self.first_error,
        }


def sequential_latency(
    operation: Callable[[], object],
    duration: float,
    *,
    min_count: int = 5,
    max_count: int = 100_000,
) -> list[float]:
    """Run *operation* back to back for *duration* seconds; return each time."""
    samples: list[float] = []
    deadline = clock() + duration
    while len(samples) < max_count and (len(samples) < min_count or clock() < deadline):
        began = time.perf_counter()
        operation()
        samples.append(time.perf_counter() - began)
    return samples


async def sequential_latency_async(
    operation: Callable[[], Awaitable[object]],
    duration: float,
    *,
    min_count: int = 5,
    max_count: int = 100_000,
) -> list[float]:
    """The asyncio twin of :func:`sequential_latency`."""
    samples: list[float] = []
    deadline = clock() + duration
    while len(samples) < max_count and (len(samples) < min_count or clock() < deadline):
        began = time.perf_counter()
        await operation()
        samples.append(time.perf_counter() - began)
    return samples


def threads_in_flight(
    operation: Callable[[], object], workers: int, warmup: float, duration: float
) -> Window:
    """Keep *workers* threads each running *operation* back to back.

    Each thread runs the operation once before the clock starts, so that
    per-thread set-up (connections, channels) is not measured.
    """
    window = Window(warmup, duration)
    # The barrier's action opens the window once every thread has warmed up,
    # before any of them is released.
    barrier = threading.Barrier(workers + 1, action=window.open)

    def work() -> None:
        try:
            operation()
        except Exception as exc:
            window.record_error(exc)
        else:
            window.warmed.append(None)
        barrier.wait()
        while True:
            try:
                operation()
            except Exception as exc:
                window.record_error(exc)
            else:
                window.completions.append(clock())
            if clock() >= window.end:
                return

    threads = [threading.Thread(target=work, daemon=True) for _ in range(workers)]
    for thread in threads:
        thread.start()
    barrier.wait(timeout=JOIN_SECONDS)
    deadline = clock() + warmup + duration + JOIN_SECONDS
    for thread in threads:
        thread.join(max(0.0, deadline - clock()))
    return window


async def tasks_in_flight(
    operation: Callable[[], Awaitable[object]],
    workers: int,
    warmup: float,
    duration: float,
) -> Window:
    """Keep *workers* asyncio tasks each awaiting *operation* back to back."""
    window = Window(warmup, duration)
    go = asyncio.Event()

    async def work() -> None:
        try:
            await operation()
        except Exception as exc:
            window.record_error(exc)
        else:
            window.warmed.append(None)
        started.append(None)
        if len(started) == workers:
            window.open()
            go.set()
        await go.wait()
        while True:
            try:
                await operation()
            except Exception as exc:
                window.record_error(exc)
            else:
                window.completions.append(clock())
            if clock() >= window.end:
                return

    started: list[None] = []
    tasks = [asyncio.create_task(work()) for _ in range(workers)]
    await asyncio.wait(tasks, timeout=warmup + duration + JOIN_SECONDS)
    return window


def window_in_flight(
    submit: Callable[[], Any],
    wait: Callable[[Any], object],
    workers: int,
    warmup: float,
    duration: float,
) -> Window:
    """Keep *workers* requests in flight from one thread.

    *submit* sends a request and returns a handle, *wait* blocks for its
    result. For clients that are not safe to share between threads but can
    have several requests outstanding (nameko's standalone proxy).
    """
    window = Window(warmup, duration)
    warm = [submit() for _ in range(workers)]
    for handle in warm:
        try:
            wait(handle)
        except Exception as exc:
            window.record_error(exc)
        else:
            window.warmed.append(None)
    window.open()
    pending = collections.deque(submit() for _ in range(workers))
    while pending:
        handle = pending.popleft()
        try:
            wait(handle)
        except Exception as exc:
            window.record_error(exc)
        else:
            window.completions.append(clock())
        if clock() < window.end:
            pending.append(submit())
    return window
