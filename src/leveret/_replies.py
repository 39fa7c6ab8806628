"""Correlation of replies with the calls waiting for them.

One reply queue serves every call made through a transport. Each call
registers a waiter under its own ``_msg_id`` before its request is sent and
removes it when it finishes, times out or is cancelled. A reply whose
``_msg_id`` has no waiter (it arrived after its call gave up, or was never
ours) is dropped and counted, so it can never be taken by a later call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ._envelope import MalformedMessage, Reply, decode_reply

__all__ = ["ReplyRouter"]

logger = logging.getLogger("leveret.client")

# A sink gets each reply, or the exception that ends the wait (e.g. on close).
ReplySink = Callable[[Reply | BaseException], None]


class ReplyRouter:
    """Route decoded replies to the waiter registered for their ``_msg_id``.

    Not thread-safe: the transport calls :meth:`deliver` on its event loop,
    and waiters are registered and removed on that loop too.
    """

    def __init__(self) -> None:
        self._waiters: dict[str, ReplySink] = {}
        self.dropped_replies = 0
        self._closed_by: BaseException | None = None

    def register(self, msg_id: str, sink: ReplySink) -> None:
        """Add the waiter of a call; raise the closing error after fail_all."""
        if self._closed_by is not None:
            raise self._closed_by
        self._waiters[msg_id] = sink

    def unregister(self, msg_id: str) -> None:
        self._waiters.pop(msg_id, None)

    def __len__(self) -> int:
        return len(self._waiters)

    def deliver(self, body: bytes) -> None:
        """Decode a reply body and hand it to its waiter, or drop it."""
        try:
            reply = decode_reply(body)
        except MalformedMessage as exc:
            self.dropped_replies += 1
            logger.warning("reply.dropped reason=malformed error=%s", exc)
            return
        sink = self._waiters.get(reply.msg_id)
        if sink is None:
            self.dropped_replies += 1
            logger.info(
                "reply.dropped msg_id=%s reason=no call waits for it "
                "(it timed out or was cancelled) dropped_total=%d",
                reply.msg_id,
                self.dropped_replies,
            )
            return
        sink(reply)

    def fail_all(self, error: BaseException) -> None:
        """Hand *error* to every waiter and to every later registration.

        Called when the transport closes. A call that registers afterwards
        (it was still waiting for the reply queue) fails at once, instead
        of sending its request and waiting for a reply that no waiter receives.
        """
        self._closed_by = error
        for sink in list(self._waiters.values()):
            sink(error)
