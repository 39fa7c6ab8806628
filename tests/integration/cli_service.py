"""The endpoint that the command-line tests serve with ``leveret serve``."""

from __future__ import annotations

import time


class Service:
    def add(self, a: int, b: int) -> int:
        return a + b

    def fail(self, reason: str) -> None:
        raise ValueError(reason)

    def slow(self, seconds: float) -> str:
        time.sleep(seconds)
        return "finished"
