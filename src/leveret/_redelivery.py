"""The bound on how often a listener requeues one notification.

A message that fails every time (a poison message) would otherwise go back
to its queue and return forever. The count of earlier deliveries is the
larger of the broker's (``x-delivery-count`` on quorum queues, else 1 when
the message is marked redelivered) and the listener's own count of the
message ids it requeued. The own count is kept for the most recent
:data:`TRACKED_MESSAGES` ids only, and is per listener: listeners that share
a pool each count their own requeues, so across N listeners a message can
be requeued up to N times the bound when the broker does not count.
"""

from __future__ import annotations

import collections

__all__ = ["DEFAULT_MAX_REDELIVERIES", "TRACKED_MESSAGES", "RedeliveryLimit"]

DEFAULT_MAX_REDELIVERIES = 3  # requeues of one notification before it is dropped
TRACKED_MESSAGES = 10_000  # message ids whose requeues a listener remembers


class RedeliveryLimit:
    """Count requeues per message id, and tell when a message must be dropped."""

    def __init__(self, max_redeliveries: int, capacity: int = TRACKED_MESSAGES) -> None:
        self.max_redeliveries = max_redeliveries
        self._capacity = capacity
        self._counts: collections.OrderedDict[str, int] = collections.OrderedDict()

    def deliveries_before(self, key: str, broker_count: int) -> int:
        """Return how many times this message was delivered before."""
        return max(broker_count, self._counts.get(key, 0))

    def allow_requeue(self, key: str, broker_count: int) -> bool:
        """Count one more requeue of *key*, unless the bound is reached (False)."""
        earlier = self.deliveries_before(key, broker_count)
        if earlier >= self.max_redeliveries:
            self._counts.pop(key, None)
            return False
        self._counts[key] = earlier + 1
        self._counts.move_to_end(key)
        while len(self._counts) > self._capacity:
            self._counts.popitem(last=False)
        return True

    def forget(self, key: str) -> None:
        """Drop the count of a message that was handled."""
        self._counts.pop(key, None)
