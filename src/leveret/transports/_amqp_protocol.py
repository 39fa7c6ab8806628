"""A lean AMQP 0-9-1 client connection on an asyncio protocol.

It does what leveret's RabbitMQ transport needs and no more: the connection
handshake (PLAIN login), heartbeats both ways, channels, declarations,
consumers, publishing with publisher confirms and the mandatory flag, and
settling deliveries. The socket is read into one buffer the connection
keeps; frames are parsed in ``data_received`` and handed to their channel at
once. A consumer's callback runs synchronously there, so a delivery costs no
task and no future. A publish writes its frames in one
``transport.write`` and returns the future of its confirm.

Everything here runs on one event loop and is not thread-safe. Errors are
:class:`AMQPError` and its subclasses, or ``OSError`` from the socket; the
transport translates them into leveret's errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import platform
import ssl
from collections.abc import Callable
from typing import Any

from . import _amqp_frames as frames

logger = logging.getLogger("leveret.transport.rabbitmq")

REPLY_SUCCESS = 200
ACCESS_REFUSED = 403
NOT_FOUND = 404
PRECONDITION_FAILED = 406
NOT_ALLOWED = 530
FRAME_ERROR = 501
CONNECTION_FORCED = 320

CLIENT_FRAME_MAX = 131072  # bytes; RabbitMQ's default
CLIENT_CHANNEL_MAX = 2047
CLOSE_TIMEOUT = 5.0  # seconds to wait for the broker's close-ok and the socket's close
# The maximum size of one socket read. Reads go into one buffer kept for the
# connection's life and are copied out at their length. asyncio's own reads
# allocate 256 KiB each, which on a thread other than the main one cost
# about 10 us per read (measured), more than the read itself. Copies of
# 128 KiB were as slow, so the buffer stays below that size.
READ_BUFFER_BYTES = 65536

_CLIENT_CAPABILITIES = {
    "publisher_confirms": True,
    "basic.nack": True,
    "consumer_cancel_notify": True,
    "connection.blocked": True,
    "authentication_failure_close": True,
    "per_consumer_qos": True,
}


class AMQPError(Exception):
    """A failure reported by the broker or met on the connection."""


class ConnectionClosed(AMQPError):
    """The connection closed; ``reply_code`` is 0 when the socket just ended."""

    def __init__(self, reply_code: int, reply_text: str) -> None:
        super().__init__(f"{reply_code} {reply_text}" if reply_code else reply_text)
        self.reply_code = reply_code
        self.reply_text = reply_text


class ChannelClosed(AMQPError):
    """The broker closed a channel, e.g. 404 NOT_FOUND or 406 PRECONDITION_FAILED."""

    def __init__(self, reply_code: int, reply_text: str) -> None:
        super().__init__(f"{reply_code} {reply_text}")
        self.reply_code = reply_code
        self.reply_text = reply_text


class Unroutable(AMQPError):
    """A mandatory message that no queue would take came back."""


class PublishRefused(AMQPError):
    """The broker rejected a publish with basic.nack."""


def negotiate(client: int, server: int) -> int:
    """Pick a tuning value: 0 means "no limit" on the side that sends it."""
    if client == 0 or server == 0:
        return max(client, server)
    return min(client, server)


class Delivery:
    """A message delivered to a consumer, settled on its channel."""

    __slots__ = ("body", "delivery_tag", "redelivered", "headers", "channel")

    def __init__(
        self,
        body: bytes,
        delivery_tag: int,
        redelivered: bool,
        headers: dict[str, Any] | None,
        channel: Channel,
    ) -> None:
        self.body = body
        self.delivery_tag = delivery_tag
        self.redelivered = redelivered
        self.headers = headers
        self.channel = channel


ConsumerCallback = Callable[[Delivery], None]
CancelCallback = Callable[[str], None]  # takes the consumer tag

_DELIVER = 1
_RETURN = 2


class Channel:
    """One AMQP channel of a :class:`Connection`."""

    def __init__(self, connection: Connection, number: int) -> None:
        self.connection = connection
        self.number = number
        self.is_closed = False
        self.close_reason: AMQPError | None = None
        self._lock = asyncio.Lock()
        self._waiting: tuple[tuple[int, int], asyncio.Future[bytes]] | None = None
        # Consumer tag: delivery callback, and what to call if the broker
        # cancels the consumer.
        self._consumers: dict[str, tuple[ConsumerCallback, CancelCallback | None]] = {}
        self._tags = itertools.count(1)
        self._confirms = False
        self._close_sent = False
        self._publish_tag = 0
        self._unconfirmed: dict[int, asyncio.Future[None]] = {}
        self._returned: set[int] = set()
        # The message whose content frames are arriving.
        self._incoming_kind = 0
        self._incoming_method: tuple[str, int, bool] | None = None
        self._incoming_size = 0
        self._incoming_headers: dict[str, Any] | None = None
        self._incoming_id: str | None = None
        self._incoming_body: list[bytes] = []
        self._incoming_received = 0

    def __repr__(self) -> str:
        return f"<Channel {self.number} closed={self.is_closed}>"

    @property
    def awaiting_close_ok(self) -> bool:
        """True while the client's close waits for the broker's close-ok."""
        return self._close_sent and self.connection.owns(self)

    # Synchronous methods: one request and its reply at a time.

    async def _call(
        self, method: tuple[int, int], arguments: bytes, answer: tuple[int, int]
    ) -> bytes:
        async with self._lock:
            self._check_open()
            future: asyncio.Future[bytes] = self.connection.loop.create_future()
            self._waiting = (answer, future)
            self.connection.write(frames.method_frame(self.number, method, arguments))
            try:
                return await future
            except asyncio.CancelledError:
                if future.cancelled():
                    # The answer is still to come, and would arrive out of
                    # turn for any later method: the channel is done for.
                    self._abandon()
                raise
            finally:
                self._waiting = None

    def _abandon(self) -> None:
        """Close the channel without waiting, after a method on it was cancelled."""
        if not self._close_sent and not self.is_closed:
            self._close_sent = True
            with contextlib.suppress(AMQPError):
                arguments = frames.close(REPLY_SUCCESS, "abandoned by the client")
                self.connection.write(
                    frames.method_frame(self.number, frames.CHANNEL_CLOSE, arguments)
                )
        # Its number stays taken until the broker's close-ok.
        self.closed(ChannelClosed(0, "a method on the channel was cancelled"), False)

    def _check_open(self) -> None:
        if self.is_closed:
            raise self.close_reason or ChannelClosed(0, "channel closed")

    async def open(self, *, confirms: bool) -> None:
        await self._call(
            frames.CHANNEL_OPEN, frames.channel_open(), frames.CHANNEL_OPEN_OK
        )
        if confirms:
            await self._call(
                frames.CONFIRM_SELECT, frames.confirm_select(), frames.CONFIRM_SELECT_OK
            )
            self._confirms = True

    async def exchange_declare(
        self,
        name: str,
        exchange_type: str,
        *,
        passive: bool = False,
        durable: bool = False,
        auto_delete: bool = False,
    ) -> None:
        arguments = frames.exchange_declare(
            name,
            exchange_type,
            passive=passive,
            durable=durable,
            auto_delete=auto_delete,
        )
        await self._call(frames.EXCHANGE_DECLARE, arguments, frames.EXCHANGE_DECLARE_OK)

    async def queue_declare(
        self,
        name: str,
        *,
        passive: bool = False,
        durable: bool = False,
        exclusive: bool = False,
        auto_delete: bool = False,
        arguments: dict[str, Any] | None = None,
    ) -> None:
        encoded = frames.queue_declare(
            name,
            passive=passive,
            durable=durable,
            exclusive=exclusive,
            auto_delete=auto_delete,
            arguments=arguments,
        )
        await self._call(frames.QUEUE_DECLARE, encoded, frames.QUEUE_DECLARE_OK)

    async def queue_bind(self, queue: str, exchange: str, routing_key: str) -> None:
        arguments = frames.queue_bind(queue, exchange, routing_key)
        await self._call(frames.QUEUE_BIND, arguments, frames.QUEUE_BIND_OK)

    async def basic_qos(self, prefetch_count: int) -> None:
        arguments = frames.basic_qos(prefetch_count)
        await self._call(frames.BASIC_QOS, arguments, frames.BASIC_QOS_OK)

    async def basic_consume(
        self,
        queue: str,
        callback: ConsumerCallback,
        *,
        no_ack: bool = False,
        on_cancel: CancelCallback | None = None,
    ) -> str:
        """Start a consumer and return its tag.

        The callback is registered before the request goes out, because the
        broker may send deliveries right behind its consume-ok.
        """
        tag = f"leveret.{self.number}.{next(self._tags)}"
        self._consumers[tag] = (callback, on_cancel)
        try:
            arguments = frames.basic_consume(queue, tag, no_ack=no_ack)
            await self._call(frames.BASIC_CONSUME, arguments, frames.BASIC_CONSUME_OK)
        except BaseException:
            self._consumers.pop(tag, None)
            raise
        return tag

    async def basic_cancel(self, tag: str) -> None:
        try:
            arguments = frames.basic_cancel(tag)
            await self._call(frames.BASIC_CANCEL, arguments, frames.BASIC_CANCEL_OK)
        finally:
            self._consumers.pop(tag, None)

    async def close(self) -> None:
        """Close the channel; a channel already closed is left as it is."""
        if self.is_closed:
            return
        self._close_sent = True
        with contextlib.suppress(AMQPError):
            arguments = frames.close(REPLY_SUCCESS, "closed by the client")
            await self._call(frames.CHANNEL_CLOSE, arguments, frames.CHANNEL_CLOSE_OK)
        self.closed(ChannelClosed(REPLY_SUCCESS, "closed by the client"))

    # Publishing and settling.

    def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        mandatory: bool,
        property_flags: int,
        property_list: bytes,
    ) -> asyncio.Future[None] | None:
        """Write one message; return the future of its confirm, if confirming.

        With confirms on, the channel sets the message id property to the
        publish's sequence number to match a returned message with its
        confirm, so *property_list* must hold no property after message id.
        """
        self._check_open()
        tag = self._publish_tag + 1
        if self._confirms and mandatory:
            property_flags |= frames.FLAG_MESSAGE_ID
            property_list += frames.shortstr(str(tag))
        # Built before the sequence number is taken: a frame that cannot be
        # built (a name over 255 bytes) must not shift the broker's count.
        data = frames.publish_frames(
            self.number,
            frames.shortstr(exchange),
            frames.shortstr(routing_key),
            body,
            mandatory=mandatory,
            property_flags=property_flags,
            property_list=property_list,
            frame_max=self.connection.frame_max,
        )
        self.connection.write(data)
        if not self._confirms:
            return None
        self._publish_tag = tag
        future: asyncio.Future[None] = self.connection.loop.create_future()
        self._unconfirmed[tag] = future
        return future

    def ack(self, delivery_tag: int) -> None:
        self._settle(frames.BASIC_ACK, delivery_tag, False)

    def reject(self, delivery_tag: int, *, requeue: bool) -> None:
        self._settle(frames.BASIC_REJECT, delivery_tag, requeue)

    def _settle(self, method: tuple[int, int], delivery_tag: int, flag: bool) -> None:
        # A delivery of a closed channel is back in its queue already.
        if not self.is_closed:
            self.connection.write(
                frames.settle_frame(self.number, method, delivery_tag, flag)
            )

    # Frames from the broker.

    def on_method(self, payload: bytes) -> None:
        method = frames.method_of(payload)
        if self._close_sent:
            self._on_method_while_closing(method, payload)
        elif method == frames.BASIC_DELIVER:
            self._incoming_kind = _DELIVER
            self._incoming_method = frames.decode_deliver(payload)
        elif method == frames.BASIC_ACK:
            self._on_confirm(payload, None)
        elif method == frames.BASIC_NACK:
            self._on_confirm(payload, PublishRefused("the broker refused the message"))
        elif method == frames.BASIC_RETURN:
            self._incoming_kind = _RETURN
            self._incoming_method = None
        elif method == frames.CHANNEL_CLOSE:
            self._on_broker_close(payload)
        elif method == frames.CHANNEL_FLOW:
            active = frames.decode_flow(payload)
            self.connection.write(
                frames.method_frame(
                    self.number, frames.CHANNEL_FLOW_OK, frames.flow_ok(active)
                )
            )
        elif method == frames.BASIC_CANCEL:
            tag = frames.decode_shortstr_argument(payload)
            consumer = self._consumers.pop(tag, None)
            # E.g. an operator deleted the queue.
            logger.warning(
                "consumer.cancelled_by_broker channel=%d consumer=%s",
                self.number,
                tag,
            )
            if consumer is not None and consumer[1] is not None:
                consumer[1](tag)
        else:
            self._answer(method, payload)

    def _on_method_while_closing(self, method: tuple[int, int], payload: bytes) -> None:
        """Take the broker's answer to the client's close; ignore what preceded it."""
        if method == frames.CHANNEL_CLOSE:
            self._on_broker_close(payload)  # both sides closed at once
        elif method == frames.CHANNEL_CLOSE_OK:
            waiting = self._waiting
            if waiting is not None and waiting[0] == method and not waiting[1].done():
                waiting[1].set_result(payload)
            self.closed(ChannelClosed(REPLY_SUCCESS, "closed by the client"))

    def _on_broker_close(self, payload: bytes) -> None:
        code, text, _ = frames.decode_close(payload)
        self.connection.write(
            frames.method_frame(self.number, frames.CHANNEL_CLOSE_OK, b"")
        )
        self.closed(ChannelClosed(code, text))

    def _answer(self, method: tuple[int, int], payload: bytes) -> None:
        waiting = self._waiting
        if waiting is None or waiting[0] != method:
            raise frames.FrameError(
                f"unexpected method {method} on channel {self.number}"
            )
        if not waiting[1].done():
            waiting[1].set_result(payload)

    def on_header(self, payload: bytes) -> None:
        if self._close_sent:
            return  # content of a delivery sent before the broker saw the close
        if not self._incoming_kind:
            raise frames.FrameError(f"content header without a method on {self.number}")
        size, headers, message_id = frames.decode_content_header(payload)
        self._incoming_size = size
        self._incoming_headers = headers
        self._incoming_id = message_id
        self._incoming_body = []
        self._incoming_received = 0
        if size == 0:
            self._complete(b"")

    def on_body(self, payload: bytes) -> None:
        if self._close_sent:
            return
        if not self._incoming_kind:
            raise frames.FrameError(f"body frame without a method on {self.number}")
        if self._incoming_received == 0 and len(payload) >= self._incoming_size:
            self._complete(payload)
            return
        self._incoming_body.append(payload)
        self._incoming_received += len(payload)
        if self._incoming_received >= self._incoming_size:
            self._complete(b"".join(self._incoming_body))

    def _complete(self, body: bytes) -> None:
        kind, self._incoming_kind = self._incoming_kind, 0
        self._incoming_body = []
        self._incoming_received = 0
        if kind == _RETURN:
            if self._incoming_id is not None and self._incoming_id.isdigit():
                self._returned.add(int(self._incoming_id))
            return
        assert self._incoming_method is not None
        consumer_tag, delivery_tag, redelivered = self._incoming_method
        consumer = self._consumers.get(consumer_tag)
        if consumer is None:
            # Cancelled while the message was on its way: give it back.
            self.reject(delivery_tag, requeue=True)
            return
        delivery = Delivery(
            body, delivery_tag, redelivered, self._incoming_headers, self
        )
        try:
            consumer[0](delivery)
        except Exception:
            logger.exception(
                "consumer.callback_failed channel=%d consumer=%s",
                self.number,
                consumer_tag,
            )

    def _on_confirm(self, payload: bytes, refusal: AMQPError | None) -> None:
        tag, multiple = frames.decode_confirm(payload)
        pending = self._unconfirmed
        if not multiple:
            future = pending.pop(tag, None)
            if future is not None:
                self._resolve(tag, future, refusal)
            return
        # Tags grow, and the dict keeps them in the order they were added.
        while pending:
            first = next(iter(pending))
            if first > tag:
                break
            self._resolve(first, pending.pop(first), refusal)

    def _resolve(
        self, tag: int, future: asyncio.Future[None], refusal: AMQPError | None
    ) -> None:
        returned = False
        if self._returned:
            returned = tag in self._returned
            self._returned.discard(tag)
        if future.done():
            return
        if returned:
            future.set_exception(Unroutable("no queue takes the message"))
        elif refusal is not None:
            future.set_exception(refusal)
        else:
            future.set_result(None)

    def closed(self, reason: AMQPError, forget: bool = True) -> None:
        """Mark the channel closed and fail everything waiting on it.

        With *forget*, the connection also releases the channel's number.
        """
        if forget:
            self.connection.forget(self)
        if self.is_closed:
            return
        self.is_closed = True
        self.close_reason = reason
        if self._waiting is not None and not self._waiting[1].done():
            self._waiting[1].set_exception(reason)
        for future in self._unconfirmed.values():
            if not future.done():
                future.set_exception(reason)
        self._unconfirmed.clear()
        self._returned.clear()
        self._consumers.clear()


def _retrieve(future: asyncio.Future[None]) -> None:
    # Marks the exception as retrieved, so that asyncio does not log it when
    # no caller awaited the future.
    if not future.cancelled():
        future.exception()


class Connection(asyncio.BufferedProtocol):
    """An AMQP connection; open one with :func:`open_connection`."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        username: str,
        password: str,
        virtual_host: str,
        heartbeat: int,
    ) -> None:
        self.loop = loop
        self.frame_max = CLIENT_FRAME_MAX
        self.heartbeat = heartbeat
        self.channel_max = CLIENT_CHANNEL_MAX
        self.server_properties: dict[str, Any] = {}
        self.is_closed = False
        self.closing: asyncio.Future[None] = loop.create_future()
        self.closing.add_done_callback(_retrieve)
        self._transport: asyncio.Transport | None = None
        self._reader = frames.FrameReader()
        self._read_buffer = memoryview(bytearray(READ_BUFFER_BYTES))
        self._channels: dict[int, Channel] = {}
        self._handshake: asyncio.Future[None] = loop.create_future()
        self._handshake.add_done_callback(_retrieve)
        self._credentials = (username, password, virtual_host)
        self._close_reason: AMQPError | None = None
        self._closing_by_client = False
        self._close_ok: asyncio.Future[None] = loop.create_future()
        self._close_ok.add_done_callback(_retrieve)
        # Set by connection_lost, once asyncio has closed the socket.
        self._socket_closed: asyncio.Future[None] = loop.create_future()
        self._last_received = loop.time()
        self._heartbeat_timer: asyncio.TimerHandle | None = None
        # Why the broker stopped reading publishes (connection.blocked), or
        # None while it reads them.
        self.blocked_reason: str | None = None
        # Frames written since the last flush, sent together by flush().
        self._pending: list[bytes] = []

    # asyncio.BufferedProtocol.

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        transport.write(frames.PROTOCOL_HEADER)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(self._read_buffer[:nbytes].tobytes())

    def data_received(self, data: bytes) -> None:
        """Parse *data*, the next bytes from the broker."""
        self._last_received = self.loop.time()
        try:
            for kind, number, payload in self._reader.feed(data):
                if number == 0:
                    if kind == frames.FRAME_METHOD:
                        self._on_connection_method(payload)
                    continue
                channel = self._channels.get(number)
                if channel is None:
                    continue  # a late frame of a channel closed by the client
                if kind == frames.FRAME_METHOD:
                    channel.on_method(payload)
                elif kind == frames.FRAME_HEADER:
                    channel.on_header(payload)
                elif kind == frames.FRAME_BODY:
                    channel.on_body(payload)
                else:
                    raise frames.FrameError(f"unknown frame type {kind}")
        except frames.FrameError as exc:
            self._fail(ConnectionClosed(FRAME_ERROR, f"frame error: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_heartbeats()
        if self._close_reason is not None:
            reason = self._close_reason
        elif exc is not None:
            reason = ConnectionClosed(0, f"connection lost: {exc!r}")
        else:
            reason = ConnectionClosed(0, "the broker closed the socket")
        self._mark_closed(reason)
        if not self._socket_closed.done():
            self._socket_closed.set_result(None)

    # Opening.

    async def handshake(self) -> None:
        """Wait until the broker has opened the virtual host."""
        await self._handshake

    def _on_connection_method(self, payload: bytes) -> None:
        method = frames.method_of(payload)
        if method == frames.CONNECTION_START:
            self._on_start(payload)
        elif method == frames.CONNECTION_TUNE:
            self._on_tune(payload)
        elif method == frames.CONNECTION_OPEN_OK:
            self._start_heartbeats()
            if not self._handshake.done():
                self._handshake.set_result(None)
        elif method == frames.CONNECTION_CLOSE:
            code, text, _ = frames.decode_close(payload)
            self.write(frames.method_frame(0, frames.CONNECTION_CLOSE_OK, b""))
            self._fail(ConnectionClosed(code, text))
        elif method == frames.CONNECTION_CLOSE_OK:
            if not self._close_ok.done():
                self._close_ok.set_result(None)
        elif method == frames.CONNECTION_BLOCKED:
            self.blocked_reason = frames.decode_shortstr_argument(payload)
            logger.warning(
                "connection.blocked reason=%s; the broker reads no publishes "
                "until it has resources again",
                self.blocked_reason,
            )
        elif method == frames.CONNECTION_UNBLOCKED:
            self.blocked_reason = None
            logger.info("connection.unblocked")
        else:
            raise frames.FrameError(f"unexpected connection method {method}")

    def _on_start(self, payload: bytes) -> None:
        self.server_properties, mechanisms = frames.decode_start(payload)
        if "PLAIN" not in mechanisms:
            self._fail(
                ConnectionClosed(0, f"the broker offers no PLAIN login: {mechanisms}")
            )
            return
        username, password, _ = self._credentials
        client_properties = {
            "product": "leveret",
            "platform": f"Python {platform.python_version()}",
            "capabilities": _CLIENT_CAPABILITIES,
        }
        self.write(
            frames.method_frame(
                0,
                frames.CONNECTION_START_OK,
                frames.start_ok(client_properties, username, password),
            )
        )

    def _on_tune(self, payload: bytes) -> None:
        channel_max, frame_max, heartbeat = frames.decode_tune(payload)
        self.channel_max = negotiate(CLIENT_CHANNEL_MAX, channel_max)
        self.frame_max = negotiate(CLIENT_FRAME_MAX, frame_max)
        # Heartbeats are off only when the client asks for 0.
        if self.heartbeat:
            self.heartbeat = negotiate(self.heartbeat, heartbeat)
        self.write(
            frames.method_frame(
                0,
                frames.CONNECTION_TUNE_OK,
                frames.tune_ok(self.channel_max, self.frame_max, self.heartbeat),
            )
        )
        self.write(
            frames.method_frame(
                0, frames.CONNECTION_OPEN, frames.connection_open(self._credentials[2])
            )
        )

    # Heartbeats: a frame every half interval, and the connection is taken
    # for dead after one and a half intervals without a frame from the broker,
    # so a silent broker is noticed within two intervals.

    def _start_heartbeats(self) -> None:
        if self.heartbeat > 0:
            self._heartbeat_timer = self.loop.call_later(
                self.heartbeat / 2, self._on_heartbeat_timer
            )

    def _stop_heartbeats(self) -> None:
        if self._heartbeat_timer is not None:
            self._heartbeat_timer.cancel()
            self._heartbeat_timer = None

    def _on_heartbeat_timer(self) -> None:
        silence = self.loop.time() - self._last_received
        if silence > self.heartbeat * 1.5:
            self._fail(
                ConnectionClosed(
                    0,
                    f"no frame from the broker for {silence:.1f} s (missed heartbeats)",
                )
            )
            return
        self.write(frames.HEARTBEAT_FRAME)
        self._start_heartbeats()

    # Channels.

    async def channel(self, *, confirms: bool = False) -> Channel:
        """Open a channel, with publisher confirms if *confirms*."""
        if self.is_closed:
            raise self._close_reason or ConnectionClosed(0, "connection closed")
        number = self._free_channel_number()
        channel = Channel(self, number)
        self._channels[number] = channel
        try:
            await channel.open(confirms=confirms)
        except BaseException:
            # A channel abandoned halfway keeps its number until the
            # broker's close-ok; reusing it earlier confuses the broker.
            if not channel.awaiting_close_ok:
                self.forget(channel)
            raise
        return channel

    def _free_channel_number(self) -> int:
        for number in range(1, self.channel_max + 1):
            if number not in self._channels:
                return number
        raise AMQPError(f"all {self.channel_max} channels are in use")

    def owns(self, channel: Channel) -> bool:
        return self._channels.get(channel.number) is channel

    def forget(self, channel: Channel) -> None:
        if self._channels.get(channel.number) is channel:
            del self._channels[channel.number]

    # Writing and closing.

    def write(self, data: bytes) -> None:
        """Queue *data* to go out with the other frames of this loop pass.

        The socket gets one write per loop pass instead of one per frame, so a
        batch of acks, or the publishes of many callers started together,
        reach the broker in one write. With 64 blocking callers in flight that
        cut the broker's CPU per call by about 40% (bench/cpu_split.py). A
        sequential call pays for it with one more pass of the loop.
        """
        transport = self._transport
        if transport is None or self.is_closed:
            raise self._close_reason or ConnectionClosed(0, "connection closed")
        pending = self._pending
        if not pending:
            self.loop.call_soon(self.flush)
        pending.append(data)

    def flush(self) -> None:
        """Send the queued frames now; :meth:`write` schedules this itself."""
        pending, self._pending = self._pending, []
        transport = self._transport
        if transport is not None and not transport.is_closing() and pending:
            transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    async def close(self) -> None:
        """Close the connection politely; a broken one is just dropped.

        Returns once the socket is closed, or aborts the socket when
        CLOSE_TIMEOUT has passed since the call.
        """
        deadline = self.loop.time() + CLOSE_TIMEOUT
        if self.is_closed:
            await self._wait_socket_closed(deadline)
            return
        self._closing_by_client = True
        try:
            self.write(
                frames.method_frame(
                    0,
                    frames.CONNECTION_CLOSE,
                    frames.close(REPLY_SUCCESS, "closed by the client"),
                )
            )
            async with asyncio.timeout_at(deadline):
                await asyncio.shield(self._close_ok)
        except (AMQPError, OSError, TimeoutError) as exc:
            logger.debug("connection.close_unanswered error=%r", exc)
        self._fail(ConnectionClosed(REPLY_SUCCESS, "closed by the client"))
        await self._wait_socket_closed(deadline)

    async def _wait_socket_closed(self, deadline: float) -> None:
        """Wait until asyncio closes the socket; abort it at *deadline*.

        asyncio closes a TLS socket only after the broker replies to the
        client's close_notify, or after its SSL shutdown timeout (30 s in
        Python 3.11). Without this wait, a transport's event loop could stop
        first and leave the socket open.
        """
        transport = self._transport
        if transport is None or self._socket_closed.done():
            return
        try:
            async with asyncio.timeout_at(deadline):
                await asyncio.shield(self._socket_closed)
        except TimeoutError:
            logger.debug("connection.socket_close_timed_out; aborting the socket")
            transport.abort()

    def _fail(self, reason: AMQPError) -> None:
        """Close the socket and fail everything that waits on this connection."""
        if self._close_reason is None:
            self._close_reason = reason
        if self._transport is not None:
            self.flush()
            self._transport.close()
        self._mark_closed(self._close_reason)

    def _mark_closed(self, reason: AMQPError) -> None:
        if self.is_closed:
            return
        self.is_closed = True
        self._stop_heartbeats()
        for channel in list(self._channels.values()):
            channel.closed(reason)
        if not self._handshake.done():
            self._handshake.set_exception(reason)
        if not self._close_ok.done():
            self._close_ok.set_result(None)
        if self.closing.done():
            return
        if self._closing_by_client:
            self.closing.set_result(None)
        else:
            self.closing.set_exception(reason)


async def open_connection(
    host: str,
    port: int,
    *,
    username: str,
    password: str,
    virtual_host: str,
    heartbeat: int,
    ssl_context: ssl.SSLContext | None = None,
) -> Connection:
    """Connect, log in and open *virtual_host*; the caller bounds the time."""
    loop = asyncio.get_running_loop()
    _, connection = await loop.create_connection(
        lambda: Connection(
            loop,
            username=username,
            password=password,
            virtual_host=virtual_host,
            heartbeat=heartbeat,
        ),
        host,
        port,
        ssl=ssl_context,
        server_hostname=host if ssl_context is not None else None,
    )
    try:
        await connection.handshake()
    except BaseException:
        connection._fail(ConnectionClosed(0, "handshake abandoned"))
        raise
    return connection
