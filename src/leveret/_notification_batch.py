"""Batch listeners: :class:`AsyncBatchNotificationListener` and the blocking
:class:`BatchNotificationListener`.

A batch listener collects messages until it has ``batch_size`` of them, or
until ``batch_timeout`` seconds have passed since the first one of the batch
arrived. It then groups them by priority and calls each endpoint method of
that priority once, with a list of items in oslo.messaging's shape::

    {"ctxt": RequestContext, "publisher_id": ..., "event_type": ...,
     "payload": ..., "metadata": {"message_id": ..., "timestamp": ...}}

Each method gets only the items its ``filter_rule`` passes. When a method
returns :attr:`~leveret.NotificationResult.REQUEUE` or raises, every message
of that priority group is requeued (or dropped, under the same rules as the
single listener), the ones its filter removed included, as in oslo.messaging.
Batches are delivered one at a time, in the order they were completed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from ._checks import check_count, check_seconds
from ._errors import InvalidTarget
from ._notification import Notification
from ._notification_dispatch import HANDLED, DispatchOutcome
from ._notification_listener import (
    DEFAULT_GRACE_PERIOD,
    DEFAULT_MAX_WORKERS,
    DEFAULT_PREFETCH,
    BlockingListener,
    ListenerCore,
)
from ._redelivery import DEFAULT_MAX_REDELIVERIES
from ._target import Target
from .transports.base import IncomingMessage, Transport

__all__ = ["AsyncBatchNotificationListener", "BatchNotificationListener"]

logger = logging.getLogger("leveret.notify")

DEFAULT_BATCH_SIZE = 100  # messages in one batch, at most
DEFAULT_BATCH_TIMEOUT = 1.0  # seconds a started batch waits to fill up

_Group = list[tuple[IncomingMessage, Notification]]


def _check_batch(batch_size: int, batch_timeout: float) -> None:
    check_count("batch_size", batch_size, 1)
    check_seconds("batch_timeout", batch_timeout, InvalidTarget)


def _by_priority(decoded: _Group) -> dict[str, _Group]:
    groups: dict[str, _Group] = {}
    for message, notification in decoded:
        groups.setdefault(notification.priority, []).append((message, notification))
    return groups


class AsyncBatchNotificationListener(ListenerCore):
    """Deliver notifications to endpoint methods in lists, from asyncio code.

    Takes the arguments of :class:`~leveret.AsyncNotificationListener` and:

    :param batch_size: messages in one batch, at most.
    :param batch_timeout: seconds a batch waits for more messages after its
        first one arrived, before it is delivered as it is.
    :param prefetch: messages the broker may deliver before they are settled.
        The default is the larger of ``batch_size`` and 64. On RabbitMQ a batch
        contains at most *prefetch* messages, because no more arrive until
        some are settled.
    """

    def __init__(
        self,
        transport: Transport,
        targets: Sequence[Target],
        endpoints: Sequence[object],
        pool: str | None = None,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        batch_timeout: float = DEFAULT_BATCH_TIMEOUT,
        max_workers: int = DEFAULT_MAX_WORKERS,
        requeue_on_error: bool = True,
        max_redeliveries: int = DEFAULT_MAX_REDELIVERIES,
        grace_period: float = DEFAULT_GRACE_PERIOD,
        prefetch: int | None = None,
    ) -> None:
        _check_batch(batch_size, batch_timeout)
        super().__init__(
            transport,
            targets,
            endpoints,
            pool,
            max_workers=max_workers,
            requeue_on_error=requeue_on_error,
            max_redeliveries=max_redeliveries,
            grace_period=grace_period,
            prefetch=max(DEFAULT_PREFETCH, batch_size)
            if prefetch is None
            else prefetch,
        )
        self.batch_size = batch_size
        self.batch_timeout = batch_timeout
        self._pending: list[IncomingMessage] = []
        self._timer: asyncio.TimerHandle | None = None
        self._turn: asyncio.Lock | None = None

    def on_message(self, message: IncomingMessage) -> None:
        if self.stopping:
            self.track(self.requeue_unhandled(message, "listener stopping"))
            return
        self._pending.append(message)
        if len(self._pending) >= self.batch_size:
            self._complete_batch()
        elif self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.batch_timeout, self._complete_batch)

    def _complete_batch(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending, []
        if batch:
            self.track(self._handle_batch(batch))

    async def before_drain(self) -> None:
        """Requeue the messages of a batch that has not been delivered yet."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending, []
        for message in batch:
            await self.requeue_unhandled(message, "listener stopping")

    async def _handle_batch(self, batch: list[IncomingMessage]) -> None:
        unsettled = dict.fromkeys(batch)  # in arrival order
        try:
            if self._turn is None:
                self._turn = asyncio.Lock()
            async with self._turn:
                await self._deliver_batch(batch, unsettled)
        except asyncio.CancelledError:
            for message in unsettled:
                await self.requeue_unhandled(message, "cancelled by stop()")
            raise

    async def _deliver_batch(
        self, batch: list[IncomingMessage], unsettled: dict[IncomingMessage, None]
    ) -> None:
        decoded: _Group = []
        for message in batch:
            notification = await self.decode(message)
            if notification is None:
                unsettled.pop(message)
            else:
                decoded.append((message, notification))
        logger.debug(
            "batch.received size=%d priorities=%s",
            len(decoded),
            ",".join(sorted({notification.priority for _, notification in decoded})),
        )
        for priority, group in _by_priority(decoded).items():
            outcome = await self._dispatch_group(priority, group)
            for message, notification in group:
                unsettled.pop(message)
                await self.settle(message, notification, outcome)

    async def _dispatch_group(self, priority: str, group: _Group) -> DispatchOutcome:
        known = [n for _, n in group if self.check_priority(n)]
        if not known:
            return HANDLED
        return await self.dispatcher.dispatch_batch(priority, known)


class BatchNotificationListener(BlockingListener):
    """The blocking batch listener: the same arguments as
    :class:`AsyncBatchNotificationListener`, run on the transport's event loop
    thread. Sync endpoint methods run in its thread pool."""

    def __init__(
        self,
        transport: Transport,
        targets: Sequence[Target],
        endpoints: Sequence[object],
        pool: str | None = None,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        batch_timeout: float = DEFAULT_BATCH_TIMEOUT,
        max_workers: int = DEFAULT_MAX_WORKERS,
        requeue_on_error: bool = True,
        max_redeliveries: int = DEFAULT_MAX_REDELIVERIES,
        grace_period: float = DEFAULT_GRACE_PERIOD,
        prefetch: int | None = None,
    ) -> None:
        self._service = AsyncBatchNotificationListener(
            transport,
            targets,
            endpoints,
            pool,
            batch_size=batch_size,
            batch_timeout=batch_timeout,
            max_workers=max_workers,
            requeue_on_error=requeue_on_error,
            max_redeliveries=max_redeliveries,
            grace_period=grace_period,
            prefetch=prefetch,
        )
