"""The endpoint that the command-line tests serve with ``leveret serve``."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator


class Service:
    def add(self, a: int, b: int) -> int:
        return a + b

    def fail(self, reason: str) -> None:
        raise ValueError(reason)

    def slow(self, seconds: float) -> str:
        time.sleep(seconds)
        return "finished"

    def count(self, start: int) -> Iterator[int]:
        yield from itertools.count(start)
