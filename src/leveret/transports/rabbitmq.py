"""The RabbitMQ (AMQP 0-9-1) transport, on leveret's own AMQP client.

Topology, the same as oslo.messaging's rabbit driver uses:

- the control exchange (topic type, default ``openstack``); a server consumes
  queue ``TOPIC`` (shared by all servers of the topic) and ``TOPIC.SERVER``,
  bound with those routing keys;
- fanout exchange ``TOPIC_fanout`` (fanout type) with one queue per server,
  ``TOPIC_fanout_<hex>``, whose name stays the same across reconnects;
- replies are published through the default exchange with the caller's
  reply queue name as the routing key;
- notifications go to the control exchange with routing key
  ``TOPIC.PRIORITY``, and queue ``TOPIC.PRIORITY`` (or the pool's queue)
  keeps them until a listener takes them.

Queues leveret declares are durable (or quorum, an option), or exclusive for
reply and fanout queues, because RabbitMQ 4.3 rejects queues that are both
non-durable and non-exclusive. When a queue or exchange already exists with
other arguments (``PRECONDITION_FAILED``, e.g. declared by an oslo.messaging
service with ``amqp_durable_queues = false``), leveret uses it as it is.

Requests are published with the mandatory flag and publisher confirms, so a
request that no queue would receive raises :class:`~leveret.NoServerError`
at once; calls carry an expiration equal to their timeout so an abandoned
request is not executed late.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import ssl
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

from .._envelope import new_id
from .._errors import (
    AccessRefused,
    ConfigurationError,
    InvalidTarget,
    MessagingTimeout,
    NoServerError,
    TransportClosed,
    TransportError,
)
from . import _amqp_frames as frames
from ._amqp_connection import ConnectionSupervisor, backoff_delay, lost
from ._amqp_protocol import (
    ACCESS_REFUSED,
    NOT_FOUND,
    PRECONDITION_FAILED,
    AMQPError,
    Channel,
    ChannelClosed,
    Connection,
    ConsumerCallback,
    Delivery,
    Unroutable,
)
from ._amqp_url import RabbitMQOptions, parse_rabbitmq_url
from .base import (
    REPLY_SEND_TIMEOUT,
    Address,
    Listener,
    MessageHandler,
    NotificationAddress,
    Transport,
)

__all__ = ["RabbitMQTransport"]

logger = logging.getLogger("leveret.transport.rabbitmq")

_PERSISTENT = 2
_TRANSIENT = 1
# Per-message TTLs are capped at about 49.7 days. RabbitMQ 3.10 closes the
# channel with 406 PRECONDITION_FAILED for a TTL of 3.6e11 ms (measured), and
# no request is worth delivering that late.
_MAX_EXPIRATION_MS = 2**32 - 1


def _message_properties(persistent: bool, expiration: str | None) -> tuple[int, bytes]:
    return frames.properties(
        content_type="application/json",
        content_encoding="utf-8",
        delivery_mode=_PERSISTENT if persistent else _TRANSIENT,
        expiration=expiration,
    )


# Encoded once: the properties of messages without an expiration.
_PERSISTENT_PROPERTIES = _message_properties(True, None)
_TRANSIENT_PROPERTIES = _message_properties(False, None)

CANCEL_TIMEOUT = 5.0  # seconds a stopping consumer waits for the broker

# Errors of a connection or channel that failed under an operation.
_FAILURES = (AMQPError, OSError)

# Publish channels, by what they carry. Fanout casts have their own: the
# broker deletes a fanout exchange with its last queue, and a publish to a
# deleted exchange closes its channel under every publish in flight on it.
_MAIN = "main"
_FANOUT = "fanout"


class _ExchangeNotFound(NoServerError):
    """The exchange of a publish is gone; the broker closed the channel."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Binding:
    exchange: str
    exchange_type: str
    routing_key: str


@dataclasses.dataclass(frozen=True, slots=True)
class _QueueSpec:
    """A queue to declare (again after each reconnect) and consume."""

    name: str
    bindings: tuple[_Binding, ...]
    durable: bool = True
    exclusive: bool = False
    arguments: dict[str, Any] | None = None


class _Delivery:
    """One delivered message, settled on the channel it came from."""

    __slots__ = ("body", "delivery_count", "redelivered", "_channel", "_tag")

    def __init__(self, delivery: Delivery) -> None:
        self.body = delivery.body
        self.redelivered = delivery.redelivered
        headers = delivery.headers
        count = None if headers is None else headers.get("x-delivery-count")
        self.delivery_count = count if isinstance(count, int) else int(self.redelivered)
        self._channel = delivery.channel
        self._tag = delivery.delivery_tag

    @property
    def settleable(self) -> bool:
        return not self._channel.is_closed

    async def ack(self) -> None:
        try:
            self._channel.ack(self._tag)
        except _FAILURES as exc:
            # The connection closed; the broker redelivers the message.
            logger.debug("delivery.ack_failed tag=%s error=%r", self._tag, exc)

    async def reject(self, requeue: bool) -> None:
        try:
            self._channel.reject(self._tag, requeue=requeue)
        except _FAILURES as exc:
            logger.debug("delivery.reject_failed tag=%s error=%r", self._tag, exc)


class _RabbitListener:
    """Consumers of some queues on one channel, restarted after reconnects."""

    def __init__(
        self,
        transport: RabbitMQTransport,
        specs: Sequence[_QueueSpec],
        handler: MessageHandler,
        prefetch: int,
        no_ack: bool = False,
    ) -> None:
        self._transport = transport
        self.specs = tuple(specs)
        self._handler = handler
        self._prefetch = prefetch
        self._no_ack = no_ack
        self._channel: Channel | None = None
        self._connection: Connection | None = None
        self._consumer_tags: list[str] = []
        self._stopped = False
        self._resuming: set[asyncio.Task[None]] = set()

    async def start(self, connection: Connection) -> None:
        channel = await connection.channel()
        await channel.basic_qos(self._prefetch)
        self._channel = channel
        self._connection = connection
        self._consumer_tags = []
        for spec in self.specs:
            await self._consume(connection, channel, spec)

    async def _consume(
        self, connection: Connection, channel: Channel, spec: _QueueSpec
    ) -> None:
        # Messages consumed without acknowledgement (replies) have nothing
        # to settle, and their handler reads only the body: it takes them as
        # they come.
        on_delivery: ConsumerCallback = self._on_delivery
        if self._no_ack:
            on_delivery = cast(ConsumerCallback, self._handler)
        await self._transport.declare_queue(connection, spec)
        tag = await channel.basic_consume(
            spec.name,
            on_delivery,
            no_ack=self._no_ack,
            on_cancel=lambda tag: self._on_cancelled(tag, spec),
        )
        self._consumer_tags.append(tag)

    def _on_cancelled(self, tag: str, spec: _QueueSpec) -> None:
        """Consume the queue again after the broker cancelled its consumer."""
        if tag in self._consumer_tags:
            self._consumer_tags.remove(tag)
        if not self._stopped:
            task = asyncio.get_running_loop().create_task(self._resume(spec))
            self._resuming.add(task)
            task.add_done_callback(self._resuming.discard)

    async def _resume(self, spec: _QueueSpec) -> None:
        attempt = 0
        while not self._stopped:
            channel, connection = self._channel, self._connection
            if channel is None or channel.is_closed or connection is None:
                return  # the reconnect starts every consumer again
            try:
                await self._consume(connection, channel, spec)
            except _FAILURES as exc:
                delay = backoff_delay(attempt)
                attempt += 1
                logger.warning(
                    "consumer.resume_failed queue=%s error=%r retry_in=%.2fs",
                    spec.name,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            logger.info("consumer.resumed queue=%s", spec.name)
            return

    def _on_delivery(self, delivery: Delivery) -> None:
        self._handler(_Delivery(delivery))

    async def stop(self) -> None:
        self._stopped = True
        for task in list(self._resuming):
            task.cancel()
        self._transport.forget(self)
        channel = self._channel
        if channel is None or channel.is_closed:
            return
        try:
            # A broker that stopped replying must not hold up a stop until
            # the heartbeats notice it.
            async with asyncio.timeout(CANCEL_TIMEOUT):
                for tag in list(self._consumer_tags):
                    await channel.basic_cancel(tag)
        except (*_FAILURES, TimeoutError) as exc:
            logger.debug("consumer.cancel_failed channel=%s error=%r", channel, exc)
        self._consumer_tags = []

    async def close(self) -> None:
        await self.stop()
        channel, self._channel = self._channel, None
        if channel is not None and not channel.is_closed:
            try:
                await channel.close()
            except _FAILURES as exc:
                logger.debug("channel.close_failed error=%r", exc)


class RabbitMQTransport(Transport):
    """A transport on RabbitMQ. Create it with :func:`leveret.get_transport`.

    Its connection, heartbeats and consumers run on an event loop thread of
    its own; clients and servers on any thread or event loop use it. With the
    ``own_loop=false`` URL option they run on the asyncio loop that first
    uses the transport instead, which saves two thread handoffs per call for
    asyncio code on that loop, and stalls heartbeats while that loop blocks.
    """

    def __init__(self, options: RabbitMQOptions) -> None:
        super().__init__(options.exchange)
        self.options = options
        try:
            # Loaded once here, so that a missing or bad file is reported at
            # once instead of as a connection failure retried for ever.
            self._ssl_context = options.ssl_context()
        except (OSError, ssl.SSLError) as exc:
            files = (
                f"ssl_ca_file={options.ssl_ca_file}, "
                f"ssl_cert_file={options.ssl_cert_file}, "
                f"ssl_key_file={options.ssl_key_file}"
            )
            raise ConfigurationError(
                f"cannot load the TLS files ({files}): {exc}"
            ) from None
        self.default_prefetch = options.prefetch
        if options.own_loop:
            self.binding.bind_thread()
        # Else the transport binds to the loop of its first user: the asyncio
        # loop that awaits it first, or a loop thread for a blocking first use.
        self._supervisor = ConnectionSupervisor(
            options, self._on_connected, self._ssl_context
        )
        self._listeners: list[_RabbitListener] = []
        self._reply_listener: _RabbitListener | None = None
        self._reply_queue_name: str | None = None
        self._publish_channels: dict[str, Channel] = {}
        self._declared: set[tuple[str, str]] = set()
        self._channel_lock: asyncio.Lock | None = None
        self._reply_lock: asyncio.Lock | None = None

    @classmethod
    def from_url(cls, url: str | Sequence[str]) -> RabbitMQTransport:
        return cls(parse_rabbitmq_url(url))

    def __repr__(self) -> str:
        return f"RabbitMQTransport(url={self.options.masked_url()!r})"

    # Connection life cycle.

    async def _on_connected(self, connection: Connection) -> None:
        """Declare everything again and restart every consumer."""
        self._declared.clear()
        self._publish_channels = {_MAIN: await connection.channel(confirms=True)}
        if self._reply_listener is not None:
            await self._reply_listener.start(connection)
        for listener in list(self._listeners):
            await listener.start(connection)

    async def connect_on_loop(self) -> None:
        await self._connection()

    def connection_note(self) -> str:
        connection = self._supervisor.connection
        if connection is not None and connection.blocked_reason is not None:
            return (
                "; the broker has blocked publishing on this connection: "
                f"{connection.blocked_reason}"
            )
        return super().connection_note()

    def connection_error(self) -> str | None:
        if self._supervisor.connection is not None:
            return None
        error = self._supervisor.last_error
        return (
            "no connection attempt has finished yet" if error is None else repr(error)
        )

    async def _connection(self) -> Connection:
        self.check_open()
        return await self._supervisor.ready()

    async def _channel(self, purpose: str) -> Channel:
        """Return a publish channel, opening a new one if it was closed."""
        channel = self._publish_channels.get(purpose)
        if channel is not None and not channel.is_closed:
            return channel
        connection = await self._connection()
        if self._channel_lock is None:
            self._channel_lock = asyncio.Lock()
        async with self._channel_lock:
            channel = self._publish_channels.get(purpose)
            if channel is None or channel.is_closed:
                channel = await connection.channel(confirms=True)
                self._publish_channels[purpose] = channel
            return channel

    def forget(self, listener: _RabbitListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    # Declarations.

    async def _declare(
        self,
        connection: Connection,
        kind: str,
        name: str,
        declare: Callable[[Channel, bool], Awaitable[None]],
    ) -> None:
        """Declare an exchange or queue on a throwaway channel.

        *declare* declares it on a channel, passively when its second argument
        is true. A ``PRECONDITION_FAILED`` closes the channel it happened on,
        so the declaration does not share a channel with publishing or
        consuming.
        """
        channel = await connection.channel()
        try:
            try:
                await declare(channel, False)
            except ChannelClosed as exc:
                if exc.reply_code != PRECONDITION_FAILED:
                    raise
                logger.info(
                    "%s.declare_mismatch name=%s error=%s; using it as declared",
                    kind,
                    name,
                    exc,
                )
                channel = await connection.channel()
                await declare(channel, True)
        finally:
            await channel.close()

    async def declare_exchange(
        self,
        connection: Connection,
        name: str,
        exchange_type: str,
        *,
        again: bool = False,
    ) -> None:
        """Declare an exchange unless this connection did, or if *again*."""
        if not again and (exchange_type, name) in self._declared:
            return
        # As oslo.messaging declares them: the control exchange durable only
        # with amqp_durable_queues = true (our durable_exchange option), fanout
        # exchanges non-durable and auto-deleted. One declared otherwise by
        # another service first is accepted as it is.
        auto_delete = exchange_type == "fanout"
        durable = self.options.durable_exchange and not auto_delete

        async def declare(channel: Channel, passive: bool) -> None:
            await channel.exchange_declare(
                name,
                exchange_type,
                passive=passive,
                durable=durable,
                auto_delete=auto_delete,
            )

        await self._declare(connection, "exchange", name, declare)
        self._declared.add((exchange_type, name))

    async def declare_queue(self, connection: Connection, spec: _QueueSpec) -> None:
        for binding in spec.bindings:
            # Declared even when this connection did before: a fanout
            # exchange may have gone with its last queue since.
            await self.declare_exchange(
                connection, binding.exchange, binding.exchange_type, again=True
            )
        if spec.exclusive:
            # An exclusive queue can only be declared on this connection's
            # channels, and never conflicts with another service's.
            channel = await connection.channel()
            try:
                await channel.queue_declare(
                    spec.name,
                    exclusive=True,
                    auto_delete=True,
                    arguments=spec.arguments,
                )
            finally:
                await channel.close()
        else:

            async def declare(channel: Channel, passive: bool) -> None:
                await channel.queue_declare(
                    spec.name,
                    passive=passive,
                    durable=spec.durable,
                    arguments=spec.arguments,
                )

            await self._declare(connection, "queue", spec.name, declare)
        channel = await connection.channel()
        try:
            for binding in spec.bindings:
                await channel.queue_bind(
                    spec.name, binding.exchange, binding.routing_key
                )
        finally:
            await channel.close()

    def _topic_queue_arguments(self) -> dict[str, Any] | None:
        if self.options.quorum_queues:
            return {"x-queue-type": "quorum"}
        return None

    # Publishing.

    async def _publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        mandatory: bool,
        persistent: bool,
        expiration: float | None = None,
        purpose: str = _MAIN,
    ) -> None:
        if expiration is not None:
            milliseconds = min(_MAX_EXPIRATION_MS, max(1, int(expiration * 1000)))
            flags, property_list = _message_properties(persistent, str(milliseconds))
        else:
            flags, property_list = (
                _PERSISTENT_PROPERTIES if persistent else _TRANSIENT_PROPERTIES
            )
        try:
            channel = self._publish_channels.get(purpose)
            if channel is None or channel.is_closed:
                channel = await self._channel(purpose)
            confirm = channel.publish(
                exchange,
                routing_key,
                body,
                mandatory=mandatory,
                property_flags=flags,
                property_list=property_list,
            )
            if confirm is not None:
                await confirm
        except ValueError as exc:  # a name AMQP cannot carry
            raise InvalidTarget(
                f"cannot publish to {exchange}/{routing_key[:60]}: {exc}"
            ) from None
        except Unroutable:
            destination = f"{exchange or '(default exchange)'}/{routing_key}"
            raise NoServerError(
                f"no queue receives messages for {destination}"
            ) from None
        except ChannelClosed as exc:
            if exc.reply_code == NOT_FOUND:
                self._declared = {d for d in self._declared if d[1] != exchange}
                raise _ExchangeNotFound(f"exchange {exchange} does not exist") from None
            raise self._failure(exc) from exc
        except _FAILURES as exc:
            raise self._failure(exc) from exc

    def _failure(self, exc: BaseException) -> TransportError:
        """Translate a connection failure into TransportClosed, AccessRefused
        (the user lacks a permission) or ConnectionLost."""
        if self.closed:
            return TransportClosed(f"{self!r} is closed")
        if isinstance(exc, ChannelClosed) and exc.reply_code == ACCESS_REFUSED:
            return AccessRefused(
                f"the broker refused an operation: {exc}; check the permissions "
                f"of the URL's user on its virtual host ({self!r})"
            )
        return lost(exc)

    async def send(
        self, address: Address, body: bytes, *, expiration: float | None = None
    ) -> None:
        if address.fanout:
            exchange, exchange_type, key = (
                f"{address.topic}_fanout",
                "fanout",
                address.topic,
            )
        elif address.server is not None:
            exchange, exchange_type = address.exchange, "topic"
            key = f"{address.topic}.{address.server}"
        else:
            exchange, exchange_type, key = address.exchange, "topic", address.topic
        purpose = _FANOUT if address.fanout else _MAIN
        for attempt in (1, 2):
            if (exchange_type, exchange) not in self._declared:
                connection = await self._connection()
                try:
                    await self.declare_exchange(connection, exchange, exchange_type)
                except _FAILURES as exc:
                    raise self._failure(exc) from exc
            try:
                # A call (it has an expiration) is useless after its deadline,
                # so it is not written to disk. A cast is, so that it survives
                # a restart.
                await self._publish(
                    exchange,
                    key,
                    body,
                    mandatory=True,
                    persistent=expiration is None,
                    expiration=expiration,
                    purpose=purpose,
                )
                return
            except _ExchangeNotFound:
                # Deleted since it was declared, e.g. a fanout exchange with
                # its last queue: declared again and published once more.
                if attempt == 2:
                    raise

    async def send_reply(self, reply_queue: str, body: bytes) -> None:
        try:
            async with asyncio.timeout(REPLY_SEND_TIMEOUT):
                await self._publish(
                    "", reply_queue, body, mandatory=True, persistent=False
                )
        except TimeoutError:
            raise MessagingTimeout(
                "the broker did not accept the reply within "
                f"{REPLY_SEND_TIMEOUT:g} s{self.connection_note()}"
            ) from None

    async def reply_queue(self) -> str:
        if self._reply_queue_name is not None:
            return self._reply_queue_name
        if self._reply_lock is None:
            self._reply_lock = asyncio.Lock()
        # Callers that ask at once wait for the first one's queue.
        async with self._reply_lock:
            if self._reply_queue_name is None:
                name = f"reply_{new_id()}"
                spec = _QueueSpec(name, bindings=(), durable=False, exclusive=True)
                listener = _RabbitListener(
                    self, [spec], self._on_reply, prefetch=0, no_ack=True
                )
                connection = await self._connection()
                try:
                    await listener.start(connection)
                except _FAILURES as exc:
                    raise self._failure(exc) from exc
                self._reply_listener = listener
                self._reply_queue_name = name
            return self._reply_queue_name

    def _on_reply(self, message: Any) -> None:
        self.replies.deliver(message.body)

    # Consuming.

    async def listen(
        self,
        addresses: Sequence[Address],
        handler: MessageHandler,
        *,
        prefetch: int,
    ) -> Listener:
        specs = [self._queue_spec(address) for address in addresses]
        return await self._start_listener(specs, handler, prefetch)

    def _queue_spec(self, address: Address) -> _QueueSpec:
        if address.fanout:
            exchange = f"{address.topic}_fanout"
            binding = _Binding(exchange, "fanout", address.topic)
            name = f"{exchange}_{new_id()}"
            return _QueueSpec(name, (binding,), durable=False, exclusive=True)
        key = address.topic
        if address.server is not None:
            key = f"{address.topic}.{address.server}"
        binding = _Binding(address.exchange, "topic", key)
        return _QueueSpec(key, (binding,), arguments=self._topic_queue_arguments())

    async def _start_listener(
        self, specs: Sequence[_QueueSpec], handler: MessageHandler, prefetch: int
    ) -> _RabbitListener:
        connection = await self._connection()
        listener = _RabbitListener(self, specs, handler, prefetch)
        try:
            await listener.start(connection)
        except _FAILURES as exc:
            raise self._failure(exc) from exc
        self._listeners.append(listener)
        return listener

    async def send_notification(
        self, address: NotificationAddress, body: bytes, *, retry: int | None
    ) -> None:
        connection = await self._connection()
        key = address.routing_key
        if ("queue", key) not in self._declared:
            binding = _Binding(address.exchange, "topic", key)
            spec = _QueueSpec(key, (binding,), arguments=self._topic_queue_arguments())
            try:
                await self.declare_queue(connection, spec)
            except _FAILURES as exc:
                raise self._failure(exc) from exc
            self._declared.add(("queue", key))
        await self._publish(
            address.exchange, key, body, mandatory=False, persistent=True
        )

    async def listen_notifications(
        self,
        addresses: Sequence[NotificationAddress],
        handler: MessageHandler,
        *,
        pool: str | None,
        prefetch: int,
    ) -> Listener:
        bindings = [_Binding(a.exchange, "topic", a.routing_key) for a in addresses]
        arguments = self._topic_queue_arguments()
        if pool is not None:
            # As oslo.messaging does: one queue named after the pool, bound to
            # every routing key, shared by the pool's listeners.
            specs = [_QueueSpec(pool, tuple(bindings), arguments=arguments)]
        else:
            specs = [
                _QueueSpec(b.routing_key, (b,), arguments=arguments) for b in bindings
            ]
        return await self._start_listener(specs, handler, prefetch)

    async def close_on_loop(self) -> None:
        if self.closed:
            return
        self.closed = True
        for listener in list(self._listeners):
            await listener.close()
        self.replies.fail_all(TransportClosed(f"{self!r} was closed"))
        await self._supervisor.close()
