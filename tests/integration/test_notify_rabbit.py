"""Notifications on a real RabbitMQ broker: queues that keep notifications,
pools, requeues and their bound, batches, redelivery after a listener dies,
and a notifier that cannot reach its broker.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from broker_api import (
    WAIT_SECONDS,
    new_topic,
    rabbitmqctl,
    run_rabbitmqctl,
    wait_until,
)

import leveret

GRACE_SECONDS = 5.0

MakeTransport = Callable[[str], leveret.Transport]


class Recorder:
    """Record the payloads (and contexts) an ``info`` method receives."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.payloads: list[Any] = []
        self.contexts: list[leveret.RequestContext] = []

    def info(
        self,
        context: leveret.RequestContext,
        publisher_id: str,
        event_type: str,
        payload: Any,
        metadata: dict[str, Any],
    ) -> None:
        with self.lock:
            self.payloads.append(payload)
            self.contexts.append(context)


class Failing:
    """Raise on the first *failures* calls of ``info``, then handle."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0
        self.lock = threading.Lock()

    def info(self, *args: Any) -> None:
        with self.lock:
            self.calls += 1
            if self.calls <= self.failures:
                raise ValueError(f"failure {self.calls}")


@pytest.fixture
def listeners() -> Iterator[list[Any]]:
    """Listeners to stop at teardown, before their transports close."""
    started: list[Any] = []
    yield started
    for listener in started:
        if not listener._service.transport.closed:
            listener.stop()


def listen(
    listeners: list[Any],
    transport: leveret.Transport,
    topic: str,
    endpoints: list[object],
    pool: str | None = None,
    **options: Any,
) -> leveret.NotificationListener:
    options.setdefault("grace_period", GRACE_SECONDS)
    listener = leveret.NotificationListener(
        transport, [leveret.Target(topic)], endpoints, pool, **options
    )
    listener.start()
    listeners.append(listener)
    return listener


def test_kept_before_listener(
    transport: leveret.Transport, listeners: list[Any]
) -> None:
    topic = new_topic("notify-kept")
    context = leveret.RequestContext("u1", "p1", "req-kept")
    leveret.Notifier(transport, "pub.1", [topic], context=context).info("e", "early")
    recorder = Recorder()
    listen(listeners, transport, topic, [recorder])
    assert wait_until(lambda: recorder.payloads == ["early"])
    assert recorder.contexts[0].request_id == "req-kept"
    assert recorder.contexts[0].project_id == "p1"


def test_async_round_trip(transport: leveret.Transport) -> None:
    topic = new_topic("notify-async")

    async def scenario() -> list[Any]:
        recorder = Recorder()
        listener = leveret.AsyncNotificationListener(
            transport, [leveret.Target(topic)], [recorder]
        )
        async with listener:
            await leveret.AsyncNotifier(transport, "pub.a", [topic]).info("e", 1)
            for _ in range(int(WAIT_SECONDS / 0.02)):
                if recorder.payloads:
                    break
                await asyncio.sleep(0.02)
        return recorder.payloads

    assert asyncio.run(scenario()) == [1]


def test_pool_members_share(
    amqp_url: str, make_transport: MakeTransport, listeners: list[Any]
) -> None:
    topic = new_topic("notify-pool")
    pool = new_topic("pool")
    first, second = Recorder(), Recorder()
    listen(listeners, make_transport(amqp_url), topic, [first], pool)
    listen(listeners, make_transport(amqp_url), topic, [second], pool)
    notifier = leveret.Notifier(make_transport(amqp_url), "pub", [topic])
    for n in range(20):
        notifier.info("e", n)
    assert wait_until(lambda: len(first.payloads) + len(second.payloads) == 20)
    assert sorted(first.payloads + second.payloads) == list(range(20))
    assert first.payloads
    assert second.payloads


def test_pools_each_get_all(
    amqp_url: str, make_transport: MakeTransport, listeners: list[Any]
) -> None:
    topic = new_topic("notify-pools")
    recorders = [Recorder(), Recorder(), Recorder()]
    pools = [new_topic("pool-a"), new_topic("pool-b"), None]
    for recorder, pool in zip(recorders, pools, strict=True):
        listen(listeners, make_transport(amqp_url), topic, [recorder], pool)
    notifier = leveret.Notifier(make_transport(amqp_url), "pub", [topic])
    for n in range(3):
        notifier.info("e", n)
    for recorder in recorders:
        assert wait_until(lambda r=recorder: len(r.payloads) == 3)  # type: ignore[misc]
        assert sorted(recorder.payloads) == [0, 1, 2]


def test_error_requeued(transport: leveret.Transport, listeners: list[Any]) -> None:
    topic = new_topic("notify-requeue")
    endpoint = Failing(2)
    listen(listeners, transport, topic, [endpoint])
    leveret.Notifier(transport, "pub", [topic]).info("e", {})
    assert wait_until(lambda: endpoint.calls == 3)


def test_poison_bounded(
    transport: leveret.Transport,
    listeners: list[Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    topic = new_topic("notify-poison")
    endpoint = Failing(1000)
    listener = listen(listeners, transport, topic, [endpoint], max_redeliveries=2)
    notifier = leveret.Notifier(transport, "pub", [topic])
    with caplog.at_level(logging.ERROR, "leveret.notify"):
        notifier.info("poison", "poison")
        assert wait_until(lambda: "notification.dropped" in caplog.text)
    assert endpoint.calls == 3
    listener.stop()
    recorder = Recorder()
    listen(listeners, transport, topic, [recorder])
    notifier.info("next", "next")
    assert wait_until(lambda: recorder.payloads == ["next"])


def test_batch(transport: leveret.Transport) -> None:
    topic = new_topic("notify-batch")
    batches: list[list[Any]] = []

    class Batches:
        def info(self, items: list[dict[str, Any]]) -> None:
            batches.append([item["payload"] for item in items])

    notifier = leveret.Notifier(transport, "pub", [topic])
    for n in range(5):
        notifier.info("e", n)
    listener = leveret.BatchNotificationListener(
        transport, [leveret.Target(topic)], [Batches()], batch_size=3, batch_timeout=0.3
    )
    with listener:
        assert wait_until(lambda: sum(len(batch) for batch in batches) == 5)
    assert batches == [[0, 1, 2], [3, 4]]


def test_killed_listener_redelivers(
    amqp_url: str, make_transport: MakeTransport, listeners: list[Any]
) -> None:
    topic = new_topic("notify-kill")
    entered, release = threading.Event(), threading.Event()

    class Stuck:
        def info(self, *args: Any) -> None:
            entered.set()
            release.wait(WAIT_SECONDS)

    doomed = make_transport(amqp_url)
    leveret.NotificationListener(doomed, [leveret.Target(topic)], [Stuck()]).start()
    leveret.Notifier(doomed, "pub", [topic]).info("e", "in-flight")
    try:
        assert entered.wait(WAIT_SECONDS)
        doomed.close()  # the listener never acknowledged the message
        recorder = Recorder()
        listen(listeners, make_transport(amqp_url), topic, [recorder])
        assert wait_until(lambda: recorder.payloads == ["in-flight"])
    finally:
        release.set()


@pytest.mark.parametrize(
    "options",
    [
        {"retry": 0, "attempt_timeout": 0.5},
        {"retry": 2, "attempt_timeout": 0.3},
        {"retry": None, "timeout": 1.5, "attempt_timeout": 0.5},
    ],
)
def test_unreachable_broker_bounded(
    closed_port: int, make_transport: MakeTransport, options: dict[str, Any]
) -> None:
    transport = make_transport(f"amqp://guest:guest@127.0.0.1:{closed_port}/")
    notifier = leveret.Notifier(transport, "pub", ["unreachable"], **options)
    with pytest.raises(leveret.MessagingTimeout):
        notifier.info("e", {})


def test_unreachable_async(closed_port: int, make_transport: MakeTransport) -> None:
    transport = make_transport(f"amqp://guest:guest@127.0.0.1:{closed_port}/")
    notifier = leveret.AsyncNotifier(transport, "pub", ["unreachable"], retry=1)

    async def send() -> None:
        await notifier.prepare(timeout=1.0).info("e", {})

    with pytest.raises(leveret.MessagingTimeout):
        asyncio.run(send())


class HeldFirst:
    """Counts each notification; the first blocks until released, so that
    later ones wait in the listener's process."""

    def __init__(self) -> None:
        self.handled: list[int] = []
        self.started = threading.Event()
        self.release = threading.Event()

    def info(
        self,
        context: Any,
        publisher_id: Any,
        event_type: str,
        payload: Any,
        metadata: Any,
    ) -> None:
        self.started.set()
        if payload["n"] == 1:
            self.release.wait(WAIT_SECONDS)
        self.handled.append(payload["n"])


def test_held_notifications_skipped_after_drop(
    own_broker: Any, make_transport: Callable[[str], leveret.Transport]
) -> None:
    topic = new_topic()
    transport = make_transport(own_broker.url)
    endpoint = HeldFirst()
    listener = leveret.NotificationListener(
        transport, [leveret.Target(topic)], [endpoint], max_workers=1
    )
    notifier = leveret.Notifier(make_transport(own_broker.url), "test", [topic])
    with listener:
        for number in (1, 2, 3, 4):
            notifier.info("event", {"n": number})
        assert endpoint.started.wait(WAIT_SECONDS)

        def unacknowledged() -> int:
            rows = rabbitmqctl(
                own_broker.state_dir, "list_queues", "name", "messages_unacknowledged"
            )
            counts = {row["name"]: row["messages_unacknowledged"] for row in rows}
            return int(counts.get(f"{topic}.info", 0))

        assert wait_until(lambda: unacknowledged() == 4)
        run_rabbitmqctl(own_broker.state_dir, "close_all_connections", "test")
        # Back on a new connection, the broker hands the listener all four again.
        supervisor = transport._supervisor  # type: ignore[attr-defined]
        assert wait_until(lambda: supervisor.connections_opened == 2, 60)
        assert wait_until(lambda: unacknowledged() == 4)
        endpoint.release.set()
        # 1 was running when the connection dropped, so it runs twice; the
        # copies of 2, 3 and 4 taken before the drop are skipped.
        assert wait_until(lambda: len(endpoint.handled) == 5)
        assert wait_until(lambda: unacknowledged() == 0)
    assert sorted(endpoint.handled) == [1, 1, 2, 3, 4]
