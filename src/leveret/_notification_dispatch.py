"""Delivering a notification, or a batch of them, to endpoint methods.

Endpoint methods are named after priorities (``audit``, ``debug``, ``info``,
``warn``, ``error``, ``critical``, ``sample``). The priority used is the
message's ``priority`` field in lower case, not the routing key it came
with, as in oslo.messaging. Every endpoint with that method, and whose
``filter_rule`` (if any) matches, is called in the order the endpoints were
given. The first one that returns :attr:`NotificationResult.REQUEUE` or
raises stops the others.

Sync methods run in the listener's thread pool and ``async def`` methods on
the event loop. The notification's request context is bound while a single
notification's method runs (a batch method gets each context in its items).
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
from collections.abc import Callable, Sequence
from typing import Any

from ._context import RequestContext, reset_current, set_current
from ._errors import ConfigurationError
from ._notification import PRIORITIES, Notification
from ._worker_pool import WorkerPool

__all__ = [
    "Callback",
    "DispatchOutcome",
    "NotificationDispatcher",
    "NotificationResult",
    "StaleDelivery",
]


class NotificationResult(enum.StrEnum):
    """The values an endpoint method may return.

    The values are oslo.messaging's strings, so ``return "requeue"`` from an
    endpoint written for oslo.messaging works too. None means HANDLED.
    """

    HANDLED = "handled"
    REQUEUE = "requeue"


@dataclasses.dataclass(frozen=True, slots=True)
class Callback:
    """One endpoint method for one priority."""

    name: str  # "EndpointClass.priority", for log lines
    function: Callable[..., Any]
    is_async: bool
    filter_rule: Any  # an object with oslo's match(), or None


@dataclasses.dataclass(frozen=True, slots=True)
class DispatchOutcome:
    """HANDLED, or REQUEUE with the callback that asked for it (and its error)."""

    result: NotificationResult
    callback: str | None = None
    error: Exception | None = None


HANDLED = DispatchOutcome(NotificationResult.HANDLED)


def _callbacks_by_priority(endpoints: Sequence[object]) -> dict[str, list[Callback]]:
    callbacks: dict[str, list[Callback]] = {}
    for endpoint in endpoints:
        filter_rule = getattr(endpoint, "filter_rule", None)
        if filter_rule is not None and not callable(
            getattr(filter_rule, "match", None)
        ):
            raise ConfigurationError(
                f"invalid filter_rule {filter_rule!r} of endpoint {endpoint!r}: "
                "expected a leveret.NotificationFilter"
            )
        for priority in PRIORITIES:
            function = getattr(endpoint, priority, None)
            if not callable(function):
                continue
            callbacks.setdefault(priority, []).append(
                Callback(
                    name=f"{type(endpoint).__name__}.{priority}",
                    function=function,
                    is_async=inspect.iscoroutinefunction(function),
                    filter_rule=filter_rule,
                )
            )
    return callbacks


def _passes(callback: Callback, notification: Notification) -> bool:
    if callback.filter_rule is None:
        return True
    return bool(
        callback.filter_rule.match(
            notification.context,
            notification.publisher_id,
            notification.event_type,
            notification.metadata,
            notification.payload,
        )
    )


class StaleDelivery(Exception):
    """The message's connection dropped before its method started, so the
    broker delivers it again and this copy is left unhandled."""


def _always() -> bool:
    return True


def _check_live(live: Callable[[], bool]) -> None:
    if not live():
        raise StaleDelivery


def _call_in_context(
    live: Callable[[], bool],
    context: RequestContext | None,
    function: Callable[..., Any],
    *args: Any,
) -> Any:
    _check_live(live)
    token = set_current(context)
    try:
        return function(*args)
    finally:
        reset_current(token)


def batch_item(notification: Notification) -> dict[str, Any]:
    """Return one item of a batch, in oslo.messaging's shape."""
    return {
        "ctxt": RequestContext.from_dict(notification.context),
        "publisher_id": notification.publisher_id,
        "event_type": notification.event_type,
        "payload": notification.payload,
        "metadata": notification.metadata,
    }


class NotificationDispatcher:
    """The endpoint methods of one listener, by priority."""

    def __init__(
        self,
        endpoints: Sequence[object],
        pool: WorkerPool,
    ) -> None:
        self._callbacks = _callbacks_by_priority(endpoints)
        if not self._callbacks:
            raise ConfigurationError(
                "no endpoint has a method named after a priority "
                f"({', '.join(PRIORITIES)}), so the listener would receive nothing"
            )
        self._pool = pool

    @property
    def priorities(self) -> list[str]:
        """The priorities some endpoint handles, in oslo.messaging's order."""
        return [priority for priority in PRIORITIES if priority in self._callbacks]

    async def _run(
        self,
        callback: Callback,
        context: RequestContext | None,
        live: Callable[[], bool],
        *args: Any,
    ) -> Any:
        if callback.is_async:
            _check_live(live)
            token = set_current(context)
            try:
                return await callback.function(*args)
            finally:
                reset_current(token)
        return await self._pool.run(
            _call_in_context, live, context, callback.function, *args
        )

    async def _outcome(
        self,
        callback: Callback,
        context: RequestContext | None,
        *args: Any,
        live: Callable[[], bool] = _always,
    ) -> DispatchOutcome | None:
        """Run *callback* and return an outcome when it stops the dispatch."""
        try:
            result = await self._run(callback, context, live, *args)
        except StaleDelivery:
            raise
        except Exception as exc:
            return DispatchOutcome(NotificationResult.REQUEUE, callback.name, exc)
        if result == NotificationResult.REQUEUE:
            return DispatchOutcome(NotificationResult.REQUEUE, callback.name)
        return None

    async def dispatch(
        self, notification: Notification, live: Callable[[], bool] = _always
    ) -> DispatchOutcome:
        """Call the endpoint methods for one notification.

        Raises StaleDelivery when ``live()`` is false as a method is about
        to start, in a pool thread or on the loop.
        """
        context = RequestContext.from_dict(notification.context)
        args = (
            context,
            notification.publisher_id,
            notification.event_type,
            notification.payload,
            notification.metadata,
        )
        for callback in self._callbacks.get(notification.priority, ()):
            if not _passes(callback, notification):
                continue
            stop = await self._outcome(callback, context, *args, live=live)
            if stop is not None:
                return stop
        return HANDLED

    async def dispatch_batch(
        self, priority: str, notifications: Sequence[Notification]
    ) -> DispatchOutcome:
        """Call the endpoint methods of *priority* with a list of items each.

        Each method gets only the notifications its filter passes, and is not
        called when none does.
        """
        for callback in self._callbacks.get(priority, ()):
            passed = [item for item in notifications if _passes(callback, item)]
            if not passed:
                continue
            items = [batch_item(notification) for notification in passed]
            stop = await self._outcome(callback, None, items)
            if stop is not None:
                return stop
        return HANDLED
