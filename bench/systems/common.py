"""What every system module shares: payloads, arrival records, shape errors."""

from __future__ import annotations

import threading
import time
from typing import Any

from ..measure import clock

# Names of the arrival records a server keeps.
ARRIVAL_NAMES = ("cast", "fanout-0", "fanout-1", "fanout-2", "notify")
FANOUT_SERVERS = 3
# Seconds a client waits for one reply before the peer's timeout error.
CALL_TIMEOUT = 60


class UnsupportedShape(Exception):
    """The system has no equivalent of the requested shape."""


def make_payload(size: int) -> str:
    """Return a text of *size* ASCII characters, *size* bytes once encoded."""
    return "x" * size


class Arrivals:
    """Arrival times of casts, fanout casts and notifications at a server."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stamps: dict[str, list[float]] = {name: [] for name in ARRIVAL_NAMES}

    def record(self, name: str) -> None:
        # list.append is atomic in CPython; no lock on the hot path.
        self._stamps[name].append(clock())

    def reset(self) -> None:
        with self._lock:
            self._stamps = {name: [] for name in ARRIVAL_NAMES}

    def collect(
        self, names: list[str], expected: int, start: float, end: float, timeout: float
    ) -> dict[str, Any]:
        """Wait until each record has *expected* arrivals or *timeout* passes.

        Returns, per name, how many arrived in total and in [start, end).
        """
        deadline = clock() + timeout
        while clock() < deadline:
            if all(len(self._stamps[name]) >= expected for name in names):
                break
            time.sleep(0.01)
        result: dict[str, Any] = {}
        for name in names:
            stamps = list(self._stamps[name])
            result[name] = {
                "arrived": len(stamps),
                "counted": sum(1 for t in stamps if start <= t < end),
                "last": max(stamps) if stamps else None,
            }
        return result
