"""Delivery guarantees of a server: acknowledgement policy, duplicates, poison.

- ``"before"`` (at most once, the default, as oslo.messaging does): the
  request is acknowledged before its method runs, so a server that dies
  mid-request loses it instead of having it run again elsewhere.
- ``"after"`` (at least once): the request is acknowledged when its method
  has returned or raised, so the broker redelivers it to another server if
  this one dies or loses its connection first. A method's exception still
  counts as handled: it is sent to the caller (or logged, for a cast), not
  retried.

A server remembers the ``_unique_id`` of recent requests and drops a
duplicate (a redelivery of a request it already took). A redelivered
request is counted; past ``max_redeliveries`` it is rejected without
requeue, so the broker drops it or dead-letters it when the queue has a
dead-letter exchange, instead of looping forever.

NOTE: RabbitMQ reports an exact delivery count (``x-delivery-count``) for
quorum queues only. On classic queues a server counts the redeliveries it
has seen itself, so a message that crashes every server it reaches is
bounded per server process.
"""

from __future__ import annotations

import collections
from typing import Literal

__all__ = ["AckPolicy", "RecentIds", "RedeliveryCounter", "check_ack_policy"]

AckPolicy = Literal["before", "after"]
ACK_POLICIES = ("before", "after")
DEFAULT_MAX_REDELIVERIES = 3
RECENT_IDS_KEPT = 4096  # unique ids remembered to detect duplicates


def check_ack_policy(policy: str, where: str) -> AckPolicy:
    from ._errors import ConfigurationError

    if policy not in ACK_POLICIES:
        raise ConfigurationError(
            f"invalid ack_policy {policy!r} on {where}: use 'before' or 'after'"
        )
    return policy  # type: ignore[return-value]


class RecentIds:
    """A bounded set of the most recently added ids."""

    def __init__(self, size: int = RECENT_IDS_KEPT) -> None:
        self._size = size
        self._ids: collections.OrderedDict[str, None] = collections.OrderedDict()

    def __contains__(self, unique_id: object) -> bool:
        return unique_id in self._ids

    def add(self, unique_id: str) -> None:
        self._ids[unique_id] = None
        if len(self._ids) > self._size:
            self._ids.popitem(last=False)


class RedeliveryCounter:
    """Count redeliveries per unique id; tell when one has had too many."""

    def __init__(self, max_redeliveries: int, size: int = RECENT_IDS_KEPT) -> None:
        self.max_redeliveries = max_redeliveries
        self._size = size
        self._counts: collections.OrderedDict[str, int] = collections.OrderedDict()

    def count(self, unique_id: str | None, redelivered: bool, broker_count: int) -> int:
        """Record one delivery and return how many times it was redelivered."""
        if not redelivered:
            return 0
        seen = self._counts.get(unique_id, 0) + 1 if unique_id else 1
        if unique_id:
            self._counts[unique_id] = seen
            self._counts.move_to_end(unique_id)
            if len(self._counts) > self._size:
                self._counts.popitem(last=False)
        return max(seen, broker_count)

    def exceeded(self, redeliveries: int) -> bool:
        return redeliveries > self.max_redeliveries
