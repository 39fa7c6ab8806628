"""Losing the broker: calls fail by their deadline, and serving resumes.

These tests stop and start a broker of their own (``own_broker``). The broker
comes back on the same port but empty, so leveret must declare its queues,
exchanges and bindings again.
"""

from __future__ import annotations

import concurrent.futures
import gc
import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from broker_api import (
    WAIT_SECONDS,
    AsyncApi,
    SyncApi,
    new_topic,
    run_rabbitmqctl,
    wait_until,
)

import leveret

# Seconds a test allows for the supervisor to reconnect once the broker is
# back: its backoff between attempts grows to at most 10 s.
RECONNECT_SECONDS = 60.0
# Seconds past a call's timeout by which it must have raised.
DEADLINE_MARGIN = 5.0


class Service:
    def __init__(self, name: str = "server-1") -> None:
        self.name = name
        self.received: list[Any] = []
        self.started = threading.Event()

    def whoami(self) -> str:
        return self.name

    def record(self, value: Any) -> None:
        self.received.append(value)

    def slow(self, seconds: float) -> str:
        self.started.set()
        time.sleep(seconds)
        return "done"


def _supervisor(transport: leveret.Transport):  # type: ignore[no-untyped-def]
    return transport._supervisor  # type: ignore[attr-defined]


def _call_until_answered(client: leveret.RPCClient, method: str) -> Any:
    """Call *method* until a call succeeds; fail after RECONNECT_SECONDS."""
    deadline = time.monotonic() + RECONNECT_SECONDS
    while True:
        try:
            return client.call(method)
        except (
            leveret.MessagingTimeout,
            leveret.ConnectionLost,
            leveret.NoServerError,
        ):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _raises_by_deadline(call: Callable[[], Any], timeout: float) -> BaseException:
    """Run *call*; return what it raised, failing if it did not raise in time."""
    started = time.monotonic()
    with pytest.raises((leveret.MessagingTimeout, leveret.ConnectionLost)) as caught:
        call()
    elapsed = time.monotonic() - started
    assert elapsed < timeout + DEADLINE_MARGIN, (
        f"raised after {elapsed:.1f} s, past the {timeout:g} s timeout"
    )
    return caught.value


def test_serving_resumes_after_restart(
    own_broker: Any, make_transport: Callable[[str], leveret.Transport]
) -> None:
    topic = new_topic()
    server_transport = make_transport(own_broker.url)
    client_transport = make_transport(own_broker.url)
    service = Service()
    server = leveret.RPCServer(
        server_transport, leveret.Target(topic, server="server-1"), [service]
    )
    server.start()
    client = leveret.RPCClient(client_transport, leveret.Target(topic), timeout=2)
    assert client.call("whoami") == "server-1"

    port = own_broker.port
    own_broker.stop()
    own_broker.start(port=port)

    assert _call_until_answered(client, "whoami") == "server-1"
    targeted = client.prepare(server="server-1", timeout=10)
    assert targeted.call("whoami") == "server-1"
    client.prepare(fanout=True).cast("record", value="after restart")
    assert wait_until(lambda: service.received == ["after restart"])
    assert _supervisor(server_transport).connections_opened == 2
    assert _supervisor(client_transport).connections_opened == 2
    server.stop()


def test_call_while_broker_down_fails(
    own_broker: Any, make_transport: Callable[[str], leveret.Transport]
) -> None:
    topic = new_topic()
    transport = make_transport(own_broker.url)
    sync_api = SyncApi(transport)
    async_api = AsyncApi(transport)
    try:
        sync_api.serve(topic, [Service()])
        sync_client = sync_api.client(topic, timeout=2)
        async_client = async_api.client(topic, timeout=2)
        assert sync_api.call(sync_client, "whoami") == "server-1"
        assert async_api.call(async_client, "whoami") == "server-1"

        own_broker.stop()

        _raises_by_deadline(lambda: sync_api.call(sync_client, "whoami"), 2)
        _raises_by_deadline(lambda: async_api.call(async_client, "whoami"), 2)
    finally:
        async_api.close()
        sync_api.close()


def test_call_in_flight_fails_by_deadline(
    own_broker: Any, make_transport: Callable[[str], leveret.Transport]
) -> None:
    topic = new_topic()
    server_transport = make_transport(own_broker.url)
    client_transport = make_transport(own_broker.url)
    service = Service()
    api = SyncApi(server_transport)
    api.serve(topic, [service])
    client = leveret.RPCClient(client_transport, leveret.Target(topic), timeout=6)

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        future = pool.submit(
            _raises_by_deadline, lambda: client.call("slow", seconds=4), 6
        )
        assert service.started.wait(10), "the slow call never reached the server"
        own_broker.stop()
        error = future.result(timeout=30)

    assert isinstance(error, leveret.MessagingTimeout | leveret.ConnectionLost)
    api.close()


def test_failed_attempts_logged_at_warning(
    caplog: pytest.LogCaptureFixture,
    closed_port: int,
    make_transport: Callable[[str], leveret.Transport],
) -> None:
    caplog.set_level(logging.INFO, logger="leveret")
    secret = "Kx9-reconnect-Secret"
    transport = make_transport(f"amqp://guest:{secret}@127.0.0.1:{closed_port}/")
    client = leveret.RPCClient(transport, leveret.Target(new_topic()), timeout=3)

    with pytest.raises(leveret.MessagingTimeout):
        client.call("whoami")

    failed = [r for r in caplog.records if "connection.failed" in r.getMessage()]
    assert len(failed) >= 2, "fewer than two failed attempts were logged in 3 s"
    for number, record in enumerate(failed, start=1):
        message = record.getMessage()
        assert record.levelno == logging.WARNING, message
        assert f"attempt={number} " in message, message
        assert f"guest:***@127.0.0.1:{closed_port}" in message, message
        assert secret not in message
        assert re.search(r"error=\S+", message), message
        assert "Connect" in message, f"the error is missing: {message}"


def test_restart_logs_each_attempt(
    caplog: pytest.LogCaptureFixture,
    own_broker: Any,
    make_transport: Callable[[str], leveret.Transport],
) -> None:
    caplog.set_level(logging.INFO, logger="leveret")
    transport = make_transport(own_broker.url)
    topic = new_topic()
    target = leveret.Target(topic, server="s1")
    with leveret.RPCServer(transport, target, [Service("s1")]):
        port = own_broker.port
        own_broker.stop()
        assert wait_until(
            lambda: any("connection.failed" in r.getMessage() for r in caplog.records)
        ), "no failed reconnect attempt was logged while the broker was down"
        own_broker.start(port=port)
        client = leveret.RPCClient(transport, leveret.Target(topic), timeout=2)
        assert _call_until_answered(client, "whoami") == "s1"

    messages = [r.getMessage() for r in caplog.records]
    lost = [m for m in messages if "connection.lost" in m]
    failed = [r for r in caplog.records if "connection.failed" in r.getMessage()]
    assert len(lost) == 1, messages
    assert f"127.0.0.1:{port}" in lost[0]
    numbers = [
        int(re.search(r"attempt=(\d+)", r.getMessage()).group(1))  # type: ignore[union-attr]
        for r in failed
    ]
    assert numbers == list(range(1, len(numbers) + 1))
    for record in failed:
        assert record.levelno == logging.WARNING
        assert f"guest:***@127.0.0.1:{port}" in record.getMessage()


def test_close_while_broker_down_fails_calls_quietly(
    own_broker: Any,
    make_transport: Callable[[str], leveret.Transport],
    caplog: pytest.LogCaptureFixture,
) -> None:
    topic = new_topic()
    transport = make_transport(own_broker.url)
    client = leveret.RPCClient(transport, leveret.Target(topic), timeout=30)
    with pytest.raises(leveret.NoServerError):
        client.call("whoami")  # the reply queue now exists
    own_broker.stop()
    caplog.set_level(logging.ERROR, logger="asyncio")

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        pending = [pool.submit(client.call, "whoami") for _ in range(3)]
        time.sleep(1)
        closed_at = time.monotonic()
        transport.close()
        for future in pending:
            with pytest.raises(leveret.TransportError):
                future.result(DEADLINE_MARGIN)
    assert time.monotonic() - closed_at < DEADLINE_MARGIN

    # asyncio logs an unread future's error when the future is collected,
    # and the calls' tracebacks keep theirs alive until dropped.
    del pending, future
    gc.collect()
    never_retrieved = [r for r in caplog.records if "never retrieved" in r.getMessage()]
    assert never_retrieved == []


class Queued:
    """A plain method that blocks until released. With one worker, later
    requests wait in the server's process."""

    def __init__(self) -> None:
        self.started: list[int] = []
        self.finished: list[int] = []
        self.release = threading.Event()

    def work(self, number: int) -> None:
        self.started.append(number)
        self.release.wait(WAIT_SECONDS)
        self.finished.append(number)


def test_ack_after_keeps_backlog_after_drop(
    caplog: pytest.LogCaptureFixture,
    own_broker: Any,
    make_transport: Callable[[str], leveret.Transport],
) -> None:
    caplog.set_level(logging.INFO, logger="leveret")
    topic = new_topic()
    first = Queued()
    server = leveret.RPCServer(
        make_transport(own_broker.url),
        leveret.Target(topic, server="s1"),
        [first],
        max_workers=1,
        grace_period=0.2,
        ack_policy="after",
    )
    server.start()
    client = leveret.RPCClient(make_transport(own_broker.url), leveret.Target(topic))
    try:
        for number in range(5):
            client.cast("work", number=number)
        assert wait_until(lambda: first.started == [0])
        run_rabbitmqctl(own_broker.state_dir, "close_all_connections", "test")
        # The broker gives every unacknowledged request back to the same
        # server once it has reconnected: five copies of requests it holds.
        assert wait_until(
            lambda: len(_records(caplog, "request.duplicate")) == 5,
            RECONNECT_SECONDS,
        )
        server.stop()
    finally:
        first.release.set()

    # What the first server did not finish goes back to the queue, so the
    # next server of the topic runs it.
    second = Queued()
    second.release.set()
    with leveret.RPCServer(
        make_transport(own_broker.url), leveret.Target(topic, server="s2"), [second]
    ):
        # 0 may run on both servers: the first finishes it after its stop.
        assert wait_until(lambda: set(second.finished) >= {1, 2, 3, 4})
        assert wait_until(lambda: first.finished == [0])


def _records(caplog: pytest.LogCaptureFixture, prefix: str) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.name == "leveret.server" and record.getMessage().startswith(prefix)
    ]
