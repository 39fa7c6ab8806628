"""The AMQP client connection driven by pamqp frames over a fake transport."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from unittest import mock

import pytest
from pamqp import body as pamqp_body
from pamqp import commands
from pamqp import frame as pamqp_frame
from pamqp import header as pamqp_header
from pamqp import heartbeat as pamqp_heartbeat
from pamqp_reference import unmarshal_all

from leveret.transports import _amqp_frames as frames
from leveret.transports import _amqp_protocol
from leveret.transports._amqp_connection import ConnectionSupervisor
from leveret.transports._amqp_protocol import (
    AMQPError,
    Channel,
    ChannelClosed,
    Connection,
    ConnectionClosed,
    Delivery,
    PublishRefused,
    Unroutable,
)
from leveret.transports._amqp_url import parse_rabbitmq_url


class FakeTransport(asyncio.Transport):
    """A transport that records written bytes and calls connection_lost() on close()."""

    def __init__(self, protocol: asyncio.Protocol) -> None:
        super().__init__()
        self.protocol = protocol
        self.written: list[bytes] = []
        self.closed = False
        self._read_up_to = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not self.closed, "write after close"
        self.written.append(bytes(data))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.protocol.connection_lost(None)

    def is_closing(self) -> bool:
        return self.closed

    def new_frames(self) -> list[tuple[int, Any]]:
        """Decode with pamqp the frames written since the last call."""
        if isinstance(self.protocol, Connection):
            self.protocol.flush()
        data = b"".join(self.written)[self._read_up_to :]
        self._read_up_to += len(data)
        return unmarshal_all(data)


class LingeringTransport(FakeTransport):
    """A transport whose close() leaves the socket open, as TLS does.

    asyncio's TLS transport closes its socket only after the broker replies
    to the client's close_notify. Here connection_lost() comes when the test
    calls it, or at once on abort().
    """

    def __init__(self, protocol: asyncio.Protocol) -> None:
        super().__init__(protocol)
        self.aborted = False

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True
        self.closed = True
        self.protocol.connection_lost(None)


def marshal(*values: Any, channel: int = 0) -> bytes:
    return b"".join(pamqp_frame.marshal(value, channel) for value in values)


def message_frames(
    channel: int,
    method: Any,
    body: bytes,
    *,
    frame_max: int = 4096,
    **properties: Any,
) -> bytes:
    """Build a method frame, its content header and body frames of frame_max bytes."""
    content_header = pamqp_header.ContentHeader(
        0, len(body), commands.Basic.Properties(**properties)
    )
    parts = [method, content_header]
    chunk = frame_max - 8
    parts += [
        pamqp_body.ContentBody(body[start : start + chunk])
        for start in range(0, len(body), chunk)
    ]
    return marshal(*parts, channel=channel)


def make_connection(
    *,
    heartbeat: int = 0,
    virtual_host: str = "/",
    transport_type: type[FakeTransport] = FakeTransport,
) -> tuple[Connection, FakeTransport]:
    connection = Connection(
        asyncio.get_running_loop(),
        username="guest",
        password="secret",
        virtual_host=virtual_host,
        heartbeat=heartbeat,
    )
    transport = transport_type(connection)
    connection.connection_made(transport)
    return connection, transport


async def open_connection(
    *,
    heartbeat: int = 0,
    server_heartbeat: int = 60,
    transport_type: type[FakeTransport] = FakeTransport,
) -> tuple[Connection, FakeTransport]:
    """Return a connection past its handshake, with the handshake frames read."""
    connection, transport = make_connection(
        heartbeat=heartbeat, transport_type=transport_type
    )
    connection.data_received(marshal(commands.Connection.Start()))
    connection.data_received(
        marshal(commands.Connection.Tune(2047, 131072, server_heartbeat))
    )
    connection.data_received(marshal(commands.Connection.OpenOk()))
    await asyncio.wait_for(connection.handshake(), 1)
    transport.new_frames()
    return connection, transport


async def next_frames(transport: FakeTransport) -> list[tuple[int, Any]]:
    """Let the loop run until the connection writes, then return the frames."""
    for _ in range(50):
        written = transport.new_frames()
        if written:
            return written
        await asyncio.sleep(0)
    raise AssertionError("the connection wrote no frame within 50 loop iterations")


async def open_channel(
    connection: Connection, transport: FakeTransport, *, confirms: bool = True
) -> Channel:
    task = asyncio.create_task(connection.channel(confirms=confirms))
    [(number, _)] = await next_frames(transport)
    connection.data_received(marshal(commands.Channel.OpenOk(), channel=number))
    if confirms:
        await next_frames(transport)
        connection.data_received(marshal(commands.Confirm.SelectOk(), channel=number))
    return await asyncio.wait_for(task, 1)


async def start_consumer(
    connection: Connection,
    transport: FakeTransport,
    channel: Channel,
    callback: Callable[[Delivery], None],
    *,
    follow_up: Callable[[str], bytes] = lambda tag: b"",
) -> str:
    """Start a consumer and return its tag.

    *follow_up* returns frames that go out in the same chunk as Consume-Ok.
    """
    task = asyncio.create_task(channel.basic_consume("rpc.worker", callback))
    [(_, consume)] = await next_frames(transport)
    tag = consume.consumer_tag
    chunk = marshal(commands.Basic.ConsumeOk(tag), channel=channel.number)
    connection.data_received(chunk + follow_up(tag))
    assert await asyncio.wait_for(task, 1) == tag
    return tag


def publish(channel: Channel, *, mandatory: bool = False) -> asyncio.Future[None]:
    flags, property_list = frames.properties(
        content_type="application/json", delivery_mode=2, expiration="60000"
    )
    future = channel.publish(
        "leveret",
        "worker",
        b"{}",
        mandatory=mandatory,
        property_flags=flags,
        property_list=property_list,
    )
    assert future is not None
    return future


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 3))


# Handshake.


def test_connection_made_writes_protocol_header() -> None:
    async def scenario() -> None:
        _, transport = make_connection()
        assert transport.written == [b"AMQP\x00\x00\x09\x01"]

    run(scenario)


def test_start_ok_carries_credentials_and_capabilities() -> None:
    async def scenario() -> None:
        connection, transport = make_connection()
        transport.new_frames()
        start = commands.Connection.Start(
            server_properties={"product": "RabbitMQ"}, mechanisms="AMQPLAIN PLAIN"
        )
        connection.data_received(marshal(start))
        [(channel, start_ok)] = transport.new_frames()
        assert channel == 0
        assert isinstance(start_ok, commands.Connection.StartOk)
        assert start_ok.mechanism == "PLAIN"
        assert start_ok.response == "\x00guest\x00secret"
        assert start_ok.locale == "en_US"
        client_properties = start_ok.client_properties
        assert client_properties["product"] == "leveret"
        capabilities = client_properties["capabilities"]
        assert capabilities["publisher_confirms"] is True
        assert capabilities["basic.nack"] is True
        assert capabilities["consumer_cancel_notify"] is True
        assert capabilities["connection.blocked"] is True
        assert capabilities["authentication_failure_close"] is True
        assert connection.server_properties == {"product": "RabbitMQ"}

    run(scenario)


def test_start_without_plain_fails_handshake() -> None:
    async def scenario() -> None:
        connection, transport = make_connection()
        start = commands.Connection.Start(mechanisms="AMQPLAIN EXTERNAL")
        connection.data_received(marshal(start))
        with pytest.raises(ConnectionClosed, match="no PLAIN login"):
            await connection.handshake()
        assert transport.closed

    run(scenario)


@pytest.mark.parametrize(
    ("client", "server", "expected"),
    [
        ((60, "/"), (2047, 131072, 60), (2047, 131072, 60, "/")),
        ((30, "tenant"), (0, 0, 60), (2047, 131072, 30, "tenant")),
        ((60, "/"), (16, 4096, 20), (16, 4096, 20, "/")),
        ((60, "/"), (65535, 1048576, 0), (2047, 131072, 60, "/")),
        ((0, "/"), (2047, 131072, 60), (2047, 131072, 0, "/")),
    ],
    ids=["equal", "server-no-limits", "server-lower", "server-higher", "client-off"],
)
def test_tune_negotiation_and_open(
    client: tuple[int, str],
    server: tuple[int, int, int],
    expected: tuple[int, int, int, str],
) -> None:
    heartbeat, virtual_host = client
    channel_max, frame_max, negotiated_heartbeat, opened_host = expected

    async def scenario() -> None:
        connection, transport = make_connection(
            heartbeat=heartbeat, virtual_host=virtual_host
        )
        connection.data_received(marshal(commands.Connection.Start()))
        transport.new_frames()
        connection.data_received(marshal(commands.Connection.Tune(*server)))
        [(_, tune_ok), (_, open_method)] = transport.new_frames()
        assert isinstance(tune_ok, commands.Connection.TuneOk)
        assert tune_ok.channel_max == channel_max
        assert tune_ok.frame_max == frame_max
        assert tune_ok.heartbeat == negotiated_heartbeat
        assert isinstance(open_method, commands.Connection.Open)
        assert open_method.virtual_host == opened_host
        assert connection.channel_max == channel_max
        assert connection.frame_max == frame_max
        assert connection.heartbeat == negotiated_heartbeat

    run(scenario)


def test_open_ok_completes_handshake() -> None:
    async def scenario() -> None:
        connection, _ = make_connection()
        waiter = asyncio.create_task(connection.handshake())
        connection.data_received(marshal(commands.Connection.Start()))
        connection.data_received(marshal(commands.Connection.Tune(2047, 131072, 60)))
        await asyncio.sleep(0)
        assert not waiter.done()
        connection.data_received(marshal(commands.Connection.OpenOk()))
        await asyncio.wait_for(waiter, 1)
        assert not connection.is_closed

    run(scenario)


def test_handshake_in_one_chunk() -> None:
    async def scenario() -> None:
        connection, transport = make_connection()
        connection.data_received(
            marshal(
                commands.Connection.Start(),
                commands.Connection.Tune(2047, 131072, 0),
                commands.Connection.OpenOk(),
            )
        )
        await asyncio.wait_for(connection.handshake(), 1)
        names = [type(value).__name__ for _, value in transport.new_frames()]
        assert names == ["ProtocolHeader", "StartOk", "TuneOk", "Open"]

    run(scenario)


def test_close_during_handshake_fails_with_reply_code() -> None:
    async def scenario() -> None:
        connection, transport = make_connection()
        connection.data_received(marshal(commands.Connection.Start()))
        transport.new_frames()
        login_refused = commands.Connection.Close(
            403, "ACCESS_REFUSED - Login was refused", 10, 11
        )
        connection.data_received(marshal(login_refused))
        with pytest.raises(ConnectionClosed) as caught:
            await connection.handshake()
        assert caught.value.reply_code == 403
        assert "ACCESS_REFUSED" in caught.value.reply_text
        [(channel, close_ok)] = transport.new_frames()
        assert channel == 0
        assert isinstance(close_ok, commands.Connection.CloseOk)
        assert transport.closed
        assert connection.is_closed
        assert isinstance(connection.closing.exception(), ConnectionClosed)

    run(scenario)


# Channels and publisher confirms.


def test_channel_open_with_confirms() -> None:
    async def scenario() -> None:
        connection, transport = await open_connection()
        task = asyncio.create_task(connection.channel(confirms=True))
        [(number, channel_open)] = await next_frames(transport)
        assert number == 1
        assert isinstance(channel_open, commands.Channel.Open)
        connection.data_received(marshal(commands.Channel.OpenOk(), channel=1))
        [(number, select)] = await next_frames(transport)
        assert number == 1
        assert isinstance(select, commands.Confirm.Select)
        assert select.nowait is False
        await asyncio.sleep(0)
        assert not task.done()
        connection.data_received(marshal(commands.Confirm.SelectOk(), channel=1))
        channel = await asyncio.wait_for(task, 1)
        assert channel.number == 1
        assert not channel.is_closed

    run(scenario)


def test_channel_numbers_are_distinct() -> None:
    async def scenario() -> None:
        connection, transport = await open_connection()
        first = await open_channel(connection, transport, confirms=False)
        second = await open_channel(connection, transport, confirms=False)
        assert (first.number, second.number) == (1, 2)

    run(scenario)


def test_publish_frames_and_confirm_by_ack() -> None:
    async def scenario() -> None:
        connection, transport = await open_connection()
        channel = await open_channel(connection, transport)
        future = publish(channel)
        written = transport.new_frames()
        assert [number for number, _ in written] == [1, 1, 1]
        method, content_header, content_body = (value for _, value in written)
        assert isinstance(method, commands.Basic.Publish)
        assert method.exchange == "leveret"
        assert method.routing_key == "worker"
        assert method.mandatory is False
        assert content_header.properties.message_id is None
        assert content_header.properties.delivery_mode == 2
        assert content_body.value == b"{}"
        assert not future.done()
        connection.data_received(marshal(commands.Basic.Ack(1, False), channel=1))
        assert future.done()
        assert future.result() is None

    run(scenario)


def test_publish_uses_negotiated_frame_max() -> None:
    async def scenario() -> None:
        connection, transport = make_connection()
        connection.data_received(
            marshal(
                commands.Connection.Start(),
                commands.Connection.Tune(2047, 4096, 0),
                commands.Connection.OpenOk(),
            )
        )
        await connection.handshake()
        transport.new_frames()
        channel = await open_channel(connection, transport, confirms=False)
        result = channel.publish(
            "",
            "q",
            b"a" * 10000,
            mandatory=False,
            property_flags=0,
            property_list=b"",
        )
        assert result is None
        written = transport.new_frames()
        sizes = [len(value.value) for _, value in written[2:]]
        assert sizes == [4088, 4088, 1824]

    run(scenario)


def test_multiple_ack_resolves_earlier_tags_only() -> None:
    async def scenario() -> None:
        connection, transport = await open_connection()
        channel = await open_channel(connection, transport)
        futures = [publish(channel) for _ in range(5)]
        connection.data_received(marshal(commands.Basic.Ack(3, True), channel=1))
        assert [future.done() for future in futures] == [True] * 3 + [False] * 2
        assert all(future.result() is None for future in futures[:3])
        connection.data_received(marshal(commands.Basic.Ack(5, False), channel=1))
        assert not futures[3].done()
        assert futures[4].done()
        connection.data_received(marshal(commands.Basic.Ack(4, True), channel=1))
        assert futures[3].result() is None

    run(scenario)


def test_nack_fails_publish_with_publish_refused() -> None:
    async def scenario() -> None:
        connection, transport = await open_connection()
        channel = await open_channel(connection, transport)
        refused = publish(channel)
        accepted = publish(channel)
        connection.data_received(
            marshal(commands.Basic.Nack(1, False, False), channel=1)
        )
        with pytest.raises(PublishRefused):
            await refused
        assert not accepted.done()
        connection.data_received(marshal(commands.Basic.Ack(2, False), channel=1))
        assert accepted.result() is None

    run(scenario)


def test_multiple_nack_refuses_every_earlier_publish() -> None:
    async def scenario() -> None:
        connection, transport = await open_connection()
        channel = await open_channel(connection, transport)
        futures = [publish(channel) for _ in range(3)]
        connection.data_received(marshal(commands.Basic.Nack(2, True), channel=1))
        assert isinstance(futures[0].exception(), PublishRefused)
        assert isinstance(futures[1].exception(), PublishRefused)
        assert not futures[2].done()

    run(scenario)


def returned_message(message_id: str, body: bytes = b"{}") -> bytes:
    # The broker returns the properties of the publish, message id included.
    return message_frames(
        1,
        commands.Basic.Return(312, "NO_ROUTE", "leveret", "worker"),
        body,
        content_type="application/json",
        delivery_mode=2,
        expiration="60000",
        message_id=message_id,
    )


def test_mandatory_publish_carries_message_id() -> None:
    async def scenario() -> None:
        connection, transport = await open_connection()
        channel = await open_channel(connection, transport)
        publish(channel, mandatory=True)
        publish(channel, mandatory=True)
        written = transport.new_frames()
        methods = [value for _, value in written[0::3]]
        headers = [value for _, value in written[1::3]]
        assert all(method.mandatory for method in methods)
        assert [header.properties.message_id for header in headers] == ["1", "2"]
        assert headers[0].properties.content_type == "application/json"
        assert headers[0].properties.expiration == "60000"

    run(scenario)


def test_return_then_ack_gives_unroutable() -> None:
    async def scenario() -> None:
        connection, transport = await open_connection()
        channel = await open_channel(connection, transport)
        future = publish(channel, mandatory=True)
        connection.data_received(
            returned_message("1") + marshal(commands.Basic.Ack(1, False), channel=1)
        )
        with pytest.raises(Unroutable):
            await future

    run(scenario)


def test_return_with_empty_body_gives_unroutable() -> None:
    async def scenario() -> None:
        connection, transport = await open_connection()
        channel = await open_channel(connection, transport)
        future = publish(channel, mandatory=True)
        connection.data_received(returned_message("1", b""))
        connection.data_received(marshal(commands.Basic.Ack(1, False), channel=1))
        assert isinstance(future.exception(), Unroutable)

    run(scenario)


def test_return_matched_by_message_id() -> None:
    async def scenario() -> None:
        connection, transport = await open_connection()
        channel = await open_channel(connection, transport)
        returned = publish(channel, mandatory=True)
        delivered = publish(channel, mandatory=True)
        later = publish(channel, mandatory=True)
        connection.data_received(returned_message("1"))
        connection.data_received(marshal(commands.Basic.Ack(2, False), channel=1))
        assert delivered.result() is None
        assert not returned.done()
        connection.data_received(marshal(commands.Basic.Ack(3, True), channel=1))
        assert isinstance(returned.exception(), Unroutable)
        assert later.result() is None

    run(scenario)


def test_channel_close_fails_pending_work() -> None:
    async def scenario() -> None:
        connection, transport = await open_connection()
        channel = await open_channel(connection, transport)
        confirm = publish(channel)
        transport.new_frames()
        declare = asyncio.create_task(channel.queue_declare("missing", passive=True))
        [(_, declare_method)] = await next_frames(transport)
        assert isinstance(declare_method, commands.Queue.Declare)
        assert declare_method.passive is True
        close = commands.Channel.Close(404, "NOT_FOUND - no queue 'missing'", 50, 10)
        connection.data_received(marshal(close, channel=1))
        with pytest.raises(ChannelClosed) as caught:
            await declare
        assert caught.value.reply_code == 404
        assert "no queue 'missing'" in caught.value.reply_text
        confirm_error = confirm.exception()
        assert isinstance(confirm_error, ChannelClosed)
        assert confirm_error.reply_code == 404
        [(number, close_ok)] = transport.new_frames()
        assert number == 1
        assert isinstance(close_ok, commands.Channel.CloseOk)
        assert channel.is_closed
        assert channel.close_reason is caught.value
        with pytest.raises(ChannelClosed):
            publish(channel)
        assert not connection.is_closed

    run(scenario)


def test_channel_close_from_client() -> None:
    async def scenario() -> None:
        connection, transport = await open_connection()
        channel = await open_channel(connection, transport, confirms=False)
        task = asyncio.create_task(channel.close())
        [(number, close)] = await next_frames(transport)
        assert number == 1
        assert isinstance(close, commands.Channel.Close)
        assert close.reply_code == 200
        connection.data_received(marshal(commands.Channel.CloseOk(), channel=1))
        await asyncio.wait_for(task, 1)
        assert channel.is_closed
        # A late frame of the closed channel is ignored.
        connection.data_received(marshal(commands.Basic.Ack(1, False), channel=1))
        assert not connection.is_closed

    run(scenario)


def test_channel_flow_gets_flow_ok() -> None:
    async def scenario() -> None:
        connection, transport = await open_connection()
        await open_channel(connection, transport, confirms=False)
        connection.data_received(marshal(commands.Channel.Flow(False), channel=1))
        [(number, flow_ok)] = transport.new_frames()
        assert number == 1
        assert isinstance(flow_ok, commands.Channel.FlowOk)
        assert flow_ok.active is False

    run(scenario)


def test_unexpected_method_on_channel_is_frame_error() -> None:
    async def scenario() -> None:
        connection, transport = await open_connection()
        await open_channel(connection, transport, confirms=False)
        connection.data_received(marshal(commands.Queue.BindOk(), channel=1))
        error = connection.closing.exception()
        assert isinstance(error, ConnectionClosed)
        assert error.reply_code == 501
        assert "unexpected method" in str(error)

    run(scenario)


# Consumers.


def test_delivery_spanning_frames_reaches_callback() -> None:
    async def scenario() -> None:
        connection, transport = await open_connection()
        channel = await open_channel(connection, transport, confirms=False)
        received: list[Delivery] = []
        tag = await start_consumer(connection, transport, channel, received.append)
        body = bytes(range(256)) * 40
        deliver = commands.Basic.Deliver(tag, 7, True, "leveret", "worker")
        data = message_frames(
            1,
            deliver,
            body,
            frame_max=4096,
            headers={"x-delivery-count": 2},
            content_type="application/json",
        )
        kinds = [kind for kind, _, _ in frames.FrameReader().feed(data)]
        assert kinds.count(frames.FRAME_BODY) == 3
        connection.data_received(data[:5000])
        assert received == []
        connection.data_received(data[5000:])
        [delivery] = received
        assert delivery.body == body
        assert delivery.delivery_tag == 7
        assert delivery.redelivered is True
        assert delivery.headers == {"x-delivery-count": 2}
        assert delivery.channel is channel

    run(scenario)


def feed_through_buffer(connection: Connection, data: bytes) -> None:
    """Feed *data* as asyncio feeds a buffered protocol: each read fills as
    much of the buffer from get_buffer() as it can."""
    while data:
        buffer = connection.get_buffer(-1)
        size = min(len(buffer), len(data))
        buffer[:size] = data[:size]
        data = data[size:]
        connection.buffer_updated(size)


def test_deliveries_larger_than_read_buffer() -> None:
    async def scenario() -> None:
        connection, transport = await open_connection()
        channel = await open_channel(connection, transport, confirms=False)
        received: list[Delivery] = []
        tag = await start_consumer(connection, transport, channel, received.append)
        buffer_size = len(connection.get_buffer(-1))
        large = bytes(range(256)) * (buffer_size // 100)  # 2.56 buffers
        data = b"".join(
            message_frames(1, commands.Basic.Deliver(tag, number, False, "", "q"), body)
            for number, body in enumerate([b"small", large, b"after"], start=1)
        )
        feed_through_buffer(connection, data)
        assert [delivery.body for delivery in received] == [b"small", large, b"after"]

    run(scenario)


def test_delivery_with_empty_body_reaches_callback() -> None:
    async def scenario() -> None:
        connection, transport = await open_connection()
        channel = await open_channel(connection, transport, confirms=False)
        received: list[Delivery] = []
        tag = await start_consumer(connection, transport, channel, received.append)
        deliver = commands.Basic.Deliver(tag, 1, False, "", "q")
        connection.data_received(message_frames(1, deliver, b""))
        [delivery] = received
        assert delivery.body == b""
        assert delivery.headers is None
        assert delivery.redelivered is False

    run(scenario)


def test_delivery_behind_consume_ok_in_same_chunk() -> None:
    async def scenario() -> None:
        connection, transport = await open_connection()
        channel = await open_channel(connection, transport, confirms=False)
        received: list[Delivery] = []

        def deliveries(tag: str) -> bytes:
            first = commands.Basic.Deliver(tag, 1, False, "", "rpc.worker")
            second = commands.Basic.Deliver(tag, 2, False, "", "rpc.worker")
            return message_frames(1, first, b"one") + message_frames(1, second, b"two")

        await start_consumer(
            connection, transport, channel, received.append, follow_up=deliveries
        )
        assert [delivery.body for delivery in received] == [b"one", b"two"]
        assert [delivery.delivery_tag for delivery in received] == [1, 2]

    run(scenario)


def test_basic_consume_frame_fields() -> None:
    async def scenario() -> None:
        connection, transport = await open_connection()
        channel = await open_channel(connection, transport, confirms=False)
        task = asyncio.create_task(
            channel.basic_consume("rpc.worker", lambda _: None, no_ack=True)
        )
        [(number, consume)] = await next_frames(transport)
        assert number == 1
        assert isinstance(consume, commands.Basic.Consume)
        assert consume.queue == "rpc.worker"
        assert consume.no_ack is True
        assert consume.consumer_tag.startswith("leveret.1.")
        ok = commands.Basic.ConsumeOk(consume.consumer_tag)
        connection.data_received(marshal(ok, channel=1))
        assert await task == consume.consumer_tag

    run(scenario)


def test_delivery_for_unknown_consumer_is_requeued() -> None:
    async def scenario() -> None:
        connection, transport = await open_connection()
        await open_channel(connection, transport, confirms=False)
        deliver = commands.Basic.Deliver("nobody", 41, False, "", "q")
        connection.data_received(message_frames(1, deliver, b"lost"))
        [(number, reject)] = transport.new_frames()
        assert number == 1
        assert isinstance(reject, commands.Basic.Reject)
        assert reject.delivery_tag == 41
        assert reject.requeue is True

    run(scenario)


def test_delivery_after_cancel_is_requeued() -> None:
    async def scenario() -> None:
        connection, transport = await open_connection()
        channel = await open_channel(connection, transport, confirms=False)
        received: list[Delivery] = []
        tag = await start_consumer(connection, transport, channel, received.append)
        task = asyncio.create_task(channel.basic_cancel(tag))
        [(_, cancel)] = await next_frames(transport)
        assert isinstance(cancel, commands.Basic.Cancel)
        assert cancel.consumer_tag == tag
        connection.data_received(marshal(commands.Basic.CancelOk(tag), channel=1))
        await asyncio.wait_for(task, 1)
        deliver = commands.Basic.Deliver(tag, 9, False, "", "q")
        connection.data_received(message_frames(1, deliver, b"late"))
        assert received == []
        [(_, reject)] = transport.new_frames()
        assert isinstance(reject, commands.Basic.Reject)
        assert reject.delivery_tag == 9
        assert reject.requeue is True

    run(scenario)


def test_delivery_before_cancel_ok_reaches_callback() -> None:
    async def scenario() -> None:
        connection, transport = await open_connection()
        channel = await open_channel(connection, transport, confirms=False)
        received: list[Delivery] = []
        tag = await start_consumer(connection, transport, channel, received.append)
        task = asyncio.create_task(channel.basic_cancel(tag))
        await next_frames(transport)
        # AMQP 0-9-1 lets the broker deliver between Basic.Cancel and Cancel-Ok.
        deliver = commands.Basic.Deliver(tag, 8, False, "", "q")
        connection.data_received(
            message_frames(1, deliver, b"in flight")
            + marshal(commands.Basic.CancelOk(tag), channel=1)
        )
        await asyncio.wait_for(task, 1)
        assert [delivery.body for delivery in received] == [b"in flight"]
        assert transport.new_frames() == []

    run(scenario)


def test_cancel_from_broker_drops_consumer() -> None:
    async def scenario() -> None:
        connection, transport = await open_connection()
        channel = await open_channel(connection, transport, confirms=False)
        received: list[Delivery] = []
        tag = await start_consumer(connection, transport, channel, received.append)
        connection.data_received(marshal(commands.Basic.Cancel(tag), channel=1))
        deliver = commands.Basic.Deliver(tag, 3, False, "", "q")
        connection.data_received(message_frames(1, deliver, b"x"))
        assert received == []
        [(_, reject)] = transport.new_frames()
        assert isinstance(reject, commands.Basic.Reject)
        assert not connection.is_closed

    run(scenario)


def test_cancel_from_broker_reported_to_the_consumer_owner() -> None:
    async def scenario() -> None:
        connection, transport = await open_connection()
        channel = await open_channel(connection, transport, confirms=False)
        cancelled: list[str] = []
        task = asyncio.create_task(
            channel.basic_consume("q", lambda d: None, on_cancel=cancelled.append)
        )
        [(_, consume)] = await next_frames(transport)
        tag = consume.consumer_tag
        connection.data_received(marshal(commands.Basic.ConsumeOk(tag), channel=1))
        await asyncio.wait_for(task, 1)

        connection.data_received(marshal(commands.Basic.Cancel(tag), channel=1))

        assert cancelled == [tag]

    run(scenario)


def test_raising_callback_keeps_connection(caplog: pytest.LogCaptureFixture) -> None:
    received: list[bytes] = []

    def callback(delivery: Delivery) -> None:
        received.append(delivery.body)
        if delivery.body == b"bad":
            raise RuntimeError("handler failed")

    async def scenario() -> None:
        connection, transport = await open_connection()
        channel = await open_channel(connection, transport, confirms=False)
        tag = await start_consumer(connection, transport, channel, callback)
        first = commands.Basic.Deliver(tag, 1, False, "", "q")
        second = commands.Basic.Deliver(tag, 2, False, "", "q")
        connection.data_received(
            message_frames(1, first, b"bad") + message_frames(1, second, b"good")
        )
        assert received == [b"bad", b"good"]
        assert not connection.is_closed
        assert not channel.is_closed

    with caplog.at_level(logging.ERROR, logger="leveret.transport.rabbitmq"):
        run(scenario)
    failures = [r for r in caplog.records if "callback_failed" in r.getMessage()]
    assert len(failures) == 1
    assert failures[0].exc_info is not None


def test_ack_and_reject_write_frames() -> None:
    async def scenario() -> None:
        connection, transport = await open_connection()
        channel = await open_channel(connection, transport, confirms=False)
        channel.ack(5)
        channel.reject(6, requeue=False)
        channel.reject(7, requeue=True)
        [(_, ack), (_, dropped), (_, requeued)] = transport.new_frames()
        assert isinstance(ack, commands.Basic.Ack)
        assert ack.delivery_tag == 5
        assert ack.multiple is False
        assert isinstance(dropped, commands.Basic.Reject)
        assert dropped.delivery_tag == 6
        assert dropped.requeue is False
        assert isinstance(requeued, commands.Basic.Reject)
        assert requeued.delivery_tag == 7
        assert requeued.requeue is True

    run(scenario)


def test_loop_pass_frames_share_one_write() -> None:
    async def scenario() -> None:
        connection, transport = await open_connection()
        channel = await open_channel(connection, transport)
        writes_before = len(transport.written)
        channel.ack(5)
        publish(channel)
        channel.ack(6)
        assert len(transport.written) == writes_before
        await asyncio.sleep(0)
        assert len(transport.written) == writes_before + 1
        sent = [type(frame).__name__ for _, frame in transport.new_frames()]
        assert sent == ["Ack", "Publish", "ContentHeader", "ContentBody", "Ack"]

    run(scenario)


def test_delivery_settled_through_its_channel() -> None:
    async def scenario() -> None:
        connection, transport = await open_connection()
        channel = await open_channel(connection, transport, confirms=False)
        received: list[Delivery] = []
        tag = await start_consumer(connection, transport, channel, received.append)
        deliver = commands.Basic.Deliver(tag, 12, False, "", "q")
        connection.data_received(message_frames(1, deliver, b"x"))
        [delivery] = received
        delivery.channel.ack(delivery.delivery_tag)
        [(number, ack)] = transport.new_frames()
        assert number == 1
        assert isinstance(ack, commands.Basic.Ack)
        assert ack.delivery_tag == 12

    run(scenario)


def test_settle_on_closed_channel_writes_nothing() -> None:
    async def scenario() -> None:
        connection, transport = await open_connection()
        channel = await open_channel(connection, transport, confirms=False)
        close = commands.Channel.Close(406, "PRECONDITION_FAILED - unknown tag", 60, 80)
        connection.data_received(marshal(close, channel=1))
        transport.new_frames()
        channel.ack(1)
        channel.reject(2, requeue=True)
        assert transport.new_frames() == []

    run(scenario)


def test_settle_after_connection_lost_writes_nothing() -> None:
    async def scenario() -> None:
        connection, transport = await open_connection()
        channel = await open_channel(connection, transport, confirms=False)
        connection.connection_lost(None)
        channel.ack(1)
        channel.reject(2, requeue=False)
        assert transport.new_frames() == []

    run(scenario)


# Heartbeats.


def test_heartbeat_sent_after_half_interval() -> None:
    async def scenario() -> None:
        connection, transport = await open_connection(heartbeat=1)
        assert connection.heartbeat == 1
        await asyncio.sleep(0.3)
        assert transport.new_frames() == []
        await asyncio.sleep(0.35)
        written = transport.new_frames()
        assert len(written) >= 1
        for channel, value in written:
            assert channel == 0
            assert isinstance(value, pamqp_heartbeat.Heartbeat)
        assert not connection.is_closed

    run(scenario)


def test_silent_broker_fails_connection() -> None:
    async def scenario() -> None:
        connection, transport = await open_connection(heartbeat=1)
        loop = asyncio.get_running_loop()
        now = loop.time()
        # After 1.4 s of silence, below 1.5 intervals, the timer sends a heartbeat.
        with mock.patch.object(loop, "time", return_value=now + 1.4):
            connection._on_heartbeat_timer()
        [(_, beat)] = transport.new_frames()
        assert isinstance(beat, pamqp_heartbeat.Heartbeat)
        assert not connection.is_closed
        with mock.patch.object(loop, "time", return_value=now + 1.6):
            connection._on_heartbeat_timer()
        assert connection.is_closed
        assert transport.closed
        error = connection.closing.exception()
        assert isinstance(error, ConnectionClosed)
        assert "missed heartbeats" in str(error)
        assert transport.new_frames() == []

    run(scenario)


def test_received_data_keeps_connection_alive() -> None:
    async def scenario() -> None:
        connection, transport = await open_connection(heartbeat=1)
        loop = asyncio.get_running_loop()
        now = loop.time()
        with mock.patch.object(loop, "time", return_value=now + 5):
            connection.data_received(pamqp_heartbeat.Heartbeat.marshal())
        with mock.patch.object(loop, "time", return_value=now + 6):
            connection._on_heartbeat_timer()
        assert not connection.is_closed
        [(_, beat)] = transport.new_frames()
        assert isinstance(beat, pamqp_heartbeat.Heartbeat)

    run(scenario)


@pytest.mark.parametrize(("client_heartbeat", "expected_delays"), [(0, []), (4, [2.0])])
def test_open_ok_schedules_heartbeat_timer(
    client_heartbeat: int, expected_delays: list[float]
) -> None:
    async def scenario() -> None:
        connection, _ = make_connection(heartbeat=client_heartbeat)
        connection.data_received(
            marshal(commands.Connection.Start(), commands.Connection.Tune(0, 0, 60))
        )
        loop = asyncio.get_running_loop()
        with mock.patch.object(loop, "call_later") as call_later:
            connection.data_received(marshal(commands.Connection.OpenOk()))
        delays = [call.args[0] for call in call_later.call_args_list]
        assert delays == expected_delays
        assert connection.heartbeat == client_heartbeat

    run(scenario)


# Losing and closing the connection.


def test_connection_lost_fails_closing_and_channels() -> None:
    async def scenario() -> None:
        connection, transport = await open_connection()
        first = await open_channel(connection, transport)
        second = await open_channel(connection, transport, confirms=False)
        confirm = publish(first)
        waiting = asyncio.create_task(second.basic_qos(10))
        await next_frames(transport)
        connection.connection_lost(ConnectionResetError("reset by peer"))
        error = connection.closing.exception()
        assert isinstance(error, ConnectionClosed)
        assert error.reply_code == 0
        assert "reset by peer" in str(error)
        assert first.is_closed
        assert second.is_closed
        assert first.close_reason is error
        assert second.close_reason is error
        assert confirm.exception() is error
        with pytest.raises(ConnectionClosed):
            await waiting
        with pytest.raises(ConnectionClosed):
            await connection.channel()
        with pytest.raises(ConnectionClosed):
            publish(first)

    run(scenario)


def test_socket_end_without_error_fails_closing() -> None:
    async def scenario() -> None:
        connection, _ = await open_connection()
        connection.connection_lost(None)
        error = connection.closing.exception()
        assert isinstance(error, ConnectionClosed)
        assert error.reply_code == 0
        assert "closed the socket" in str(error)

    run(scenario)


def test_close_waits_for_close_ok() -> None:
    async def scenario() -> None:
        connection, transport = await open_connection()
        channel = await open_channel(connection, transport, confirms=False)
        task = asyncio.create_task(connection.close())
        [(number, close)] = await next_frames(transport)
        assert number == 0
        assert isinstance(close, commands.Connection.Close)
        assert close.reply_code == 200
        await asyncio.sleep(0)
        assert not task.done()
        assert not transport.closed
        connection.data_received(marshal(commands.Connection.CloseOk()))
        await asyncio.wait_for(task, 1)
        assert transport.closed
        assert connection.is_closed
        assert connection.closing.done()
        assert connection.closing.exception() is None
        assert channel.is_closed
        await connection.close()  # A second close() returns at once.

    run(scenario)


def test_close_ends_on_lost_socket() -> None:
    async def scenario() -> None:
        connection, transport = await open_connection()
        task = asyncio.create_task(connection.close())
        [(_, close)] = await next_frames(transport)
        assert isinstance(close, commands.Connection.Close)
        connection.connection_lost(None)
        await asyncio.wait_for(task, 1)
        assert connection.is_closed
        assert connection.closing.exception() is None

    run(scenario)


def test_close_waits_for_socket_to_close() -> None:
    async def scenario() -> None:
        connection, transport = await open_connection(transport_type=LingeringTransport)
        task = asyncio.create_task(connection.close())
        await next_frames(transport)
        connection.data_received(marshal(commands.Connection.CloseOk()))
        for _ in range(10):
            await asyncio.sleep(0)
        assert transport.closed
        assert not task.done(), "close() returned while the socket was still open"
        connection.connection_lost(None)
        await asyncio.wait_for(task, 1)
        assert isinstance(transport, LingeringTransport)
        assert not transport.aborted

    run(scenario)


def test_close_aborts_socket_left_open() -> None:
    async def scenario() -> None:
        connection, transport = await open_connection(transport_type=LingeringTransport)
        with mock.patch.object(_amqp_protocol, "CLOSE_TIMEOUT", 0.2):
            task = asyncio.create_task(connection.close())
            await next_frames(transport)
            connection.data_received(marshal(commands.Connection.CloseOk()))
            await asyncio.wait_for(task, 2)
        assert isinstance(transport, LingeringTransport)
        assert transport.aborted
        assert connection.closing.exception() is None

    run(scenario)


def test_broker_close_fails_closing_with_reply_code() -> None:
    async def scenario() -> None:
        connection, transport = await open_connection()
        channel = await open_channel(connection, transport)
        confirm = publish(channel)
        transport.new_frames()
        forced = commands.Connection.Close(320, "CONNECTION_FORCED - shutdown", 0, 0)
        connection.data_received(marshal(forced))
        [(_, close_ok)] = transport.new_frames()
        assert isinstance(close_ok, commands.Connection.CloseOk)
        error = connection.closing.exception()
        assert isinstance(error, ConnectionClosed)
        assert error.reply_code == 320
        assert isinstance(confirm.exception(), ConnectionClosed)
        assert channel.close_reason is error

    run(scenario)


def test_frame_garbage_closes_connection_with_501() -> None:
    async def scenario() -> None:
        connection, transport = await open_connection()
        channel = await open_channel(connection, transport)
        confirm = publish(channel)
        garbage = bytearray(marshal(commands.Basic.Ack(1, False), channel=1))
        garbage[-1] = 0x41
        connection.data_received(bytes(garbage))
        assert transport.closed
        error = connection.closing.exception()
        assert isinstance(error, ConnectionClosed)
        assert error.reply_code == 501
        assert "end byte" in error.reply_text
        assert confirm.exception() is error
        assert not confirm.cancelled()

    run(scenario)


def test_errors_share_base_class() -> None:
    for error_type in [ConnectionClosed, ChannelClosed, Unroutable, PublishRefused]:
        assert issubclass(error_type, AMQPError)
    assert str(ConnectionClosed(0, "the broker closed the socket")) == (
        "the broker closed the socket"
    )
    assert str(ChannelClosed(404, "NOT_FOUND")) == "404 NOT_FOUND"


# Cancelled methods.


def test_cancelled_method_closes_its_channel_not_the_connection() -> None:
    async def scenario() -> None:
        connection, transport = await open_connection()
        channel = await open_channel(connection, transport, confirms=False)
        declare = asyncio.create_task(channel.queue_declare("q1", durable=True))
        [(_, sent)] = await next_frames(transport)
        assert isinstance(sent, commands.Queue.Declare)
        declare.cancel()
        with pytest.raises(asyncio.CancelledError):
            await declare

        [(number, close)] = await next_frames(transport)
        assert (number, type(close)) == (channel.number, commands.Channel.Close)
        assert channel.is_closed
        # The late declare-ok, then a delivery sent before the broker saw the
        # close, must not break the connection.
        connection.data_received(
            marshal(commands.Queue.DeclareOk("q1", 0, 0), channel=channel.number)
        )
        connection.data_received(
            message_frames(
                channel.number,
                commands.Basic.Deliver("leveret.1.1", 1, False, "", "q1"),
                b"late",
            )
        )
        assert not connection.is_closed
        # The number stays taken until the broker's close-ok.
        second = await open_channel(connection, transport, confirms=False)
        assert second.number != channel.number
        connection.data_received(
            marshal(commands.Channel.CloseOk(), channel=channel.number)
        )
        third = await open_channel(connection, transport, confirms=False)
        assert third.number == channel.number

    run(scenario)


def test_supervisor_waits_while_its_connection_is_closed() -> None:
    async def scenario() -> None:
        async def on_connected(connection: Connection) -> None:
            return None

        options = parse_rabbitmq_url("amqp://guest:guest@127.0.0.1:1/")
        supervisor = ConnectionSupervisor(options, on_connected, None)
        # A stand-in for the reconnect task, which this test does not run.
        supervisor._task = asyncio.create_task(asyncio.sleep(0))
        connection, transport = await open_connection()
        supervisor.connection = connection
        supervisor._ready.set()
        transport.close()

        # Closed and not yet replaced: ready() must wait, not spin.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(supervisor.ready(), 0.1)

    run(scenario)


def test_unbuildable_publish_keeps_confirm_numbering() -> None:
    async def scenario() -> None:
        connection, transport = await open_connection()
        channel = await open_channel(connection, transport)
        flags, property_list = frames.properties(delivery_mode=1)
        with pytest.raises(ValueError, match="255 bytes"):
            channel.publish(
                "",
                "k" * 300,
                b"x",
                mandatory=True,
                property_flags=flags,
                property_list=property_list,
            )

        confirm = publish(channel, mandatory=True)
        connection.data_received(marshal(commands.Basic.Ack(1), channel=1))

        assert await asyncio.wait_for(confirm, 1) is None
        assert not connection.is_closed

    run(scenario)


def test_cancelled_channel_open_keeps_its_number() -> None:
    async def scenario() -> None:
        connection, transport = await open_connection()
        opening = asyncio.create_task(connection.channel())
        [(number, _)] = await next_frames(transport)
        opening.cancel()
        with pytest.raises(asyncio.CancelledError):
            await opening
        [(_, close)] = await next_frames(transport)
        assert isinstance(close, commands.Channel.Close)

        second = await open_channel(connection, transport, confirms=False)
        assert second.number != number
        connection.data_received(marshal(commands.Channel.OpenOk(), channel=number))
        connection.data_received(marshal(commands.Channel.CloseOk(), channel=number))
        third = await open_channel(connection, transport, confirms=False)
        assert third.number == number
        assert not connection.is_closed

    run(scenario)
