"""Notification listeners: :class:`AsyncNotificationListener` and the blocking
:class:`NotificationListener`.

A listener consumes, for each target topic and each priority some endpoint
handles, the queue ``TOPIC.PRIORITY``, shared with every other listener
without a pool. Listeners given a ``pool`` name share one queue named
exactly that, bound to all those ``TOPIC.PRIORITY`` keys. Each pool (and the
pool-less group) therefore gets its own copy of every notification, and the
listeners inside one group take turns.

A message is settled after its endpoint methods return: acknowledged when
handled, requeued when a method returned
:attr:`~leveret.NotificationResult.REQUEUE` or raised (unless
``requeue_on_error`` is False), and dropped with an ERROR log line once it
was requeued ``max_redeliveries`` times. A listener that dies while a method
runs leaves the message unacknowledged, so the broker delivers it again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
from collections.abc import Coroutine, Sequence
from typing import Any

from ._checks import check_consumer_options
from ._envelope import MalformedMessage
from ._errors import InvalidTarget, TransportClosed
from ._lifecycle import AsyncService, BlockingService
from ._notification import PRIORITIES, Notification, decode_notification
from ._notification_dispatch import (
    HANDLED,
    DispatchOutcome,
    NotificationDispatcher,
    NotificationResult,
    StaleDelivery,
)
from ._redelivery import DEFAULT_MAX_REDELIVERIES, RedeliveryLimit
from ._target import Target
from ._worker_pool import WorkerPool
from .transports.base import IncomingMessage, Listener, NotificationAddress, Transport

__all__ = ["AsyncNotificationListener", "NotificationListener"]

logger = logging.getLogger("leveret.notify")

DEFAULT_MAX_WORKERS = 64  # threads that run sync endpoint methods
DEFAULT_GRACE_PERIOD = 30.0  # seconds stop() waits for methods in progress
DEFAULT_PREFETCH = 64  # unacknowledged messages the broker may send ahead


def _check_targets(targets: Sequence[Target]) -> tuple[Target, ...]:
    checked = tuple(targets)
    if not checked:
        raise InvalidTarget("a notification listener needs at least one target")
    for target in checked:
        if not isinstance(target, Target) or target.topic is None:
            raise InvalidTarget(
                f"invalid target {target!r}: expected a leveret.Target with a topic"
            )
        if target.server is not None or target.fanout:
            raise InvalidTarget(
                f"invalid target {target!r}: a notification target uses only "
                "topic and exchange"
            )
    return checked


def _check_options(
    pool: str | None,
    max_workers: int,
    max_redeliveries: int,
    grace_period: float,
    prefetch: int,
) -> None:
    if pool is not None and (not isinstance(pool, str) or not pool):
        raise InvalidTarget(f"invalid pool {pool!r}: expected non-empty text or None")
    check_consumer_options(max_workers, max_redeliveries, grace_period, prefetch)


def message_key(notification: Notification, body: bytes) -> str:
    """Return the id that counts a message's requeues across deliveries."""
    for value in (notification.message_id, notification.unique_id):
        if isinstance(value, str) and value:
            return value
    return hashlib.sha256(body).hexdigest()


def describe(notification: Notification) -> str:
    """Return the ids of *notification* for log lines."""
    return (
        f"message_id={notification.message_id} event_type={notification.event_type} "
        f"priority={notification.priority or '(none)'} "
        f"publisher_id={notification.publisher_id}"
    )


class ListenerCore(AsyncService):
    """Life cycle, decoding and settling shared by the single and batch listeners.

    :param transport: from :func:`leveret.get_transport`.
    :param targets: :class:`~leveret.Target` objects with a topic and
        optionally an exchange (default: the transport's control exchange).
    :param endpoints: objects with methods named after priorities, see
        ``leveret._notification_dispatch``.
    :param pool: name of the queue shared by the listeners of one pool; None
        shares the ``TOPIC.PRIORITY`` queues with all pool-less listeners.
    :param max_workers: threads that run sync endpoint methods.
    :param requeue_on_error: requeue a message whose method raised (the
        default); False drops it with an ERROR log line instead. A method that
        returns ``NotificationResult.REQUEUE`` is requeued either way.
    :param max_redeliveries: requeues of one message before it is dropped
        with an ERROR log line; 0 never requeues.
    :param grace_period: seconds ``stop()`` lets methods in progress finish
        before they are cancelled and their messages requeued.
    :param prefetch: messages the broker may deliver before they are settled.
    """

    def __init__(
        self,
        transport: Transport,
        targets: Sequence[Target],
        endpoints: Sequence[object],
        pool: str | None = None,
        *,
        max_workers: int = DEFAULT_MAX_WORKERS,
        requeue_on_error: bool = True,
        max_redeliveries: int = DEFAULT_MAX_REDELIVERIES,
        grace_period: float = DEFAULT_GRACE_PERIOD,
        prefetch: int = DEFAULT_PREFETCH,
    ) -> None:
        self.targets = _check_targets(targets)
        _check_options(pool, max_workers, max_redeliveries, grace_period, prefetch)
        self.transport = transport
        self.pool = pool
        self.requeue_on_error = requeue_on_error
        self.grace_period = grace_period
        self.prefetch = prefetch
        self._pool = WorkerPool(max_workers, "leveret-notify")
        self.dispatcher = NotificationDispatcher(endpoints, self._pool)
        self._redeliveries = RedeliveryLimit(max_redeliveries)
        self._listener: Listener | None = None
        self._in_progress: set[asyncio.Task[None]] = set()
        self.stopped = threading.Event()
        self.stopping = False

    def __repr__(self) -> str:
        topics = ",".join(str(target.topic) for target in self.targets)
        return f"<{type(self).__name__} topics={topics} pool={self.pool}>"

    @property
    def addresses(self) -> list[NotificationAddress]:
        """The ``TOPIC.PRIORITY`` queues for the priorities endpoints handle."""
        default = self.transport.default_exchange
        return [
            NotificationAddress(target.exchange or default, str(target.topic), priority)
            for target in self.targets
            for priority in self.dispatcher.priorities
        ]

    def _label(self) -> str:
        topics = ",".join(str(target.topic) for target in self.targets)
        return f"topics={topics} pool={self.pool}"

    # Life cycle, on the transport's loop.

    async def start_on_loop(self) -> None:
        if self.stopping:
            raise TransportClosed(f"{self!r} was stopped; create a new listener")
        if self._listener is not None:
            return
        self._listener = await self.transport.listen_notifications(
            self.addresses, self.on_message, pool=self.pool, prefetch=self.prefetch
        )
        logger.info(
            "listener.started %s priorities=%s",
            self._label(),
            ",".join(self.dispatcher.priorities),
        )

    async def stop_on_loop(self) -> None:
        if self.stopping:
            return
        self.stopping = True
        if self._listener is not None:
            await self._listener.stop()
        await self.before_drain()
        await self._drain()
        if self._listener is not None:
            await self._listener.close()
        self._pool.shutdown()
        self.mark_stopped()
        logger.info("listener.stopped %s", self._label())

    async def before_drain(self) -> None:
        """Hook run after the consumers stop, before waiting for the work."""

    async def _drain(self) -> None:
        if not self._in_progress:
            return
        _, late = await asyncio.wait(self._in_progress, timeout=self.grace_period)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)
            logger.warning(
                "listener.stop %s cancelled=%d reason=grace period of %g s passed",
                self._label(),
                len(late),
                self.grace_period,
            )

    # Message handling, on the transport's loop.

    def on_message(self, message: IncomingMessage) -> None:
        raise NotImplementedError

    def track(self, work: Coroutine[Any, Any, None]) -> None:
        """Run *work* as a task that ``stop()`` waits for."""
        task = asyncio.get_running_loop().create_task(work)
        self._in_progress.add(task)
        task.add_done_callback(self._in_progress.discard)

    async def requeue_unhandled(
        self,
        message: IncomingMessage,
        reason: str,
        notification: Notification | None = None,
    ) -> None:
        """Put back a message the listener will not handle."""
        ids = "" if notification is None else f" {describe(notification)}"
        logger.info("notification.requeued %s%s reason=%s", self._label(), ids, reason)
        await message.reject(requeue=True)

    async def decode(self, message: IncomingMessage) -> Notification | None:
        """Decode *message*, or reject a malformed one for good and return None."""
        try:
            return decode_notification(message.body)
        except MalformedMessage as exc:
            logger.warning(
                "notification.dropped %s reason=malformed error=%s", self._label(), exc
            )
            await message.reject(requeue=False)
            return None

    def check_priority(self, notification: Notification) -> bool:
        """Tell whether *notification* has a known priority, and log it when not."""
        if notification.priority in PRIORITIES:
            return True
        logger.warning(
            "notification.unknown_priority %s %s reason=no such priority, acknowledged",
            self._label(),
            describe(notification),
        )
        return False

    async def settle(
        self,
        message: IncomingMessage,
        notification: Notification,
        outcome: DispatchOutcome,
    ) -> None:
        """Acknowledge, requeue or drop *message* after its dispatch."""
        key = message_key(notification, message.body)
        if outcome.result is NotificationResult.HANDLED:
            self._redeliveries.forget(key)
            await message.ack()
            return
        ids = f"{self._label()} {describe(notification)} callback={outcome.callback}"
        error = outcome.error
        if error is not None and not self.requeue_on_error:
            logger.error(
                "notification.dropped %s reason=endpoint raised and "
                "requeue_on_error is False error=%r",
                ids,
                error,
                exc_info=error,
            )
            await message.reject(requeue=False)
            return
        earlier = self._redeliveries.deliveries_before(key, message.delivery_count)
        if self._redeliveries.allow_requeue(key, message.delivery_count):
            logger.warning(
                "notification.requeued %s delivery=%d error=%r",
                ids,
                earlier + 1,
                error,
                exc_info=error,
            )
            await message.reject(requeue=True)
            return
        logger.error(
            "notification.dropped %s reason=requeued %d times, max_redeliveries "
            "reached error=%r",
            ids,
            earlier,
            error,
            exc_info=error,
        )
        await message.reject(requeue=False)


class AsyncNotificationListener(ListenerCore):
    """Deliver notifications to endpoint methods, from asyncio code.

    Endpoint methods take ``(context, publisher_id, event_type, payload,
    metadata)``: *context* is a :class:`~leveret.RequestContext` rebuilt from
    the message and *metadata* is ``{"message_id": ..., "timestamp": ...}``.
    See :class:`ListenerCore` for the constructor's arguments.
    """

    def on_message(self, message: IncomingMessage) -> None:
        if self.stopping:
            self.track(self.requeue_unhandled(message, "listener stopping"))
            return
        self.track(self._handle(message))

    async def _handle(self, message: IncomingMessage) -> None:
        notification = await self.decode(message)
        if notification is None:
            return
        logger.debug("notification.received %s", describe(notification))
        try:
            outcome = HANDLED
            if self.check_priority(notification):
                outcome = await self.dispatcher.dispatch(
                    notification, lambda: message.settleable
                )
        except asyncio.CancelledError:
            await self.requeue_unhandled(message, "cancelled by stop()", notification)
            raise
        except StaleDelivery:
            # Taken before the connection dropped, and not started: the
            # broker delivers it again, so this copy is not handled.
            logger.info(
                "notification.skipped %s %s reason=its connection dropped "
                "before it started; the broker delivers it again",
                self._label(),
                describe(notification),
            )
            return
        await self.settle(message, notification, outcome)


class BlockingListener(BlockingService):
    """The blocking face shared by the notification listeners."""

    _service: ListenerCore

    @property
    def pool(self) -> str | None:
        return self._service.pool

    @property
    def targets(self) -> tuple[Target, ...]:
        return self._service.targets


class NotificationListener(BlockingListener):
    """The blocking listener: the same arguments as :class:`AsyncNotificationListener`,
    run on the transport's event loop thread. Sync endpoint methods run in its
    thread pool."""

    def __init__(
        self,
        transport: Transport,
        targets: Sequence[Target],
        endpoints: Sequence[object],
        pool: str | None = None,
        *,
        max_workers: int = DEFAULT_MAX_WORKERS,
        requeue_on_error: bool = True,
        max_redeliveries: int = DEFAULT_MAX_REDELIVERIES,
        grace_period: float = DEFAULT_GRACE_PERIOD,
        prefetch: int = DEFAULT_PREFETCH,
    ) -> None:
        self._service = AsyncNotificationListener(
            transport,
            targets,
            endpoints,
            pool,
            max_workers=max_workers,
            requeue_on_error=requeue_on_error,
            max_redeliveries=max_redeliveries,
            grace_period=grace_period,
            prefetch=prefetch,
        )
