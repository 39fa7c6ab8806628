"""leveret's own AMQP 0-9-1 client against a real RabbitMQ broker.

Covers what the other integration tests leave out: messages that span many
body frames, non-ASCII text, a broker under a resource alarm
(``connection.blocked``), many channels on one connection, and publisher
confirm accounting under concurrency.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import random
import string
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from broker_api import WAIT_SECONDS, Api, new_topic, run_rabbitmqctl, wait_until

import leveret
from leveret.transports import rabbitmq

LOGGER = "leveret.transport.rabbitmq"
HEARTBEAT_SECONDS = 2
# The default memory watermark of RabbitMQ 3.10 (its rabbit.app), as a
# fraction of the machine's memory.
DEFAULT_WATERMARK = "0.4"


class Service:
    """Endpoint methods the tests call. ``received`` stores each cast's value."""

    def __init__(self, name: str = "server-1") -> None:
        self.name = name
        self.received: list[Any] = []

    def whoami(self) -> str:
        return self.name

    def echo(self, value: Any) -> Any:
        return value

    def record(self, value: Any) -> None:
        self.received.append(value)

    def numbered_copies(self, text: str, copies: int) -> str:
        return "".join(f"<{number}>{text}" for number in range(copies))


def _supervisor(transport: leveret.Transport) -> Any:
    return transport._supervisor  # type: ignore[attr-defined]


def _mixed_text(characters: int, seed: int) -> str:
    """Return random text of ASCII letters, digits and multi-byte UTF-8 characters.

    Multi-byte characters end up split across body frames, and random text
    shows any body frames reordered or repeated.
    """
    alphabet = string.ascii_letters + string.digits + "éü€中😀"
    return "".join(random.Random(seed).choices(alphabet, k=characters))


# Large and non-ASCII messages.


def test_large_call_round_trips(api: Api) -> None:
    topic = new_topic()
    api.serve(topic, [Service()])
    client = api.client(topic)
    text = _mixed_text(900_000, seed=1)
    assert len(text.encode()) > 1_000_000, "the argument should be over 1 MB"

    result = api.call(client, "numbered_copies", text=text, copies=5)

    expected = "".join(f"<{number}>{text}" for number in range(5))
    assert len(result.encode()) > 5_000_000
    assert len(result) == len(expected)
    assert result == expected


def test_large_cast_arrives_intact(api: Api) -> None:
    topic = new_topic()
    service = Service()
    api.serve(topic, [service])
    client = api.client(topic)
    text = _mixed_text(900_000, seed=2)

    api.cast(client, "record", value=text)

    assert wait_until(lambda: len(service.received) == 1)
    assert service.received[0] == text


def test_non_ascii_text_round_trips(api: Api) -> None:
    # The topic and server name go into queue names and routing keys, which
    # AMQP encodes as short strings of UTF-8 bytes.
    topic = new_topic("тема-é")
    service = Service("сервер-😀")
    api.serve(topic, [service], server=service.name)
    client = api.client(topic)
    text = 'Grüße, 你好, привет, 😀 and a NUL \x00 and a quote " here'

    assert api.call(client, "echo", value=text) == text
    assert api.call(client, "echo", value={text: [text]}) == {text: [text]}
    assert api.call(client.prepare(server=service.name), "whoami") == service.name
    api.cast(client, "record", value=text)
    assert wait_until(lambda: service.received == [text])


def test_call_timeout_past_ttl_limit(
    amqp_url: str, make_transport: Callable[[str], leveret.Transport]
) -> None:
    transport = make_transport(amqp_url)
    topic = new_topic()
    with leveret.RPCServer(transport, leveret.Target(topic, server="s1"), [Service()]):
        # About 32 years: RabbitMQ rejects a per-message TTL that long.
        client = leveret.RPCClient(transport, leveret.Target(topic), timeout=1e9)
        assert client.call("echo", value=1) == 1


# A broker under a resource alarm.


def _set_memory_watermark(broker: Any, fraction: str) -> None:
    """Set the memory high watermark of *broker*'s node; 0 raises a memory alarm."""
    run_rabbitmqctl(broker.state_dir, "set_vm_memory_high_watermark", fraction)


def _records(
    caplog: pytest.LogCaptureFixture, prefix: str, logger: str = LOGGER
) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.name == logger and record.getMessage().startswith(prefix)
    ]


def _blocked_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return _records(caplog, "connection.blocked")


def test_blocked_broker_times_out_then_recovers(
    caplog: pytest.LogCaptureFixture,
    own_broker: Any,
    make_transport: Callable[[str], leveret.Transport],
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    transport = make_transport(f"{own_broker.url}?heartbeat={HEARTBEAT_SECONDS}")
    topic = new_topic()
    service = Service("s1")
    timeout = 2.0

    with leveret.RPCServer(transport, leveret.Target(topic, server="s1"), [service]):
        client = leveret.RPCClient(transport, leveret.Target(topic), timeout=timeout)
        assert client.call("whoami") == "s1"

        _set_memory_watermark(own_broker, "0")
        blocked_at = time.monotonic()
        try:
            started = time.monotonic()
            with pytest.raises(leveret.MessagingTimeout):
                client.cast("record", value="while blocked")
            cast_seconds = time.monotonic() - started

            # RabbitMQ 3.10 sends connection.blocked when the connection
            # publishes under the alarm, not when the alarm starts.
            assert wait_until(lambda: bool(_blocked_records(caplog))), (
                "the transport logged no connection.blocked"
            )
            assert _blocked_records(caplog)[0].levelno == logging.WARNING

            started = time.monotonic()
            with pytest.raises(leveret.MessagingTimeout):
                client.call("whoami")
            call_seconds = time.monotonic() - started

            # Stay blocked for three heartbeat intervals. The broker reads
            # nothing from a blocked connection, heartbeats included, and must
            # not take that silence for a dead client.
            time.sleep(max(0.0, blocked_at + 3 * HEARTBEAT_SECONDS - time.monotonic()))
        finally:
            _set_memory_watermark(own_broker, DEFAULT_WATERMARK)

        assert cast_seconds >= timeout * 0.9, f"cast raised after {cast_seconds:.2f} s"
        assert cast_seconds < timeout + 1.5, f"cast raised after {cast_seconds:.2f} s"
        assert call_seconds >= timeout * 0.9, f"call raised after {call_seconds:.2f} s"
        assert call_seconds < timeout + 1.5, f"call raised after {call_seconds:.2f} s"

        assert wait_until(lambda: bool(_records(caplog, "connection.unblocked"))), (
            "the transport logged no connection.unblocked"
        )
        assert client.prepare(timeout=WAIT_SECONDS).call("whoami") == "s1"

    assert _supervisor(transport).connections_opened == 1


class Slow:
    """A method that takes a while, so that a test can act while it runs."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.released = threading.Event()

    def wait_then_echo(self, seconds: float, value: Any) -> Any:
        self.started.set()
        time.sleep(seconds)
        return value

    def echo_when_released(self, value: Any) -> Any:
        self.started.set()
        self.released.wait(WAIT_SECONDS)
        return value


def _reply_failures(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return _records(caplog, "reply.failed", logger="leveret.server")


def test_reply_blocked_by_broker_gives_up(
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    own_broker: Any,
    make_transport: Callable[[str], leveret.Transport],
) -> None:
    monkeypatch.setattr(rabbitmq, "REPLY_SEND_TIMEOUT", 1.0)
    caplog.set_level(logging.INFO, logger="leveret")
    transport = make_transport(own_broker.url)
    topic = new_topic()
    service = Slow()

    with leveret.RPCServer(transport, leveret.Target(topic, server="s1"), [service]):
        client = leveret.RPCClient(transport, leveret.Target(topic), timeout=4.0)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(client.call, "echo_when_released", value=1)
            assert service.started.wait(WAIT_SECONDS)
            _set_memory_watermark(own_broker, "0")
            # The reply goes out only once the alarm is on, however long
            # rabbitmqctl took. The caller's deadline may pass first: the
            # server replies all the same.
            service.released.set()
            try:
                # The server gives up on the reply after REPLY_SEND_TIMEOUT and
                # logs it. The caller gets nothing before its own deadline.
                assert wait_until(lambda: bool(_reply_failures(caplog)))
                with pytest.raises(leveret.MessagingTimeout):
                    pending.result(WAIT_SECONDS)
            finally:
                _set_memory_watermark(own_broker, DEFAULT_WATERMARK)

        message = _reply_failures(caplog)[0].getMessage()
        assert "did not accept the reply within 1 s" in message
        # The late confirm of the abandoned reply leaves the server serving.
        answer = client.prepare(timeout=WAIT_SECONDS).call(
            "wait_then_echo", seconds=0, value=2
        )
        assert answer == 2


# Many channels and consumers on one connection.


def test_fifty_servers_share_connection(
    amqp_url: str, make_transport: Callable[[str], leveret.Transport]
) -> None:
    transport = make_transport(amqp_url)
    transport.connect(timeout=WAIT_SECONDS)
    connection = _supervisor(transport).connection
    # The probe call opens the channels a client needs (publish and reply),
    # so channels_before counts them.
    probe_topic = new_topic()
    with leveret.RPCServer(
        transport, leveret.Target(probe_topic, server="probe"), [Service("probe")]
    ):
        probe = leveret.RPCClient(transport, leveret.Target(probe_topic))
        assert probe.call("whoami") == "probe"
    channels_before = len(connection._channels)

    topics = [new_topic() for _ in range(50)]
    servers = []
    try:
        for number, topic in enumerate(topics):
            name = f"server-{number}"
            target = leveret.Target(topic, server=name)
            server = leveret.RPCServer(transport, target, [Service(name)])
            server.start()
            servers.append(server)

        answers = [
            leveret.RPCClient(transport, leveret.Target(topic)).call("whoami")
            for topic in topics
        ]
    finally:
        for server in servers:
            server.stop()

    assert answers == [f"server-{number}" for number in range(50)]
    assert _supervisor(transport).connection is connection
    assert not connection.is_closed
    assert _supervisor(transport).connections_opened == 1
    assert len(connection._channels) == channels_before, "a server leaked a channel"

    with leveret.RPCServer(
        transport, leveret.Target(probe_topic, server="probe"), [Service("after")]
    ):
        assert probe.call("whoami") == "after"


# Publisher confirms under concurrency.


def _cast_all(
    transport: leveret.Transport, casts: list[tuple[str, int]]
) -> list[BaseException | None]:
    """Send every ``(topic, value)`` cast at once; return each one's outcome."""

    async def main() -> list[BaseException | None]:
        clients = {
            topic: leveret.AsyncRPCClient(
                transport, leveret.Target(topic), timeout=WAIT_SECONDS
            )
            for topic in {topic for topic, _ in casts}
        }
        return await asyncio.gather(
            *(clients[topic].cast("record", value=value) for topic, value in casts),
            return_exceptions=True,
        )

    return asyncio.run(main())


def test_concurrent_casts_arrive_once(
    amqp_url: str, make_transport: Callable[[str], leveret.Transport]
) -> None:
    server_transport = make_transport(amqp_url)
    client_transport = make_transport(amqp_url)
    topic = new_topic()
    service = Service()
    target = leveret.Target(topic, server="s1")

    with leveret.RPCServer(server_transport, target, [service]):
        outcomes = _cast_all(client_transport, [(topic, i) for i in range(500)])
        errors = [outcome for outcome in outcomes if outcome is not None]
        assert errors == [], errors[:3]
        assert wait_until(lambda: len(service.received) >= 500)
        # Give a duplicate time to arrive.
        time.sleep(0.5)

    counts = collections.Counter(service.received)
    assert len(service.received) == 500
    assert sorted(counts) == list(range(500))
    assert set(counts.values()) == {1}
    main_channel = client_transport._publish_channels["main"]  # type: ignore[attr-defined]
    assert main_channel._unconfirmed == {}, "confirms are still awaited"


def test_unroutable_casts_among_routed(
    amqp_url: str, make_transport: Callable[[str], leveret.Transport]
) -> None:
    """Returned casts fail alone, among others confirmed on the same channel."""
    server_transport = make_transport(amqp_url)
    client_transport = make_transport(amqp_url)
    topic = new_topic()
    nobody = new_topic("nobody")
    service = Service()
    target = leveret.Target(topic, server="s1")
    casts = [(nobody if i % 5 == 0 else topic, i) for i in range(500)]

    with leveret.RPCServer(server_transport, target, [service]):
        outcomes = _cast_all(client_transport, casts)
        assert wait_until(lambda: len(service.received) >= 400)
        time.sleep(0.5)

    for (cast_topic, value), outcome in zip(casts, outcomes, strict=True):
        if cast_topic == nobody:
            assert isinstance(outcome, leveret.NoServerError), (value, outcome)
        else:
            assert outcome is None, (value, outcome)
    assert sorted(service.received) == [i for i in range(500) if i % 5 != 0]
    assert _supervisor(client_transport).connections_opened == 1


def test_name_too_long_for_amqp_rejected_alone(api: Api) -> None:
    topic = new_topic("long-name")
    api.serve(topic, [Service()], server="s1")
    client = api.client(topic)

    with pytest.raises(leveret.InvalidTarget, match="255 bytes"):
        api.call(client.prepare(server="s" * 300), "whoami")

    assert api.call(client, "whoami") == "server-1"


def test_timeouts_name_blocked_publishing(
    own_broker: Any, make_transport: Callable[[str], leveret.Transport]
) -> None:
    transport = make_transport(own_broker.url)
    transport.connect(timeout=WAIT_SECONDS)
    client = leveret.RPCClient(transport, leveret.Target(new_topic()), timeout=1.0)
    notifier = leveret.Notifier(
        transport,
        "test",
        topics=[new_topic()],
        timeout=1.0,
        attempt_timeout=0.5,
    )
    _set_memory_watermark(own_broker, "0")
    try:
        # The broker blocks a connection at its first publish in an alarm.
        with pytest.raises(leveret.MessagingTimeout):
            client.cast("anything")
        note = "the broker has blocked publishing on this connection"
        assert wait_until(lambda: note in transport.connection_note())
        with pytest.raises(leveret.MessagingTimeout, match=note):
            client.cast("anything")
        with pytest.raises(leveret.MessagingTimeout, match=note):
            notifier.info("event", {})
    finally:
        _set_memory_watermark(own_broker, DEFAULT_WATERMARK)
    assert wait_until(lambda: transport.connection_note() == "")
