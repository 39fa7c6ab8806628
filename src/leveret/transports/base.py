"""The contract between the API layer and a transport.

A transport moves opaque message bodies. It follows the addressing of
oslo.messaging's rabbit driver and decodes no request, reply or endpoint:

- :meth:`Transport.send` publishes a request to an :class:`Address`: the shared
  queue of a topic, the queue of one server of the topic, or every server of a
  topic (fanout). It raises :class:`~leveret.NoServerError` when nothing would
  receive the message.
- :meth:`Transport.listen` consumes the queues of a server's addresses and
  calls a handler for each message on the transport's event loop.
- :meth:`Transport.reply_queue` starts the one reply consumer of the transport
  and returns its queue name; replies are fed to :attr:`Transport.replies`.
  :meth:`Transport.send_reply` publishes a reply to such a queue.
- :meth:`Transport.send_notification` and :meth:`Transport.listen_notifications`
  do the same for notifications, whose queues keep messages until consumed.

All coroutines run on the transport's bound event loop (see ``_loop``); the
API layer takes care of getting there.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import dataclasses
from collections.abc import Callable, Sequence
from typing import Protocol

from .._checks import check_seconds
from .._errors import ConnectionLost, TransportClosed
from .._loop import LoopBinding
from .._replies import ReplyRouter

__all__ = [
    "Address",
    "IncomingMessage",
    "Listener",
    "MessageHandler",
    "NotificationAddress",
    "Transport",
]

DEFAULT_EXCHANGE = "openstack"
DEFAULT_PREFETCH = 64  # messages
DEFAULT_CONNECT_TIMEOUT = 10.0  # seconds Transport.connect waits
# Seconds a reply may wait for the broker (e.g. during a reconnect) before it
# is dropped; the caller's own deadline has usually passed by then.
REPLY_SEND_TIMEOUT = 30.0


@dataclasses.dataclass(frozen=True, slots=True)
class Address:
    """The destination of a request: a topic, one server of it, or all of them."""

    exchange: str
    topic: str
    server: str | None = None
    fanout: bool = False

    def __str__(self) -> str:
        if self.fanout:
            return f"{self.exchange}/{self.topic}_fanout"
        if self.server is not None:
            return f"{self.exchange}/{self.topic}.{self.server}"
        return f"{self.exchange}/{self.topic}"


@dataclasses.dataclass(frozen=True, slots=True)
class NotificationAddress:
    """A notification queue: routing key and queue name ``topic.priority``."""

    exchange: str
    topic: str
    priority: str

    @property
    def routing_key(self) -> str:
        return f"{self.topic}.{self.priority}"


class IncomingMessage(Protocol):
    """A delivered message; settle it once with ack or reject."""

    @property
    def body(self) -> bytes: ...

    @property
    def redelivered(self) -> bool:
        """True when the broker delivered this message before."""
        ...

    @property
    def delivery_count(self) -> int:
        """Earlier deliveries of this message, where the broker reports it."""
        ...

    @property
    def settleable(self) -> bool:
        """False once the channel it came on has closed: the broker then
        delivers the message again, and ack and reject do nothing."""
        ...

    async def ack(self) -> None: ...

    async def reject(self, requeue: bool) -> None: ...


# Called on the transport's loop for each message. It must not block: it
# starts the work (a task, a thread-pool job) and returns.
MessageHandler = Callable[[IncomingMessage], None]


class Listener(Protocol):
    """The consumers started by one ``listen`` call."""

    async def stop(self) -> None:
        """Cancel the consumers; no message is delivered after this returns.

        Messages already delivered can still be settled until :meth:`close`.
        """
        ...

    async def close(self) -> None:
        """Release the consumers' channel; unsettled messages are requeued."""
        ...


class Transport(abc.ABC):
    """A connection to a broker (or the in-process one) shared by clients
    and servers. Create it with :func:`leveret.get_transport`."""

    def __init__(self, default_exchange: str = DEFAULT_EXCHANGE) -> None:
        self.default_exchange = default_exchange
        # Unsettled messages per consumer when a server does not set its own.
        self.default_prefetch = DEFAULT_PREFETCH
        self.replies = ReplyRouter()
        self.binding = LoopBinding(thread_name=f"leveret-{type(self).__name__}")
        self.closed = False

    def check_open(self) -> None:
        if self.closed:
            raise TransportClosed(f"{self!r} is closed")

    @abc.abstractmethod
    async def send(
        self, address: Address, body: bytes, *, expiration: float | None = None
    ) -> None:
        """Publish a request; *expiration* (seconds) drops it if not taken by then."""

    @abc.abstractmethod
    async def send_reply(self, reply_queue: str, body: bytes) -> None:
        """Publish a reply to a caller's reply queue.

        Servers await it without a deadline of their own: a transport that
        can wait for a broker bounds the wait (``REPLY_SEND_TIMEOUT``) and
        raises :class:`~leveret.MessagingTimeout` past it.
        """

    @abc.abstractmethod
    async def reply_queue(self) -> str:
        """Start the reply consumer if needed; return its queue name."""

    @abc.abstractmethod
    async def listen(
        self,
        addresses: Sequence[Address],
        handler: MessageHandler,
        *,
        prefetch: int,
    ) -> Listener:
        """Consume the queues of *addresses*, at most *prefetch* unsettled."""

    @abc.abstractmethod
    async def send_notification(
        self, address: NotificationAddress, body: bytes, *, retry: int | None
    ) -> None:
        """Publish a notification to a queue that keeps it until consumed."""

    @abc.abstractmethod
    async def listen_notifications(
        self,
        addresses: Sequence[NotificationAddress],
        handler: MessageHandler,
        *,
        pool: str | None,
        prefetch: int,
    ) -> Listener:
        """Consume notification queues; listeners of one *pool* share them."""

    @abc.abstractmethod
    async def close_on_loop(self) -> None:
        """Close the connection, on the bound loop; sets ``closed``."""

    async def connect_on_loop(self) -> None:
        """Wait until the broker connection is open; the caller bounds the wait."""
        self.check_open()

    async def aconnect(self) -> None:
        """Wait until the broker connection is open.

        Bound the wait with ``asyncio.timeout``. Transports connect by
        themselves on first use and after every failure, so this only lets a
        caller check early that the broker can be reached.
        """
        await self.binding.run_async(self.connect_on_loop())

    def connect(self, timeout: float = DEFAULT_CONNECT_TIMEOUT) -> None:
        """Wait until connected, or raise ConnectionLost after *timeout* seconds."""
        self.binding.run_blocking(
            self._connect_within(check_seconds("timeout", timeout))
        )

    async def _connect_within(self, seconds: float) -> None:
        try:
            async with asyncio.timeout(seconds):
                await self.connect_on_loop()
        except TimeoutError:
            raise ConnectionLost(
                f"{self!r} could not connect within {seconds:g} s: "
                f"{self.connection_error() or 'no answer'}"
            ) from None

    def connection_error(self) -> str | None:
        """Say why the transport is not connected now, or None if it is."""
        return None

    def connection_note(self) -> str:
        """Return why the broker may not take messages now, as "; WHY" to
        append to an error, or "" when nothing is known to stop it."""
        error = self.connection_error()
        return "" if error is None else f"; no connection to the broker: {error}"

    async def aclose(self) -> None:
        """Close from asyncio code; pending calls fail with TransportClosed.

        Safe to call twice, and from any event loop.
        """
        loop = self.binding.loop
        if not self.closed and loop is not None and loop.is_running():
            # TransportClosed: the bound loop stopped while closing, which
            # ends everything the close would have ended.
            with contextlib.suppress(TransportClosed):
                await self.binding.run_async(self.close_on_loop())
        self.closed = True
        self.binding.close(wait=False)

    def close(self) -> None:
        """Close from sync code; safe to call twice."""
        if self.closed:
            self.binding.close()
            return
        loop = self.binding.loop
        if self.binding.in_loop():
            raise RuntimeError("close() would block the event loop; await aclose()")
        if loop is not None and loop.is_running():
            with contextlib.suppress(TransportClosed):
                self.binding.run_blocking(self.close_on_loop())
        self.closed = True
        self.binding.close()
