"""Helpers for interop tests: a record of what endpoints received."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

# Modules whose exceptions both peers' clients re-raise as themselves.
ALLOWED_MODULES = ["interop_exceptions"]
CALL_TIMEOUT = 10  # seconds a call waits before the test fails
WAIT_TIMEOUT = 10.0  # seconds a test waits for an endpoint to be reached


def new_topic(prefix: str) -> str:
    """Return a topic name that no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def rabbit_url(amqp_url: str) -> str:
    """Return *amqp_url* with the ``rabbit://`` scheme that oslo expects."""
    scheme, separator, rest = amqp_url.partition("://")
    if scheme != "amqp" or not separator:
        raise ValueError(f"invalid broker URL {amqp_url!r}: expected amqp://...")
    return f"rabbit://{rest}"


class Recorder:
    """A thread-safe list of items that endpoints add, with waiting."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._items: list[Any] = []

    def add(self, item: Any) -> None:
        with self._condition:
            self._items.append(item)
            self._condition.notify_all()

    def wait_for(
        self, predicate: Callable[[list[Any]], bool], timeout: float = WAIT_TIMEOUT
    ) -> list[Any]:
        """Wait until *predicate* holds for the items; return a copy of them.

        Returns after *timeout* seconds even if it does not hold, so that the
        caller's assert shows what did arrive.
        """
        with self._condition:
            self._condition.wait_for(lambda: predicate(self._items), timeout)
            return list(self._items)

    def with_token(self, token: str) -> list[Any]:
        """Return the ``(server, token)`` items recorded for *token* so far."""
        with self._condition:
            return [item for item in self._items if item[1] == token]
