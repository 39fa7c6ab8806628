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
duplicate (a redelivery of a request it already took). Redelivered requests
are counted and bounded as ``_redelivery`` describes.
"""

from __future__ import annotations

import collections
from typing import Literal

from ._errors import ConfigurationError

__all__ = ["AckPolicy", "RecentIds", "check_ack_policy"]

AckPolicy = Literal["before", "after"]
ACK_POLICIES = ("before", "after")
RECENT_IDS_KEPT = 4096  # unique ids remembered to detect duplicates


def check_ack_policy(policy: str, where: str) -> AckPolicy:
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
