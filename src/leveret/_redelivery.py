"""Bounds on how often one message comes back: poison messages.

A message that fails every time would otherwise return to its queue forever.
The count of its earlier deliveries is the larger of two counts. The
broker's is ``x-delivery-count`` on quorum queues, else 1 when the message
is marked redelivered. This process keeps its own count per message id, for
the most recently seen ids only.

- An RPC server counts the redeliveries it sees of each request's
  ``_unique_id`` (:class:`RedeliveryCounter`), and rejects a request past
  ``max_redeliveries`` without requeue.
- A notification listener counts the requeues it makes of each message id
  (:class:`RedeliveryLimit`), and drops a message past the bound.

NOTE: RabbitMQ counts deliveries exactly for quorum queues only. On classic
queues the own count is per process: servers, or listeners sharing a pool,
each count their own, so across N of them a message can come back up to N
times the bound.
"""

from __future__ import annotations

import collections

__all__ = [
    "DEFAULT_MAX_REDELIVERIES",
    "TRACKED_MESSAGES",
    "RedeliveryCounter",
    "RedeliveryLimit",
]

DEFAULT_MAX_REDELIVERIES = 3  # redeliveries of one message before it is dropped
TRACKED_MESSAGES = 10_000  # message ids whose counts a process remembers


class _RecentCounts:
    """Counts per key, kept for the most recently counted keys only."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._counts: collections.OrderedDict[str, int] = collections.OrderedDict()

    def get(self, key: str) -> int:
        return self._counts.get(key, 0)

    def set(self, key: str, count: int) -> None:
        self._counts[key] = count
        self._counts.move_to_end(key)
        while len(self._counts) > self._capacity:
            self._counts.popitem(last=False)

    def forget(self, key: str) -> None:
        self._counts.pop(key, None)


class RedeliveryCounter:
    """Count redeliveries per unique id; tell when one has had too many."""

    def __init__(self, max_redeliveries: int, capacity: int = TRACKED_MESSAGES) -> None:
        self.max_redeliveries = max_redeliveries
        self._counts = _RecentCounts(capacity)

    def count(self, unique_id: str | None, redelivered: bool, broker_count: int) -> int:
        """Record one delivery and return how many times it was redelivered."""
        if not redelivered:
            return 0
        if not unique_id:
            return max(1, broker_count)
        seen = self._counts.get(unique_id) + 1
        self._counts.set(unique_id, seen)
        return max(seen, broker_count)

    def exceeded(self, redeliveries: int) -> bool:
        return redeliveries > self.max_redeliveries


class RedeliveryLimit:
    """Count requeues per message id, and tell when a message must be dropped."""

    def __init__(self, max_redeliveries: int, capacity: int = TRACKED_MESSAGES) -> None:
        self.max_redeliveries = max_redeliveries
        self._counts = _RecentCounts(capacity)

    def deliveries_before(self, key: str, broker_count: int) -> int:
        """Return how many times this message was delivered before."""
        return max(broker_count, self._counts.get(key))

    def allow_requeue(self, key: str, broker_count: int) -> bool:
        """Count one more requeue of *key*, unless the bound is reached (False)."""
        earlier = self.deliveries_before(key, broker_count)
        if earlier >= self.max_redeliveries:
            self._counts.forget(key)
            return False
        self._counts.set(key, earlier + 1)
        return True

    def forget(self, key: str) -> None:
        """Drop the count of a message that was handled."""
        self._counts.forget(key)
