"""AMQP 0-9-1 frame encoding and decoding, checked against pamqp."""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from pamqp import body as pamqp_body
from pamqp import commands
from pamqp import decode as pamqp_decode
from pamqp import encode as pamqp_encode
from pamqp import frame as pamqp_frame
from pamqp import header as pamqp_header
from pamqp import heartbeat as pamqp_heartbeat
from pamqp_reference import unmarshal_all

from leveret.transports import _amqp_frames as frames
from leveret.transports._amqp_frames import FrameError, FrameReader


def unmarshal_method(data: bytes) -> tuple[int, Any]:
    [(channel, method)] = unmarshal_all(data)
    return channel, method


def payload_of(value: Any, channel: int = 1) -> bytes:
    """Return the payload of the frame that pamqp builds for *value*."""
    return pamqp_frame.marshal(value, channel)[7:-1]


def content_header_payload(properties: commands.Basic.Properties, size: int) -> bytes:
    return payload_of(pamqp_header.ContentHeader(0, size, properties))


def decode_table(encoded: bytes) -> dict[str, Any] | None:
    """Decode a field table through the headers property of a content header."""
    head = struct.pack(">HHQH", 60, 0, 0, frames.FLAG_HEADERS)
    _, headers, _ = frames.decode_content_header(head + encoded)
    return headers


# Methods that leveret sends.


def test_start_ok_carries_plain_response() -> None:
    client_properties = {
        "product": "leveret",
        "capabilities": {"publisher_confirms": True, "basic.nack": True},
    }
    data = frames.method_frame(
        0,
        frames.CONNECTION_START_OK,
        frames.start_ok(client_properties, "guest", "sécret"),
    )
    channel, method = unmarshal_method(data)
    assert channel == 0
    assert isinstance(method, commands.Connection.StartOk)
    assert method.client_properties == client_properties
    assert method.mechanism == "PLAIN"
    assert method.response == "\x00guest\x00sécret"
    assert method.locale == "en_US"


def test_tune_ok_fields() -> None:
    data = frames.method_frame(
        0, frames.CONNECTION_TUNE_OK, frames.tune_ok(2047, 131072, 60)
    )
    channel, method = unmarshal_method(data)
    assert channel == 0
    assert isinstance(method, commands.Connection.TuneOk)
    assert method.channel_max == 2047
    assert method.frame_max == 131072
    assert method.heartbeat == 60


@pytest.mark.parametrize("virtual_host", ["/", "tenant-a"])
def test_connection_open_names_virtual_host(virtual_host: str) -> None:
    data = frames.method_frame(
        0, frames.CONNECTION_OPEN, frames.connection_open(virtual_host)
    )
    _, method = unmarshal_method(data)
    assert isinstance(method, commands.Connection.Open)
    assert method.virtual_host == virtual_host
    assert method.capabilities == ""
    assert method.insist is False


def test_connection_close_fields() -> None:
    data = frames.method_frame(
        0, frames.CONNECTION_CLOSE, frames.close(200, "closed by the client")
    )
    channel, method = unmarshal_method(data)
    assert channel == 0
    assert isinstance(method, commands.Connection.Close)
    assert method.reply_code == 200
    assert method.reply_text == "closed by the client"
    assert method.class_id == 0
    assert method.method_id == 0


def test_channel_close_fields() -> None:
    data = frames.method_frame(5, frames.CHANNEL_CLOSE, frames.close(200, "bye"))
    channel, method = unmarshal_method(data)
    assert channel == 5
    assert isinstance(method, commands.Channel.Close)
    assert method.reply_code == 200
    assert method.reply_text == "bye"


def test_close_truncates_reply_text_to_255_bytes() -> None:
    for text in ["x" * 300, "é" * 200]:
        data = frames.method_frame(0, frames.CONNECTION_CLOSE, frames.close(320, text))
        _, method = unmarshal_method(data)
        assert isinstance(method, commands.Connection.Close)
        assert len(method.reply_text.encode()) <= 255
        assert text.startswith(method.reply_text)


def test_close_ok_has_no_arguments() -> None:
    data = frames.method_frame(3, frames.CHANNEL_CLOSE_OK, b"")
    channel, method = unmarshal_method(data)
    assert channel == 3
    assert isinstance(method, commands.Channel.CloseOk)


def test_channel_open_and_flow_ok() -> None:
    _, opened = unmarshal_method(
        frames.method_frame(1, frames.CHANNEL_OPEN, frames.channel_open())
    )
    assert isinstance(opened, commands.Channel.Open)
    for active in [True, False]:
        data = frames.method_frame(1, frames.CHANNEL_FLOW_OK, frames.flow_ok(active))
        _, flow_ok = unmarshal_method(data)
        assert isinstance(flow_ok, commands.Channel.FlowOk)
        assert flow_ok.active is active


@pytest.mark.parametrize(
    ("passive", "durable", "auto_delete"),
    [
        (False, False, False),
        (True, False, False),
        (False, True, False),
        (False, False, True),
        (True, True, True),
    ],
)
def test_exchange_declare_flags(
    passive: bool, durable: bool, auto_delete: bool
) -> None:
    arguments = {"alternate-exchange": "spare", "x-size": 7}
    encoded = frames.exchange_declare(
        "leveret",
        "topic",
        passive=passive,
        durable=durable,
        auto_delete=auto_delete,
        arguments=arguments,
    )
    channel, method = unmarshal_method(
        frames.method_frame(2, frames.EXCHANGE_DECLARE, encoded)
    )
    assert channel == 2
    assert isinstance(method, commands.Exchange.Declare)
    assert method.exchange == "leveret"
    assert method.exchange_type == "topic"
    assert method.passive is passive
    assert method.durable is durable
    assert method.auto_delete is auto_delete
    assert method.internal is False
    assert method.nowait is False
    assert method.arguments == arguments


def test_exchange_declare_without_arguments() -> None:
    encoded = frames.exchange_declare("fanout-ex", "fanout")
    _, method = unmarshal_method(
        frames.method_frame(1, frames.EXCHANGE_DECLARE, encoded)
    )
    assert isinstance(method, commands.Exchange.Declare)
    assert method.exchange_type == "fanout"
    assert method.arguments == {}


@pytest.mark.parametrize(
    ("passive", "durable", "exclusive", "auto_delete"),
    [
        (False, False, False, False),
        (True, False, False, False),
        (False, True, False, False),
        (False, False, True, False),
        (False, False, False, True),
        (True, True, True, True),
    ],
)
def test_queue_declare_flags(
    passive: bool, durable: bool, exclusive: bool, auto_delete: bool
) -> None:
    arguments = {
        "x-expires": 1_800_000,
        "x-queue-type": "quorum",
        "x-single-active-consumer": True,
        "x-dead-letter": {"exchange": "dlx", "limit": 3},
    }
    encoded = frames.queue_declare(
        "rpc.worker",
        passive=passive,
        durable=durable,
        exclusive=exclusive,
        auto_delete=auto_delete,
        arguments=arguments,
    )
    _, method = unmarshal_method(frames.method_frame(1, frames.QUEUE_DECLARE, encoded))
    assert isinstance(method, commands.Queue.Declare)
    assert method.queue == "rpc.worker"
    assert method.passive is passive
    assert method.durable is durable
    assert method.exclusive is exclusive
    assert method.auto_delete is auto_delete
    assert method.nowait is False
    assert method.arguments == arguments


def test_queue_bind_fields() -> None:
    encoded = frames.queue_bind("rpc.worker", "leveret", "worker.host-1")
    _, method = unmarshal_method(frames.method_frame(1, frames.QUEUE_BIND, encoded))
    assert isinstance(method, commands.Queue.Bind)
    assert method.queue == "rpc.worker"
    assert method.exchange == "leveret"
    assert method.routing_key == "worker.host-1"
    assert method.nowait is False
    assert method.arguments == {}


def test_basic_qos_sets_prefetch_count() -> None:
    encoded = frames.basic_qos(64)
    _, method = unmarshal_method(frames.method_frame(1, frames.BASIC_QOS, encoded))
    assert isinstance(method, commands.Basic.Qos)
    assert method.prefetch_size == 0
    assert method.prefetch_count == 64
    assert method.global_ is False


@pytest.mark.parametrize("no_ack", [True, False])
def test_basic_consume_no_ack_flag(no_ack: bool) -> None:
    encoded = frames.basic_consume("rpc.worker", "leveret.1.1", no_ack=no_ack)
    _, method = unmarshal_method(frames.method_frame(1, frames.BASIC_CONSUME, encoded))
    assert isinstance(method, commands.Basic.Consume)
    assert method.queue == "rpc.worker"
    assert method.consumer_tag == "leveret.1.1"
    assert method.no_ack is no_ack
    assert method.no_local is False
    assert method.exclusive is False
    assert method.nowait is False
    assert method.arguments == {}


def test_basic_cancel_names_consumer() -> None:
    encoded = frames.basic_cancel("leveret.1.2")
    _, method = unmarshal_method(frames.method_frame(1, frames.BASIC_CANCEL, encoded))
    assert isinstance(method, commands.Basic.Cancel)
    assert method.consumer_tag == "leveret.1.2"
    assert method.nowait is False


def test_confirm_select_not_nowait() -> None:
    encoded = frames.confirm_select()
    _, method = unmarshal_method(frames.method_frame(1, frames.CONFIRM_SELECT, encoded))
    assert isinstance(method, commands.Confirm.Select)
    assert method.nowait is False


@pytest.mark.parametrize("multiple", [True, False])
def test_settle_frame_ack(multiple: bool) -> None:
    data = frames.settle_frame(4, frames.BASIC_ACK, 2**40 + 3, multiple)
    channel, method = unmarshal_method(data)
    assert channel == 4
    assert isinstance(method, commands.Basic.Ack)
    assert method.delivery_tag == 2**40 + 3
    assert method.multiple is multiple


@pytest.mark.parametrize("requeue", [True, False])
def test_settle_frame_reject(requeue: bool) -> None:
    data = frames.settle_frame(2, frames.BASIC_REJECT, 17, requeue)
    channel, method = unmarshal_method(data)
    assert channel == 2
    assert isinstance(method, commands.Basic.Reject)
    assert method.delivery_tag == 17
    assert method.requeue is requeue


def test_settle_frame_equals_method_frame() -> None:
    arguments = struct.pack(">QB", 9, 1)
    expected = frames.method_frame(3, frames.BASIC_ACK, arguments)
    assert frames.settle_frame(3, frames.BASIC_ACK, 9, True) == expected


# Publishing.


def publish(body: bytes, *, frame_max: int = 131072, mandatory: bool = False) -> bytes:
    flags, property_list = frames.properties(
        content_type="application/json", delivery_mode=2
    )
    return frames.publish_frames(
        7,
        frames.shortstr("leveret"),
        frames.shortstr("worker.host-1"),
        body,
        mandatory=mandatory,
        property_flags=flags,
        property_list=property_list,
        frame_max=frame_max,
    )


@pytest.mark.parametrize("mandatory", [True, False])
def test_publish_frames_method_and_header(mandatory: bool) -> None:
    decoded = unmarshal_all(publish(b'{"a": 1}', mandatory=mandatory))
    assert [channel for channel, _ in decoded] == [7, 7, 7]
    method, content_header, content_body = (value for _, value in decoded)
    assert isinstance(method, commands.Basic.Publish)
    assert method.exchange == "leveret"
    assert method.routing_key == "worker.host-1"
    assert method.mandatory is mandatory
    assert method.immediate is False
    assert isinstance(content_header, pamqp_header.ContentHeader)
    assert content_header.class_id == 60
    assert content_header.weight == 0
    assert content_header.body_size == 8
    assert content_header.properties.content_type == "application/json"
    assert content_header.properties.delivery_mode == 2
    assert isinstance(content_body, pamqp_body.ContentBody)
    assert content_body.value == b'{"a": 1}'


def test_publish_frames_split_body_by_frame_max() -> None:
    body = bytes(range(256)) * 40  # 10240 bytes
    frame_max = 4096
    data = publish(body, frame_max=frame_max)
    decoded = unmarshal_all(data)
    bodies = [value for _, value in decoded[2:]]
    assert all(isinstance(value, pamqp_body.ContentBody) for value in bodies)
    sizes = [len(value.value) for value in bodies]
    assert sizes == [4088, 4088, 2064]
    assert b"".join(value.value for value in bodies) == body
    assert decoded[1][1].body_size == len(body)
    # Every frame, overhead included, fits into frame_max.
    reader = FrameReader()
    assert all(len(payload) + 8 <= frame_max for _, _, payload in reader.feed(data))


def test_publish_frames_body_exactly_one_frame() -> None:
    body = b"z" * (4096 - 8)
    decoded = unmarshal_all(publish(body, frame_max=4096))
    assert len(decoded) == 3
    assert decoded[2][1].value == body


def test_publish_frames_empty_body_has_no_body_frame() -> None:
    decoded = unmarshal_all(publish(b""))
    assert len(decoded) == 2
    _, content_header = decoded[1]
    assert isinstance(content_header, pamqp_header.ContentHeader)
    assert content_header.body_size == 0


# Message properties.


def test_properties_match_pamqp_encoding() -> None:
    values: dict[str, Any] = {
        "content_type": "application/json",
        "content_encoding": "utf-8",
        "delivery_mode": 2,
        "expiration": "30000",
        "message_id": "42",
    }
    flags, property_list = frames.properties(**values)
    assert struct.pack(">H", flags) + property_list == (
        commands.Basic.Properties(**values).marshal()
    )


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"content_type": "application/json"},
        {"content_encoding": "gzip"},
        {"delivery_mode": 1},
        {"expiration": "1500"},
        {"message_id": "7"},
        {"headers": {"x-origin": "host-1", "x-attempt": 3, "x-flag": False}},
        {
            "content_type": "text/plain",
            "content_encoding": "utf-8",
            "headers": {"nested": {"list": [1, "two", None]}},
            "delivery_mode": 2,
            "expiration": "60000",
            "message_id": "abc-123",
        },
    ],
)
def test_properties_read_by_pamqp(values: dict[str, Any]) -> None:
    flags, property_list = frames.properties(**values)
    data = frames.publish_frames(
        1,
        frames.shortstr(""),
        frames.shortstr("q"),
        b"x",
        mandatory=False,
        property_flags=flags,
        property_list=property_list,
        frame_max=4096,
    )
    _, content_header = unmarshal_all(data)[1]
    read = content_header.properties
    expected = commands.Basic.Properties(**values)
    for name in commands.Basic.Properties.attributes():
        assert getattr(read, name) == getattr(expected, name), name
    for name, flag in commands.Basic.Properties.flags.items():
        assert bool(flags & flag) == (name in values), name


# Decoding methods that the broker sends.


def test_decode_start() -> None:
    server_properties = {
        "product": "RabbitMQ",
        "version": "3.13.0",
        "capabilities": {"publisher_confirms": True, "consumer_priorities": True},
    }
    start = commands.Connection.Start(
        server_properties=server_properties, mechanisms="AMQPLAIN PLAIN"
    )
    properties, mechanisms = frames.decode_start(payload_of(start, 0))
    assert properties == server_properties
    assert mechanisms == ["AMQPLAIN", "PLAIN"]


def test_decode_tune() -> None:
    tune = commands.Connection.Tune(channel_max=2047, frame_max=131072, heartbeat=60)
    assert frames.decode_tune(payload_of(tune, 0)) == (2047, 131072, 60)


def test_decode_close() -> None:
    connection_close = commands.Connection.Close(
        320, "CONNECTION_FORCED - shutdown", 0, 0
    )
    assert frames.decode_close(payload_of(connection_close, 0)) == (
        320,
        "CONNECTION_FORCED - shutdown",
        (0, 0),
    )
    channel_close = commands.Channel.Close(404, "NOT_FOUND - no queue 'q'", 50, 10)
    assert frames.decode_close(payload_of(channel_close)) == (
        404,
        "NOT_FOUND - no queue 'q'",
        (50, 10),
    )


@pytest.mark.parametrize("redelivered", [True, False])
def test_decode_deliver(redelivered: bool) -> None:
    deliver = commands.Basic.Deliver(
        "leveret.1.1", 2**33, redelivered, "leveret", "worker"
    )
    payload = payload_of(deliver)
    assert frames.method_of(payload) == frames.BASIC_DELIVER
    assert frames.decode_deliver(payload) == ("leveret.1.1", 2**33, redelivered)


def test_decode_return() -> None:
    returned = commands.Basic.Return(312, "NO_ROUTE", "", "reply.gone")
    payload = payload_of(returned)
    assert frames.method_of(payload) == frames.BASIC_RETURN
    assert frames.decode_return(payload) == (312, "NO_ROUTE")


@pytest.mark.parametrize("multiple", [True, False])
def test_decode_ack_and_nack(multiple: bool) -> None:
    ack = payload_of(commands.Basic.Ack(12, multiple))
    nack = payload_of(commands.Basic.Nack(13, multiple, requeue=True))
    assert frames.method_of(ack) == frames.BASIC_ACK
    assert frames.method_of(nack) == frames.BASIC_NACK
    assert frames.decode_confirm(ack) == (12, multiple)
    assert frames.decode_confirm(nack) == (13, multiple)


def test_decode_shortstr_argument_and_flow() -> None:
    cancel = payload_of(commands.Basic.Cancel("leveret.1.3"))
    assert frames.decode_shortstr_argument(cancel) == "leveret.1.3"
    blocked = payload_of(commands.Connection.Blocked("low on memory"), 0)
    assert frames.decode_shortstr_argument(blocked) == "low on memory"
    for active in [True, False]:
        flow = payload_of(commands.Channel.Flow(active))
        assert frames.decode_flow(flow) is active


def test_decode_content_header_skips_earlier_properties() -> None:
    properties = commands.Basic.Properties(
        content_type="application/json",
        content_encoding="utf-8",
        headers={"x-delivery-count": 2, "x-origin": "host-1"},
        delivery_mode=2,
        priority=5,
        correlation_id="corr-1",
        reply_to="reply.q",
        expiration="60000",
        message_id="msg-17",
        timestamp=datetime(2024, 5, 1, tzinfo=UTC),
        app_id="leveret",
    )
    size, headers, message_id = frames.decode_content_header(
        content_header_payload(properties, 1234)
    )
    assert size == 1234
    assert headers == {"x-delivery-count": 2, "x-origin": "host-1"}
    assert message_id == "msg-17"


def test_decode_content_header_without_properties() -> None:
    payload = content_header_payload(commands.Basic.Properties(), 0)
    assert frames.decode_content_header(payload) == (0, None, None)


def test_decode_content_header_message_id_only() -> None:
    properties = commands.Basic.Properties(delivery_mode=1, message_id="9")
    payload = content_header_payload(properties, 10)
    assert frames.decode_content_header(payload) == (10, None, "9")


def test_decode_content_header_of_leveret_publish() -> None:
    flags, property_list = frames.properties(
        content_type="application/json",
        headers={"x-delivery-count": 1},
        delivery_mode=2,
        expiration="500",
        message_id="3",
    )
    data = frames.publish_frames(
        1,
        frames.shortstr(""),
        frames.shortstr("q"),
        b"abc",
        mandatory=True,
        property_flags=flags,
        property_list=property_list,
        frame_max=4096,
    )
    _, header_frame, _ = FrameReader().feed(data)
    assert header_frame[0] == frames.FRAME_HEADER
    assert frames.decode_content_header(header_frame[2]) == (
        3,
        {"x-delivery-count": 1},
        "3",
    )


# Field tables.


def field(name: str, kind: bytes, value: bytes) -> bytes:
    return frames.shortstr(name) + kind + value


def test_field_table_every_type() -> None:
    array = b"".join(
        [b"b" + struct.pack(">b", -1), b"S" + frames.longstr(b"two"), b"V"]
    )
    nested = field("inner", b"I", struct.pack(">i", -7))
    entries = [
        field("bool", b"t", b"\x01"),
        field("false", b"t", b"\x00"),
        field("i8", b"b", struct.pack(">b", -128)),
        field("u8", b"B", struct.pack(">B", 255)),
        field("i16", b"s", struct.pack(">h", -32768)),
        field("u16", b"u", struct.pack(">H", 65535)),
        field("i32", b"I", struct.pack(">i", -(2**31))),
        field("u32", b"i", struct.pack(">I", 2**32 - 1)),
        field("i64", b"l", struct.pack(">q", -(2**63))),
        field("u64", b"L", struct.pack(">Q", 2**64 - 1)),
        field("float", b"f", struct.pack(">f", 1.5)),
        field("double", b"d", struct.pack(">d", -2.25)),
        field("decimal", b"D", struct.pack(">Bi", 2, 12345)),
        field("negative-decimal", b"D", struct.pack(">Bi", 3, -5)),
        field("text", b"S", frames.longstr("héllo".encode())),
        field("bytes", b"x", frames.longstr(b"\x00\xff")),
        field("array", b"A", frames.longstr(array)),
        field("empty-array", b"A", frames.longstr(b"")),
        field("timestamp", b"T", struct.pack(">Q", 1_700_000_000)),
        field("table", b"F", frames.longstr(nested)),
        field("void", b"V", b""),
    ]
    decoded = decode_table(frames.longstr(b"".join(entries)))
    assert decoded == {
        "bool": True,
        "false": False,
        "i8": -128,
        "u8": 255,
        "i16": -32768,
        "u16": 65535,
        "i32": -(2**31),
        "u32": 2**32 - 1,
        "i64": -(2**63),
        "u64": 2**64 - 1,
        "float": 1.5,
        "double": -2.25,
        "decimal": Decimal("123.45"),
        "negative-decimal": Decimal("-0.005"),
        "text": "héllo",
        "bytes": b"\x00\xff",
        "array": [-1, "two", None],
        "empty-array": [],
        "timestamp": datetime.fromtimestamp(1_700_000_000, tz=UTC),
        "table": {"inner": -7},
        "void": None,
    }
    assert isinstance(decoded["bool"], bool)
    assert isinstance(decoded["bytes"], bytes)


def test_timestamp_beyond_datetime_kept_as_seconds() -> None:
    entry = field("when", b"T", struct.pack(">Q", 2**63))

    assert decode_table(frames.longstr(entry)) == {"when": 2**63}


def test_field_table_encoded_by_pamqp() -> None:
    values = {
        "small": 5,
        "short": -1000,
        "ushort": 60000,
        "long": -100_000,
        "ulong": 3_000_000_000,
        "longlong": 2**40,
        "flag": True,
        "decimal": Decimal("3.14"),
        "text": "value",
        "when": datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
        "nested": {"list": [1, "a", {"deep": False}], "none": None},
        "raw": bytearray(b"\x01\x02"),
    }
    decoded = decode_table(pamqp_encode.field_table(values))
    assert decoded == {**values, "raw": b"\x01\x02"}


def test_field_table_encoded_by_leveret() -> None:
    values = {
        "flag": False,
        "count": -(2**62),
        "ratio": 0.1,
        "text": "ünïcode",
        "raw": b"\x00\x01",
        "nested": {"inner": [True, 2, "three", None, {"x": 1.0}]},
        "tuple": (1, 2),
        "none": None,
    }
    encoded = frames.table(values)
    used, decoded = pamqp_decode.field_table(encoded)
    assert used == len(encoded)
    assert decoded == {
        **values,
        "raw": bytearray(b"\x00\x01"),
        "tuple": [1, 2],
    }


def test_empty_table_is_four_zero_bytes() -> None:
    assert frames.table(None) == b"\x00\x00\x00\x00"
    assert frames.table({}) == b"\x00\x00\x00\x00"
    assert decode_table(frames.table({})) == {}


def test_table_rejects_unsupported_value() -> None:
    with pytest.raises(TypeError, match="object"):
        frames.table({"bad": object()})


def test_unknown_field_type_raises_frame_error() -> None:
    encoded = frames.longstr(field("odd", b"?", b""))
    with pytest.raises(FrameError, match="unknown field type"):
        decode_table(encoded)


def test_table_longer_than_frame_raises_frame_error() -> None:
    encoded = struct.pack(">I", 100) + field("a", b"V", b"")
    with pytest.raises(FrameError):
        decode_table(encoded)


def test_array_longer_than_frame_raises_frame_error() -> None:
    array = b"A" + struct.pack(">I", 50) + b"V"
    encoded = frames.longstr(frames.shortstr("a") + array)
    with pytest.raises(FrameError):
        decode_table(encoded)


# Short strings.


def test_shortstr_limit_is_255_bytes() -> None:
    assert frames.shortstr("a" * 255) == b"\xff" + b"a" * 255
    with pytest.raises(ValueError, match="longer than 255 bytes"):
        frames.shortstr("a" * 256)
    with pytest.raises(ValueError, match="longer than 255 bytes"):
        frames.shortstr("é" * 128)


def test_methods_reject_long_names() -> None:
    with pytest.raises(ValueError):
        frames.queue_declare("q" * 256)
    with pytest.raises(ValueError):
        frames.queue_bind("q", "e", "k" * 300)


# Frame reader.


def stream_of_frames() -> bytes:
    properties = commands.Basic.Properties(
        headers={"x-delivery-count": 0}, message_id="1"
    )
    parts = [
        (commands.Connection.Tune(2047, 131072, 60), 0),
        (pamqp_heartbeat.Heartbeat(), 0),
        (commands.Basic.Deliver("leveret.1.1", 1, False, "", "q"), 1),
        (pamqp_header.ContentHeader(0, 6, properties), 1),
        (pamqp_body.ContentBody(b"abc"), 1),
        (pamqp_body.ContentBody(b"def"), 1),
        (commands.Basic.Ack(5, True), 2),
        (commands.Channel.CloseOk(), 3),
    ]
    return b"".join(pamqp_frame.marshal(value, channel) for value, channel in parts)


def test_frame_reader_whole_stream() -> None:
    data = stream_of_frames()
    read = FrameReader().feed(data)
    kinds = [(kind, channel) for kind, channel, _ in read]
    assert kinds == [
        (frames.FRAME_METHOD, 0),
        (frames.FRAME_HEARTBEAT, 0),
        (frames.FRAME_METHOD, 1),
        (frames.FRAME_HEADER, 1),
        (frames.FRAME_BODY, 1),
        (frames.FRAME_BODY, 1),
        (frames.FRAME_METHOD, 2),
        (frames.FRAME_METHOD, 3),
    ]
    assert read[1][2] == b""
    assert read[4][2] == b"abc"
    assert frames.method_of(read[6][2]) == frames.BASIC_ACK


def test_frame_reader_one_byte_at_a_time() -> None:
    data = stream_of_frames()
    expected = FrameReader().feed(data)
    reader = FrameReader()
    read = []
    for index in range(len(data)):
        read += reader.feed(data[index : index + 1])
    assert read == expected


def test_frame_reader_arbitrary_chunks() -> None:
    data = stream_of_frames()
    expected = FrameReader().feed(data)
    generator = random.Random(20240501)
    for _ in range(50):
        reader = FrameReader()
        read = []
        position = 0
        while position < len(data):
            size = generator.randint(0, 40)
            read += reader.feed(data[position : position + size])
            position += size
        assert read == expected


def test_frame_reader_waits_for_end_byte() -> None:
    data = pamqp_frame.marshal(commands.Basic.Ack(1, False), 1)
    reader = FrameReader()
    assert reader.feed(data[:-1]) == []
    [(kind, channel, payload)] = reader.feed(data[-1:])
    assert (kind, channel) == (frames.FRAME_METHOD, 1)
    assert payload == data[7:-1]


def test_frame_reader_wrong_end_byte() -> None:
    data = bytearray(pamqp_frame.marshal(commands.Basic.Ack(1, False), 1))
    data[-1] = 0x00
    with pytest.raises(FrameError, match="end byte"):
        FrameReader().feed(bytes(data))


def test_frame_reader_wrong_end_byte_after_good_frame() -> None:
    good = pamqp_frame.marshal(commands.Basic.Ack(1, False), 1)
    bad = good[:-1] + b"\xcd"
    reader = FrameReader()
    assert len(reader.feed(good)) == 1
    with pytest.raises(FrameError):
        reader.feed(bad)


# Truncated payloads.


def deliver_payload() -> bytes:
    return payload_of(commands.Basic.Deliver("leveret.1.1", 3, True, "ex", "rk"))


def content_header_with_every_read_property() -> bytes:
    properties = commands.Basic.Properties(
        content_type="application/json",
        content_encoding="utf-8",
        headers={"x-delivery-count": 4, "nested": {"list": [1, "a"]}},
        delivery_mode=2,
        priority=1,
        correlation_id="c",
        reply_to="r",
        expiration="100",
        message_id="7",
    )
    return content_header_payload(properties, 10)


# Each case names a decoder, a payload and the count of trailing bytes never read.
TRUNCATION_CASES: list[tuple[str, Callable[[bytes], Any], bytes, int]] = [
    ("method_of", frames.method_of, payload_of(commands.Basic.QosOk()), 0),
    (
        "decode_start",
        frames.decode_start,
        payload_of(commands.Connection.Start(server_properties={"a": [1, "b"]}), 0),
        4 + len("en_US"),
    ),
    (
        "decode_tune",
        frames.decode_tune,
        payload_of(commands.Connection.Tune(10, 4096, 5), 0),
        0,
    ),
    (
        "decode_close",
        frames.decode_close,
        payload_of(commands.Channel.Close(406, "PRECONDITION_FAILED", 50, 10)),
        0,
    ),
    ("decode_deliver", frames.decode_deliver, deliver_payload(), 6),
    (
        "decode_return",
        frames.decode_return,
        payload_of(commands.Basic.Return(312, "NO_ROUTE", "ex", "rk")),
        6,
    ),
    (
        "decode_confirm",
        frames.decode_confirm,
        payload_of(commands.Basic.Ack(99, True)),
        0,
    ),
    (
        "decode_shortstr_argument",
        frames.decode_shortstr_argument,
        payload_of(commands.Basic.Cancel("leveret.1.1")),
        1,
    ),
    ("decode_flow", frames.decode_flow, payload_of(commands.Channel.Flow(True)), 0),
    (
        "decode_content_header",
        frames.decode_content_header,
        content_header_with_every_read_property(),
        0,
    ),
]


@pytest.mark.parametrize(
    ("decoder", "payload", "unread"),
    [case[1:] for case in TRUNCATION_CASES],
    ids=[case[0] for case in TRUNCATION_CASES],
)
def test_truncated_payload_raises_frame_error(
    decoder: Callable[[bytes], Any], payload: bytes, unread: int
) -> None:
    decoder(payload)
    decoder(payload[: len(payload) - unread])
    for size in range(len(payload) - unread):
        with pytest.raises(FrameError):
            decoder(payload[:size])
