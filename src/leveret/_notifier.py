"""Notifiers: :class:`AsyncNotifier` and its blocking twin :class:`Notifier`.

A notifier publishes each notification once per topic to the transport's
control exchange, with routing key ``TOPIC.PRIORITY``, and declares the queue
of that name first so that the notification is kept until a listener takes
it. The notification is built in the caller's thread or task, so the bound
request context (:func:`leveret.get_context`) is the caller's, and an
unencodable payload raises :class:`~leveret.SerializationError` there.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Self

from . import _envelope
from ._checks import check_message_bytes
from ._context import RequestContext, as_context, get_context
from ._errors import ConfigurationError
from ._notification import encode_notification, notification_fields
from ._notification_context import notification_context
from ._publish_retry import (
    DEFAULT_ATTEMPT_TIMEOUT,
    DEFAULT_SEND_TIMEOUT,
    RetryPolicy,
    send_with_retry,
)
from .transports.base import NotificationAddress, Transport

__all__ = ["AsyncNotifier", "Notifier"]

logger = logging.getLogger("leveret.notify")

DEFAULT_TOPICS = ("notifications",)

_UNSET: Any = object()


def _check_topics(topics: Sequence[str]) -> tuple[str, ...]:
    if isinstance(topics, str):
        raise ConfigurationError(
            f"invalid topics {topics!r}: expected a list of topics, e.g. [{topics!r}]"
        )
    checked = tuple(topics)
    if not checked:
        raise ConfigurationError("invalid topics []: give at least one topic")
    for topic in checked:
        if not isinstance(topic, str) or not topic:
            raise ConfigurationError(f"invalid topic {topic!r}: expected text")
    return checked


class _Outgoing:
    """One notification, encoded once for each topic."""

    __slots__ = ("bodies", "description")

    def __init__(
        self, bodies: list[tuple[NotificationAddress, bytes]], description: str
    ) -> None:
        self.bodies = bodies
        self.description = description


class _NotifierConfig:
    """Settings shared by a notifier and its ``prepare`` copies."""

    def __init__(
        self,
        transport: Transport,
        publisher_id: str | None,
        topics: Sequence[str],
        policy: RetryPolicy,
        include_secrets: bool,
        context: RequestContext | Mapping[str, Any] | None,
        max_message_bytes: int,
    ) -> None:
        if publisher_id is not None and not isinstance(publisher_id, str):
            raise ConfigurationError(
                f"invalid publisher_id {publisher_id!r}: expected text or None"
            )
        self.transport = transport
        self.publisher_id = publisher_id
        self.topics = _check_topics(topics)
        self.policy = policy
        self.include_secrets = include_secrets
        self.context = as_context(context)
        self.max_message_bytes = check_message_bytes(max_message_bytes)

    def prepared(self, changes: dict[str, Any]) -> _NotifierConfig:
        def pick(name: str, current: Any) -> Any:
            value = changes[name]
            return current if value is _UNSET else value

        policy = RetryPolicy(
            pick("retry", self.policy.retry),
            pick("timeout", self.policy.timeout),
            self.policy.attempt_timeout,
        )
        return _NotifierConfig(
            self.transport,
            pick("publisher_id", self.publisher_id),
            pick("topics", self.topics),
            policy,
            self.include_secrets,
            pick("context", self.context),
            self.max_message_bytes,
        )

    def outgoing(self, priority: str, event_type: str, payload: Any) -> _Outgoing:
        """Encode the notification in the caller's thread or task."""
        if not isinstance(event_type, str) or not event_type:
            raise ConfigurationError(
                f"invalid event_type {event_type!r}: expected non-empty text"
            )
        context = self.context if self.context is not None else get_context()
        fields = notification_fields(self.publisher_id, event_type, priority, payload)
        sent_context = notification_context(context, self.include_secrets)
        exchange = self.transport.default_exchange
        bodies = [
            (
                NotificationAddress(exchange, topic, priority),
                encode_notification(fields, sent_context, self.max_message_bytes),
            )
            for topic in self.topics
        ]
        description = (
            f"{event_type} (message_id {fields['message_id']}, priority {priority})"
        )
        return _Outgoing(bodies, description)


async def _send(config: _NotifierConfig, outgoing: _Outgoing) -> None:
    """Publish to every topic, each with its own retries, on the transport's loop."""
    transport = config.transport
    for address, body in outgoing.bodies:
        description = (
            f"{outgoing.description} to {address.exchange}/{address.routing_key}"
        )

        async def attempt(
            address: NotificationAddress = address, body: bytes = body
        ) -> None:
            await transport.send_notification(
                address, body, retry=config.policy.max_retries
            )

        await send_with_retry(
            attempt, config.policy, description, transport.connection_note
        )
        logger.debug("notification.sent %s", description)


class _NotifierBase:
    """Constructor and ``prepare`` shared by the asyncio and blocking notifiers.

    :param transport: from :func:`leveret.get_transport`.
    :param publisher_id: who sends, by convention ``SERVICE.HOST`` (e.g.
        ``compute.host1``). None is allowed and sent as null.
    :param topics: each notification goes to each of these topics.
    :param retry: retries after a failed attempt, counted as oslo.messaging
        does: None retries until *timeout*, 0 never retries, N retries N times.
    :param include_secrets: send the whole request context. By default only
        the fields in ``leveret._notification_context.SAFE_CONTEXT_KEYS`` are
        sent, so tokens and passwords never leave the process.
    :param timeout: seconds one notification may take on each topic, retries
        and waiting for the broker included, before :class:`~leveret.MessagingTimeout`
        (or :class:`~leveret.ConnectionLost` when the last attempt failed on
        the connection) is raised. It bounds ``retry=None`` as well, so a
        notifier never blocks forever on a broker that is down.
    :param attempt_timeout: seconds one attempt may take, waiting for a
        connection to the broker included.
    :param context: sent instead of the bound context (:func:`leveret.get_context`);
        a dict is read as an oslo.context dict (``RequestContext.from_dict``).
    :param max_message_bytes: larger notifications raise
        :class:`~leveret.MessageTooLarge` before anything is sent.

    Unlike oslo.messaging, whose notifier logs a failed send and returns,
    a leveret notifier raises, so the caller decides what a lost
    notification means.
    """

    def __init__(
        self,
        transport: Transport,
        publisher_id: str | None,
        topics: Sequence[str] = DEFAULT_TOPICS,
        *,
        retry: int | None = None,
        include_secrets: bool = False,
        timeout: float = DEFAULT_SEND_TIMEOUT,
        attempt_timeout: float = DEFAULT_ATTEMPT_TIMEOUT,
        context: RequestContext | Mapping[str, Any] | None = None,
        max_message_bytes: int = _envelope.DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self._config = _NotifierConfig(
            transport,
            publisher_id,
            topics,
            RetryPolicy(retry, timeout, attempt_timeout),
            include_secrets,
            context,
            max_message_bytes,
        )

    @classmethod
    def _from_config(cls, config: _NotifierConfig) -> Self:
        notifier = cls.__new__(cls)
        notifier._config = config
        return notifier

    @property
    def publisher_id(self) -> str | None:
        return self._config.publisher_id

    @property
    def topics(self) -> tuple[str, ...]:
        return self._config.topics

    @property
    def retry(self) -> int | None:
        return self._config.policy.retry

    def prepare(
        self,
        *,
        publisher_id: str | None = _UNSET,
        topics: Sequence[str] = _UNSET,
        retry: int | None = _UNSET,
        timeout: float = _UNSET,
        context: RequestContext | Mapping[str, Any] | None = _UNSET,
    ) -> Self:
        """Return a notifier with the given fields overridden."""
        changes = {
            "publisher_id": publisher_id,
            "topics": topics,
            "retry": retry,
            "timeout": timeout,
            "context": context,
        }
        return self._from_config(self._config.prepared(changes))


class AsyncNotifier(_NotifierBase):
    """Send notifications from asyncio code.

    Each method sends one notification of its priority, with *event_type*
    (e.g. ``"instance.create.end"``) and a JSON-serializable *payload*. See
    :class:`_NotifierBase` for the constructor's arguments.
    """

    async def _notify(self, priority: str, event_type: str, payload: Any) -> None:
        config = self._config
        outgoing = config.outgoing(priority, event_type, payload)
        await config.transport.binding.run_async(_send(config, outgoing))

    async def audit(self, event_type: str, payload: Any) -> None:
        await self._notify("audit", event_type, payload)

    async def debug(self, event_type: str, payload: Any) -> None:
        await self._notify("debug", event_type, payload)

    async def info(self, event_type: str, payload: Any) -> None:
        await self._notify("info", event_type, payload)

    async def warn(self, event_type: str, payload: Any) -> None:
        await self._notify("warn", event_type, payload)

    async def warning(self, event_type: str, payload: Any) -> None:
        """Send with priority WARN, as :meth:`warn` does."""
        await self._notify("warn", event_type, payload)

    async def error(self, event_type: str, payload: Any) -> None:
        await self._notify("error", event_type, payload)

    async def critical(self, event_type: str, payload: Any) -> None:
        await self._notify("critical", event_type, payload)

    async def sample(self, event_type: str, payload: Any) -> None:
        await self._notify("sample", event_type, payload)


class Notifier(_NotifierBase):
    """The blocking notifier: the same methods as :class:`AsyncNotifier`.

    Safe to share between threads. Do not use it on the transport's own event
    loop, where blocking would deadlock; use :class:`AsyncNotifier` there.
    """

    def _notify(self, priority: str, event_type: str, payload: Any) -> None:
        config = self._config
        outgoing = config.outgoing(priority, event_type, payload)
        config.transport.binding.run_blocking(_send(config, outgoing))

    def audit(self, event_type: str, payload: Any) -> None:
        self._notify("audit", event_type, payload)

    def debug(self, event_type: str, payload: Any) -> None:
        self._notify("debug", event_type, payload)

    def info(self, event_type: str, payload: Any) -> None:
        self._notify("info", event_type, payload)

    def warn(self, event_type: str, payload: Any) -> None:
        self._notify("warn", event_type, payload)

    def warning(self, event_type: str, payload: Any) -> None:
        """Send with priority WARN, as :meth:`warn` does."""
        self._notify("warn", event_type, payload)

    def error(self, event_type: str, payload: Any) -> None:
        self._notify("error", event_type, payload)

    def critical(self, event_type: str, payload: Any) -> None:
        self._notify("critical", event_type, payload)

    def sample(self, event_type: str, payload: Any) -> None:
        self._notify("sample", event_type, payload)
