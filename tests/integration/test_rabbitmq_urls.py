"""Transport URLs on a real broker: failover, options, and masked passwords."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import traceback
import urllib.parse
import uuid
from collections.abc import Callable
from typing import Any

import pika
import pytest
from broker_api import (
    WAIT_SECONDS,
    new_topic,
    rabbitmqctl,
    run_rabbitmqctl,
    wait_until,
)

import leveret

# Only used on ports nothing listens on, or refused by the broker: the guest
# user can log in with password guest only.
SECRET = "Zq7-unmistakable-Secret-Pw"


class Service:
    def ping(self) -> str:
        return "pong"


def _port(url: str) -> int:
    port = urllib.parse.urlsplit(url).port
    assert port is not None
    return port


def _call_ping(transport: leveret.Transport, timeout: float = WAIT_SECONDS) -> str:
    topic = new_topic()
    with leveret.RPCServer(transport, leveret.Target(topic, server="s1"), [Service()]):
        client = leveret.RPCClient(transport, leveret.Target(topic), timeout=timeout)
        result: str = client.call("ping")
        return result


def _supervisor(transport: leveret.Transport):  # type: ignore[no-untyped-def]
    return transport._supervisor  # type: ignore[attr-defined]


# Several brokers.


def test_failover_to_second_broker(
    amqp_url: str,
    closed_port: int,
    make_transport: Callable[[str], leveret.Transport],
) -> None:
    good = _port(amqp_url)
    url = f"amqp://guest:guest@127.0.0.1:{closed_port},guest:guest@127.0.0.1:{good}/"
    transport = make_transport(url)

    assert _call_ping(transport) == "pong"
    assert _supervisor(transport).broker.port == good


def test_list_of_urls_fails_over(
    amqp_url: str,
    closed_port: int,
    make_transport: Callable[[list[str]], leveret.Transport],
) -> None:
    urls = [f"amqp://guest:guest@127.0.0.1:{closed_port}/", amqp_url]
    transport = make_transport(urls)

    assert _call_ping(transport) == "pong"


# Query options.


def test_heartbeat_option_negotiated(
    amqp_url: str, make_transport: Callable[[str], leveret.Transport]
) -> None:
    transport = make_transport(f"{amqp_url}?heartbeat=7")

    assert _call_ping(transport) == "pong"
    connection = _supervisor(transport).connection
    assert connection.heartbeat == 7


def test_heartbeat_zero_turns_heartbeats_off(
    own_broker: Any, make_transport: Callable[[str], leveret.Transport]
) -> None:
    transport = make_transport(f"{own_broker.url}?heartbeat=0")

    assert _call_ping(transport) == "pong"
    assert _supervisor(transport).connection.heartbeat == 0
    # RabbitMQ 3.10 proposes 60 s, so a 0 here shows it accepted the client's 0.
    rows = rabbitmqctl(own_broker.state_dir, "list_connections", "timeout")
    assert [row["timeout"] for row in rows] == [0]
    assert _call_ping(transport) == "pong"


def test_own_loop_false_uses_caller_loop(amqp_url: str) -> None:
    topic = new_topic("shared-loop")

    class AsyncService:
        async def ping(self) -> str:
            return "pong"

    async def main() -> tuple[str, str, bool]:
        transport = leveret.get_transport(f"{amqp_url}?own_loop=false")
        try:
            target = leveret.Target(topic, server="s1")
            async with leveret.AsyncRPCServer(transport, target, [AsyncService()]):
                client = leveret.AsyncRPCClient(
                    transport, leveret.Target(topic), timeout=WAIT_SECONDS
                )
                answer = await client.call("ping")
                # A blocking client in another thread reaches the same loop.
                blocking = leveret.RPCClient(
                    transport, leveret.Target(topic), timeout=WAIT_SECONDS
                )
                from_thread = await asyncio.to_thread(blocking.call, "ping")
                on_this_loop = transport.binding.loop is asyncio.get_running_loop()
        finally:
            await transport.aclose()
        return answer, from_thread, on_this_loop

    threads_before = {t.name for t in threading.enumerate()}
    answer, from_thread, on_this_loop = asyncio.run(main())

    assert (answer, from_thread) == ("pong", "pong")
    assert on_this_loop
    started = {t.name for t in threading.enumerate()} - threads_before
    assert not any(name.startswith("leveret-RabbitMQ") for name in started), started


def test_own_loop_option_rejects_other_values() -> None:
    with pytest.raises(leveret.ConfigurationError, match="own_loop"):
        leveret.get_transport("amqp://guest:guest@127.0.0.1:5672/?own_loop=maybe")


def test_exchange_option_used(
    amqp_url: str, make_transport: Callable[[str], leveret.Transport]
) -> None:
    exchange = f"it-exchange-{uuid.uuid4().hex}"
    transport = make_transport(f"{amqp_url}?exchange={exchange}")
    topic = new_topic()
    target = leveret.Target(topic, server="s1")
    default_transport = make_transport(amqp_url)

    with leveret.RPCServer(transport, target, [Service()]):
        client = leveret.RPCClient(transport, leveret.Target(topic), timeout=10)
        assert client.call("ping") == "pong"
        # The topic's queue is bound to the other exchange only.
        elsewhere = leveret.RPCClient(default_transport, leveret.Target(topic))
        with pytest.raises(leveret.NoServerError):
            elsewhere.call("ping")

    parameters = pika.URLParameters(amqp_url)
    with pika.BlockingConnection(parameters) as connection:
        channel = connection.channel()
        # Raises ChannelClosedByBroker (NOT_FOUND) if the exchange is missing.
        channel.exchange_declare(exchange, passive=True)


@pytest.mark.parametrize(
    "query",
    [
        "nonsense=1",
        "heartbeat=often",
        "heartbeat=-1",
        "prefetch=0",
        "prefetch=1.5",
        "connection_timeout=soon",
        "connection_timeout=0",
        "connection_timeout=nan",
        "prefetch=70000",
        "quorum_queues=maybe",
        "exchange=",
    ],
)
def test_bad_option_raises(query: str) -> None:
    with pytest.raises(leveret.ConfigurationError):
        leveret.get_transport(f"amqp://guest:guest@127.0.0.1:5672/?{query}")


def test_unknown_option_lists_options() -> None:
    with pytest.raises(leveret.ConfigurationError) as caught:
        leveret.get_transport("amqp://guest:guest@127.0.0.1:5672/?prefech=8")

    assert "'prefech'" in str(caught.value)
    assert "prefetch" in str(caught.value).split("options are:")[1]


@pytest.mark.parametrize(
    "url",
    [
        "amqp://guest:guest@127.0.0.1:notaport/",
        "amqp://guest:guest@:5672/",
        "amqpx://guest:guest@127.0.0.1:5672/",
        "amqp://guest:guest@127.0.0.1:99999/",
    ],
)
def test_bad_url_raises(url: str) -> None:
    with pytest.raises(leveret.ConfigurationError):
        leveret.get_transport(url)


@pytest.mark.parametrize(
    "url",
    [
        f"amqp://guest:{SECRET}@127.0.0.1:notaport/",
        f"amqp://guest:{SECRET}@127.0.0.1:5672/?nonsense=1",
        f"guest:{SECRET}@127.0.0.1:5672/",
        f"amqp://guest:{SECRET}:{SECRET}@127.0.0.1:notaport/",
    ],
    ids=["bad-port", "bad-option", "no-scheme", "colon-in-password"],
)
def test_bad_url_error_masks_password(url: str) -> None:
    with pytest.raises(leveret.ConfigurationError) as caught:
        leveret.get_transport(url)

    assert SECRET not in str(caught.value)


@pytest.mark.parametrize(
    ("path", "shown"),
    [("/", "/"), ("", "/"), ("/%2F", "/"), ("/production", "/production")],
)
def test_repr_shows_virtual_host(path: str, shown: str) -> None:
    transport = leveret.get_transport(f"amqp://guest:{SECRET}@127.0.0.1:5672{path}")

    assert repr(transport).endswith(f"@127.0.0.1:5672{shown}')")
    assert SECRET not in repr(transport)


# Passwords in repr, logs and errors.


def _texts_of(records: list[logging.LogRecord]) -> list[str]:
    """Every text a log handler could print for *records*, tracebacks included."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return [formatter.format(record) for record in records]


def _exception_texts(exc: BaseException) -> list[str]:
    texts = [str(exc), repr(exc)]
    texts.extend(traceback.format_exception(exc))
    return texts


def test_password_hidden_on_bad_port(
    caplog: pytest.LogCaptureFixture,
    closed_port: int,
    make_transport: Callable[[str], leveret.Transport],
) -> None:
    caplog.set_level(logging.DEBUG)
    transport = make_transport(f"amqp://guest:{SECRET}@127.0.0.1:{closed_port}/")
    client = leveret.RPCClient(transport, leveret.Target(new_topic()), timeout=2)

    with pytest.raises(leveret.MessagingTimeout) as caught:
        client.call("ping")
    # Let the supervisor log a few failed attempts.
    assert wait_until(lambda: _supervisor(transport).last_error is not None)

    assert SECRET not in repr(transport)
    assert SECRET not in str(transport)
    for text in _exception_texts(caught.value):
        assert SECRET not in text
    for text in _exception_texts(_supervisor(transport).last_error):
        assert SECRET not in text
    assert caplog.records, "no log records were captured"
    for text in _texts_of(caplog.records):
        assert SECRET not in text


def test_password_hidden_on_refused_login(
    caplog: pytest.LogCaptureFixture,
    amqp_url: str,
    make_transport: Callable[[str], leveret.Transport],
) -> None:
    caplog.set_level(logging.DEBUG)
    port = _port(amqp_url)
    transport = make_transport(f"amqp://guest:{SECRET}@127.0.0.1:{port}/")
    client = leveret.RPCClient(transport, leveret.Target(new_topic()), timeout=30)
    started = time.monotonic()

    with pytest.raises(leveret.AccessRefused) as caught:
        client.call("ping")

    elapsed = time.monotonic() - started
    assert elapsed < 10, f"the call raised after {elapsed:.2f} s, not at once"
    assert "ACCESS_REFUSED" in str(caught.value)
    assert _supervisor(transport).last_error is not None
    for text in _exception_texts(caught.value):
        assert SECRET not in text
    for text in _exception_texts(_supervisor(transport).last_error):
        assert SECRET not in text
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors, "the refused login was not logged at ERROR"
    for text in _texts_of(caplog.records):
        assert SECRET not in text


def test_failover_logs_mask_password(
    caplog: pytest.LogCaptureFixture,
    amqp_url: str,
    closed_port: int,
    make_transport: Callable[[str], leveret.Transport],
) -> None:
    caplog.set_level(logging.DEBUG)
    good = _port(amqp_url)
    url = f"amqp://guest:{SECRET}@127.0.0.1:{closed_port},guest:guest@127.0.0.1:{good}/"
    transport = make_transport(url)

    assert _call_ping(transport) == "pong"

    assert SECRET not in repr(transport)
    failed = [r for r in caplog.records if "connection.failed" in r.getMessage()]
    assert failed, "the failed attempt on the closed port was not logged"
    assert f"127.0.0.1:{closed_port}" in failed[0].getMessage()
    for text in _texts_of(caplog.records):
        assert SECRET not in text


# Transport.connect.


def test_connect_reaches_broker(
    amqp_url: str, make_transport: Callable[[str], leveret.Transport]
) -> None:
    transport = make_transport(amqp_url)
    transport.connect(timeout=30)
    assert not transport.closed


def test_connect_unreachable_raises(
    closed_port: int, make_transport: Callable[[str], leveret.Transport]
) -> None:
    transport = make_transport(f"amqp://guest:{SECRET}@127.0.0.1:{closed_port}/")
    started = time.monotonic()
    with pytest.raises(leveret.ConnectionLost) as caught:
        transport.connect(timeout=1)
    assert time.monotonic() - started < 5
    assert SECRET not in str(caught.value)
    assert "Connect call failed" in str(caught.value)


def test_timeouts_name_connection_error(
    closed_port: int, make_transport: Callable[[str], leveret.Transport]
) -> None:
    transport = make_transport(f"amqp://guest:{SECRET}@127.0.0.1:{closed_port}/")
    client = leveret.RPCClient(transport, leveret.Target("t"), timeout=1.0)
    with pytest.raises(leveret.MessagingTimeout) as call_error:
        client.call("m")
    with pytest.raises(leveret.MessagingTimeout) as stream_error:
        list(client.stream("m"))

    for caught in (call_error, stream_error):
        assert "no connection to the broker: " in str(caught.value)
        assert "Connect call failed" in str(caught.value)


def test_pending_attempt_not_called_unreachable(
    amqp_url: str, make_transport: Callable[[str], leveret.Transport]
) -> None:
    transport = make_transport(amqp_url)
    client = leveret.RPCClient(transport, leveret.Target("t"), timeout=1e-6)
    with pytest.raises(leveret.MessagingTimeout) as caught:
        client.call("m")

    assert "no connection attempt has finished yet" in str(caught.value)


def test_connect_refused_login_raises(
    amqp_url: str, make_transport: Callable[[str], leveret.Transport]
) -> None:
    transport = make_transport(f"amqp://guest:{SECRET}@127.0.0.1:{_port(amqp_url)}/")
    started = time.monotonic()
    with pytest.raises(leveret.AccessRefused) as caught:
        transport.connect(timeout=30)
    elapsed = time.monotonic() - started

    assert elapsed < 10, f"connect raised after {elapsed:.2f} s, not at once"
    assert "ACCESS_REFUSED" in str(caught.value)
    last_error = _supervisor(transport).last_error
    assert last_error is not None
    assert "ACCESS_REFUSED" in str(last_error)
    for text in _exception_texts(caught.value):
        assert SECRET not in text
    for text in _exception_texts(last_error):
        assert SECRET not in text


def test_missing_virtual_host_raises_access_refused(
    amqp_url: str, make_transport: Callable[[str], leveret.Transport]
) -> None:
    transport = make_transport(f"amqp://guest:guest@127.0.0.1:{_port(amqp_url)}/nope")
    client = leveret.RPCClient(transport, leveret.Target(new_topic()), timeout=30)
    started = time.monotonic()

    with pytest.raises(leveret.AccessRefused) as caught:
        client.cast("ping")

    assert time.monotonic() - started < 10
    assert "NOT_ALLOWED" in str(caught.value)


def test_refused_broker_then_good_one_connects(
    amqp_url: str, make_transport: Callable[[str], leveret.Transport]
) -> None:
    port = _port(amqp_url)
    url = f"amqp://guest:{SECRET}@127.0.0.1:{port},guest:guest@127.0.0.1:{port}/"
    transport = make_transport(url)

    assert _call_ping(transport) == "pong"


def test_server_start_raises_access_refused(
    amqp_url: str, make_transport: Callable[[str], leveret.Transport]
) -> None:
    transport = make_transport(f"amqp://guest:{SECRET}@127.0.0.1:{_port(amqp_url)}/")
    server = leveret.RPCServer(transport, leveret.Target(new_topic()), [Service()])

    with pytest.raises(leveret.AccessRefused):
        server.start()


def test_notifier_raises_access_refused_without_retrying(
    amqp_url: str, make_transport: Callable[[str], leveret.Transport]
) -> None:
    transport = make_transport(f"amqp://guest:{SECRET}@127.0.0.1:{_port(amqp_url)}/")
    notifier = leveret.Notifier(transport, "pub", [new_topic()])
    started = time.monotonic()

    with pytest.raises(leveret.AccessRefused):
        notifier.info("compute.start", {})

    assert time.monotonic() - started < 10


def _add_user_without_permissions(state_dir: Any, user: str, password: str) -> None:
    """Add a user who may open the virtual host "/" and do nothing there."""
    run_rabbitmqctl(state_dir, "add_user", user, password)
    run_rabbitmqctl(state_dir, "set_permissions", "-p", "/", user, "", "", "")


def test_missing_permission_raises_access_refused(
    own_broker: Any, make_transport: Callable[[str], leveret.Transport]
) -> None:
    _add_user_without_permissions(own_broker.state_dir, "carol", SECRET)
    url = f"amqp://carol:{SECRET}@127.0.0.1:{own_broker.port}/"
    transport = make_transport(url)
    topic = new_topic()
    client = leveret.RPCClient(transport, leveret.Target(topic), timeout=30)
    started = time.monotonic()

    with pytest.raises(leveret.AccessRefused) as caught:
        client.cast("ping")
    with pytest.raises(leveret.AccessRefused):
        leveret.RPCServer(transport, leveret.Target(topic), [Service()]).start()

    assert time.monotonic() - started < 10
    assert "403" in str(caught.value)
    assert "permissions" in str(caught.value)
    assert SECRET not in str(caught.value)
