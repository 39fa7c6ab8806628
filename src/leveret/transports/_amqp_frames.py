"""AMQP 0-9-1 frames: encoding and decoding of the methods leveret uses.

Only the methods that a client of RabbitMQ sends or receives for leveret's
topology are here. Frames leaving the client are built as ``bytes`` in one
piece, so that a whole message (method, content header and body frames)
goes to the socket in one write. Frames arriving are split by
:class:`FrameReader` and their methods decoded into small tuples; a decoder
that meets a malformed frame raises :class:`FrameError`.

Numbers in the AMQP wire format are big-endian. A ``shortstr`` is one
length byte and UTF-8 text, a ``longstr`` four length bytes and bytes, a
``table`` four length bytes and ``name, type, value`` entries.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"

FRAME_METHOD = 1
FRAME_HEADER = 2
FRAME_BODY = 3
FRAME_HEARTBEAT = 8
FRAME_END = 0xCE
FRAME_OVERHEAD = 8  # seven header bytes and the end byte
HEARTBEAT_FRAME = b"\x08\x00\x00\x00\x00\x00\x00\xce"

# (class id, method id) of every method used.
CONNECTION_START = (10, 10)
CONNECTION_START_OK = (10, 11)
CONNECTION_TUNE = (10, 30)
CONNECTION_TUNE_OK = (10, 31)
CONNECTION_OPEN = (10, 40)
CONNECTION_OPEN_OK = (10, 41)
CONNECTION_CLOSE = (10, 50)
CONNECTION_CLOSE_OK = (10, 51)
CONNECTION_BLOCKED = (10, 60)
CONNECTION_UNBLOCKED = (10, 61)
CHANNEL_OPEN = (20, 10)
CHANNEL_OPEN_OK = (20, 11)
CHANNEL_FLOW = (20, 20)
CHANNEL_FLOW_OK = (20, 21)
CHANNEL_CLOSE = (20, 40)
CHANNEL_CLOSE_OK = (20, 41)
EXCHANGE_DECLARE = (40, 10)
EXCHANGE_DECLARE_OK = (40, 11)
QUEUE_DECLARE = (50, 10)
QUEUE_DECLARE_OK = (50, 11)
QUEUE_BIND = (50, 20)
QUEUE_BIND_OK = (50, 21)
BASIC_QOS = (60, 10)
BASIC_QOS_OK = (60, 11)
BASIC_CONSUME = (60, 20)
BASIC_CONSUME_OK = (60, 21)
BASIC_CANCEL = (60, 30)
BASIC_CANCEL_OK = (60, 31)
BASIC_PUBLISH = (60, 40)
BASIC_RETURN = (60, 50)
BASIC_DELIVER = (60, 60)
BASIC_ACK = (60, 80)
BASIC_REJECT = (60, 90)
BASIC_NACK = (60, 120)
CONFIRM_SELECT = (85, 10)
CONFIRM_SELECT_OK = (85, 11)

_BASIC_CLASS = 60

# Bits of the content header's property flags, most significant first.
FLAG_CONTENT_TYPE = 1 << 15
FLAG_CONTENT_ENCODING = 1 << 14
FLAG_HEADERS = 1 << 13
FLAG_DELIVERY_MODE = 1 << 12
FLAG_PRIORITY = 1 << 11
FLAG_CORRELATION_ID = 1 << 10
FLAG_REPLY_TO = 1 << 9
FLAG_EXPIRATION = 1 << 8
FLAG_MESSAGE_ID = 1 << 7

_FRAME_HEAD = struct.Struct(">BHI")
_METHOD_ID = struct.Struct(">HH")
_CONTENT_HEAD = struct.Struct(">BHIHHQH")
_U8 = struct.Struct(">B")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_I8 = struct.Struct(">b")
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")
_F32 = struct.Struct(">f")
_F64 = struct.Struct(">d")
_DEC = struct.Struct(">Bi")
_DELIVER_TAIL = struct.Struct(">QB")
_ACK = struct.Struct(">QB")
_PUBLISH_HEAD = struct.Struct(">HHH")
_ACK_HEAD = struct.Struct(">HHQB")


class FrameError(Exception):
    """A frame that does not follow AMQP 0-9-1; the connection must close."""


# Encoding.


def shortstr(text: str) -> bytes:
    data = text.encode()
    if len(data) > 255:
        raise ValueError(f"AMQP short string longer than 255 bytes: {text[:40]!r}...")
    return _U8.pack(len(data)) + data


def longstr(data: bytes) -> bytes:
    return _U32.pack(len(data)) + data


def _field_value(value: Any) -> bytes:
    if isinstance(value, bool):
        return b"t" + _U8.pack(value)
    if isinstance(value, int):
        return b"l" + _I64.pack(value)
    if isinstance(value, float):
        return b"d" + _F64.pack(value)
    if isinstance(value, str):
        return b"S" + longstr(value.encode())
    if isinstance(value, bytes):
        return b"x" + longstr(value)
    if isinstance(value, Mapping):
        return b"F" + table(value)
    if isinstance(value, list | tuple):
        items = b"".join(_field_value(item) for item in value)
        return b"A" + longstr(items)
    if value is None:
        return b"V"
    raise TypeError(f"cannot encode {type(value).__name__} in an AMQP table")


def table(values: Mapping[str, Any] | None) -> bytes:
    if not values:
        return b"\x00\x00\x00\x00"
    data = b"".join(shortstr(k) + _field_value(v) for k, v in values.items())
    return longstr(data)


def _bits(*flags: bool) -> bytes:
    value = 0
    for position, flag in enumerate(flags):
        if flag:
            value |= 1 << position
    return _U8.pack(value)


def method_frame(channel: int, method: tuple[int, int], arguments: bytes) -> bytes:
    payload = _METHOD_ID.pack(*method) + arguments
    return _FRAME_HEAD.pack(FRAME_METHOD, channel, len(payload)) + payload + b"\xce"


def start_ok(
    client_properties: Mapping[str, Any], username: str, password: str
) -> bytes:
    response = b"\x00" + username.encode() + b"\x00" + password.encode()
    return (
        table(client_properties)
        + shortstr("PLAIN")
        + longstr(response)
        + shortstr("en_US")
    )


def tune_ok(channel_max: int, frame_max: int, heartbeat: int) -> bytes:
    return struct.pack(">HIH", channel_max, frame_max, heartbeat)


def connection_open(virtual_host: str) -> bytes:
    return shortstr(virtual_host) + b"\x00\x00"


def close(reply_code: int, reply_text: str) -> bytes:
    # Cut the text at 255 bytes, not characters, and drop a split character.
    text = reply_text.encode()[:255].decode(errors="ignore")
    return _U16.pack(reply_code) + shortstr(text) + b"\x00" * 4


def channel_open() -> bytes:
    return b"\x00"


def flow_ok(active: bool) -> bytes:
    return _bits(active)


def exchange_declare(
    name: str,
    exchange_type: str,
    *,
    passive: bool = False,
    durable: bool = False,
    auto_delete: bool = False,
    arguments: Mapping[str, Any] | None = None,
) -> bytes:
    return (
        b"\x00\x00"
        + shortstr(name)
        + shortstr(exchange_type)
        + _bits(passive, durable, auto_delete, False, False)
        + table(arguments)
    )


def queue_declare(
    name: str,
    *,
    passive: bool = False,
    durable: bool = False,
    exclusive: bool = False,
    auto_delete: bool = False,
    arguments: Mapping[str, Any] | None = None,
) -> bytes:
    return (
        b"\x00\x00"
        + shortstr(name)
        + _bits(passive, durable, exclusive, auto_delete, False)
        + table(arguments)
    )


def queue_bind(queue: str, exchange: str, routing_key: str) -> bytes:
    return (
        b"\x00\x00"
        + shortstr(queue)
        + shortstr(exchange)
        + shortstr(routing_key)
        + b"\x00"
        + table(None)
    )


def basic_qos(prefetch_count: int) -> bytes:
    return struct.pack(">IHB", 0, prefetch_count, 0)


def basic_consume(queue: str, consumer_tag: str, *, no_ack: bool) -> bytes:
    return (
        b"\x00\x00"
        + shortstr(queue)
        + shortstr(consumer_tag)
        + _bits(False, no_ack, False, False)
        + table(None)
    )


def basic_cancel(consumer_tag: str) -> bytes:
    return shortstr(consumer_tag) + b"\x00"


def confirm_select() -> bytes:
    return b"\x00"


def settle_frame(channel: int, method: tuple[int, int], tag: int, flag: bool) -> bytes:
    """Build a basic.ack (flag: multiple) or basic.reject (flag: requeue)."""
    return (
        _FRAME_HEAD.pack(FRAME_METHOD, channel, 13)
        + _ACK_HEAD.pack(method[0], method[1], tag, flag)
        + b"\xce"
    )


def properties(
    *,
    content_type: str | None = None,
    content_encoding: str | None = None,
    headers: Mapping[str, Any] | None = None,
    delivery_mode: int | None = None,
    expiration: str | None = None,
    message_id: str | None = None,
) -> tuple[int, bytes]:
    """Return the property flags and the encoded property list."""
    flags = 0
    parts = []
    if content_type is not None:
        flags |= FLAG_CONTENT_TYPE
        parts.append(shortstr(content_type))
    if content_encoding is not None:
        flags |= FLAG_CONTENT_ENCODING
        parts.append(shortstr(content_encoding))
    if headers is not None:
        flags |= FLAG_HEADERS
        parts.append(table(headers))
    if delivery_mode is not None:
        flags |= FLAG_DELIVERY_MODE
        parts.append(_U8.pack(delivery_mode))
    if expiration is not None:
        flags |= FLAG_EXPIRATION
        parts.append(shortstr(expiration))
    if message_id is not None:
        flags |= FLAG_MESSAGE_ID
        parts.append(shortstr(message_id))
    return flags, b"".join(parts)


def publish_frames(
    channel: int,
    exchange: bytes,
    routing_key: bytes,
    body: bytes,
    *,
    mandatory: bool,
    property_flags: int,
    property_list: bytes,
    frame_max: int,
) -> bytes:
    """Build the method, content header and body frames of one message.

    *exchange* and *routing_key* are already encoded as short strings.
    """
    arguments = b"".join(
        (
            _PUBLISH_HEAD.pack(BASIC_PUBLISH[0], BASIC_PUBLISH[1], 0),
            exchange,
            routing_key,
            b"\x01" if mandatory else b"\x00",
        )
    )
    head_size = 14 + len(property_list)
    parts = [
        _FRAME_HEAD.pack(FRAME_METHOD, channel, len(arguments)),
        arguments,
        b"\xce",
        _CONTENT_HEAD.pack(
            FRAME_HEADER, channel, head_size, _BASIC_CLASS, 0, len(body), property_flags
        ),
        property_list,
        b"\xce",
    ]
    chunk = frame_max - FRAME_OVERHEAD
    for start in range(0, len(body), chunk):
        piece = body[start : start + chunk]
        parts += (_FRAME_HEAD.pack(FRAME_BODY, channel, len(piece)), piece, b"\xce")
    return b"".join(parts)


# Decoding.


class _Cursor:
    """Reads AMQP values from a frame payload, left to right."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    def take(self, size: int) -> bytes:
        end = self.pos + size
        if end > len(self.data):
            raise FrameError("frame payload ends inside a value")
        value = self.data[self.pos : end]
        self.pos = end
        return value

    def unpack(self, layout: struct.Struct) -> Any:
        try:
            values = layout.unpack_from(self.data, self.pos)
        except struct.error:
            raise FrameError("frame payload ends inside a number") from None
        self.pos += layout.size
        return values[0] if len(values) == 1 else values

    def shortstr(self) -> str:
        return self.take(self.unpack(_U8)).decode(errors="replace")

    def longstr(self) -> bytes:
        return self.take(self.unpack(_U32))

    def table(self) -> dict[str, Any]:
        end = self.unpack(_U32) + self.pos
        if end > len(self.data):
            raise FrameError("field table longer than its frame")
        values = {}
        while self.pos < end:
            name = self.shortstr()
            values[name] = self.field()
        return values

    def array(self) -> list[Any]:
        end = self.unpack(_U32) + self.pos
        items = []
        while self.pos < end:
            items.append(self.field())
        return items

    def field(self) -> Any:
        kind = self.take(1)
        reader = _FIELD_READERS.get(kind)
        if reader is None:
            raise FrameError(f"unknown field type {kind!r} in a table")
        return reader(self)


def _decimal(cursor: _Cursor) -> Decimal:
    places, value = cursor.unpack(_DEC)
    return Decimal(value).scaleb(-places)


def _timestamp(cursor: _Cursor) -> datetime | int:
    seconds = cursor.unpack(_U64)
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return int(seconds)  # beyond what datetime holds: kept as a number


_FIELD_READERS: dict[bytes, Callable[[_Cursor], Any]] = {
    b"t": lambda c: bool(c.unpack(_U8)),
    b"b": lambda c: c.unpack(_I8),
    b"B": lambda c: c.unpack(_U8),
    b"s": lambda c: c.unpack(_I16),
    b"u": lambda c: c.unpack(_U16),
    b"I": lambda c: c.unpack(_I32),
    b"i": lambda c: c.unpack(_U32),
    b"l": lambda c: c.unpack(_I64),
    b"L": lambda c: c.unpack(_U64),
    b"f": lambda c: c.unpack(_F32),
    b"d": lambda c: c.unpack(_F64),
    b"D": _decimal,
    b"S": lambda c: c.longstr().decode(errors="replace"),
    b"x": _Cursor.longstr,
    b"A": _Cursor.array,
    b"T": _timestamp,
    b"F": _Cursor.table,
    b"V": lambda c: None,
}


def method_of(payload: bytes) -> tuple[int, int]:
    try:
        class_id, method_id = _METHOD_ID.unpack_from(payload)
    except struct.error:
        raise FrameError("method frame shorter than its method id") from None
    return class_id, method_id


def decode_start(payload: bytes) -> tuple[dict[str, Any], list[str]]:
    """Return the server properties and the SASL mechanisms of connection.start."""
    cursor = _Cursor(payload, 6)
    server_properties = cursor.table()
    mechanisms = cursor.longstr().decode(errors="replace").split()
    return server_properties, mechanisms


def decode_tune(payload: bytes) -> tuple[int, int, int]:
    """Return channel_max, frame_max and heartbeat of connection.tune."""
    cursor = _Cursor(payload, 4)
    return (cursor.unpack(_U16), cursor.unpack(_U32), cursor.unpack(_U16))


def decode_close(payload: bytes) -> tuple[int, str, tuple[int, int]]:
    """Return the reply code, text and failing method of a close method."""
    cursor = _Cursor(payload, 4)
    code = cursor.unpack(_U16)
    text = cursor.shortstr()
    failed = cursor.unpack(_METHOD_ID)
    return code, text, failed


def decode_shortstr_argument(payload: bytes) -> str:
    """Return the first argument of a method whose first argument is a shortstr."""
    return _Cursor(payload, 4).shortstr()


def decode_flow(payload: bytes) -> bool:
    return bool(_Cursor(payload, 4).unpack(_U8) & 1)


def decode_deliver(payload: bytes) -> tuple[str, int, bool]:
    """Return the consumer tag, delivery tag and redelivered flag of basic.deliver."""
    size = payload[4] if len(payload) > 4 else 0
    end = 5 + size
    try:
        tag, redelivered = _DELIVER_TAIL.unpack_from(payload, end)
    except struct.error:
        raise FrameError("basic.deliver frame too short") from None
    return payload[5:end].decode(errors="replace"), tag, bool(redelivered & 1)


def decode_return(payload: bytes) -> tuple[int, str]:
    """Return the reply code and text of basic.return."""
    cursor = _Cursor(payload, 4)
    return cursor.unpack(_U16), cursor.shortstr()


def decode_confirm(payload: bytes) -> tuple[int, bool]:
    """Return the delivery tag and multiple flag of basic.ack or basic.nack."""
    try:
        tag, bits = _ACK.unpack_from(payload, 4)
    except struct.error:
        raise FrameError("basic.ack frame too short") from None
    return tag, bool(bits & 1)


def decode_content_header(
    payload: bytes,
) -> tuple[int, dict[str, Any] | None, str | None]:
    """Return the body size, headers and message id of a content header."""
    cursor = _Cursor(payload, 4)
    body_size = cursor.unpack(_U64)
    flags = cursor.unpack(_U16)
    headers = None
    message_id = None
    if flags & FLAG_CONTENT_TYPE:
        cursor.shortstr()
    if flags & FLAG_CONTENT_ENCODING:
        cursor.shortstr()
    if flags & FLAG_HEADERS:
        headers = cursor.table()
    if flags & FLAG_MESSAGE_ID:
        if flags & FLAG_DELIVERY_MODE:
            cursor.pos += 1
        if flags & FLAG_PRIORITY:
            cursor.pos += 1
        if flags & FLAG_CORRELATION_ID:
            cursor.shortstr()
        if flags & FLAG_REPLY_TO:
            cursor.shortstr()
        if flags & FLAG_EXPIRATION:
            cursor.shortstr()
        message_id = cursor.shortstr()
    return body_size, headers, message_id


class FrameReader:
    """Split a byte stream into ``(type, channel, payload)`` frames."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, data: bytes) -> list[tuple[int, int, bytes]]:
        """Return the whole frames that *data* completes, keeping the rest."""
        buffer = self._pending + data if self._pending else data
        frames = []
        pos = 0
        available = len(buffer)
        unpack = _FRAME_HEAD.unpack_from
        while available - pos >= 7:
            kind, channel, size = unpack(buffer, pos)
            end = pos + 7 + size
            if end >= available:
                break
            if buffer[end] != FRAME_END:
                raise FrameError(f"frame on channel {channel} lacks its end byte")
            frames.append((kind, channel, buffer[pos + 7 : end]))
            pos = end + 1
        self._pending = buffer[pos:]
        return frames
