"""Notifications between oslo.messaging 18.x and leveret on one broker.

An oslo ``Notifier`` (``messagingv2`` driver) sends to leveret listeners, and
a leveret ``Notifier`` sends to oslo listeners. Pools and filters must give
both the same result. The oslo side runs with ``amqp_durable_queues = true``
(see conftest.py), so the notification and pool queues that both peers
declare carry the same durable flag.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import oslo_messaging as om
import pytest
from interop_support import WAIT_TIMEOUT, Recorder, new_topic, rabbit_url
from oslo_config import cfg
from oslo_context import context as oslo_context

import leveret

pytestmark = pytest.mark.broker

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{6})?$")
LISTENER_GRACE = 5.0  # seconds a leveret listener's stop() waits at teardown


@pytest.fixture(scope="module")
def oslo_notify_transport(
    oslo_conf: cfg.ConfigOpts, oslo_transport: Any, amqp_url: str
) -> Iterator[Any]:
    """An oslo notification transport on the session's control exchange.

    Depends on ``oslo_transport``, which sets the control exchange and
    declares it first.
    """
    url = om.TransportURL.parse(oslo_conf, rabbit_url(amqp_url))
    transport = om.get_notification_transport(oslo_conf, url=url)
    yield transport
    transport.cleanup()


@pytest.fixture
def start_oslo_listener(
    oslo_notify_transport: Any,
) -> Iterator[Callable[..., Any]]:
    """Start oslo notification listeners; each is stopped at teardown."""
    started: list[Any] = []

    def start(topic: str, endpoints: Sequence[object], pool: str | None = None) -> Any:
        listener = om.get_notification_listener(
            oslo_notify_transport,
            [om.Target(topic=topic)],
            list(endpoints),
            pool=pool,
        )
        listener.start()
        started.append(listener)
        return listener

    yield start
    for listener in started:
        listener.stop()
    for listener in started:
        listener.wait()


@pytest.fixture
def start_leveret_listener(
    leveret_transport: Any,
) -> Iterator[Callable[..., leveret.NotificationListener]]:
    """Start leveret notification listeners; each is stopped at teardown."""
    started: list[leveret.NotificationListener] = []

    def start(
        topic: str, endpoints: Sequence[object], pool: str | None = None
    ) -> leveret.NotificationListener:
        listener = leveret.NotificationListener(
            leveret_transport,
            [leveret.Target(topic)],
            endpoints,
            pool,
            grace_period=LISTENER_GRACE,
        )
        listener.start()
        started.append(listener)
        return listener

    yield start
    for listener in started:
        listener.stop()


def oslo_notifier(transport: Any, topic: str, publisher_id: str = "pub.oslo") -> Any:
    # driver= is required: the default driver list is empty and sends nothing.
    return om.Notifier(
        transport, publisher_id=publisher_id, driver="messagingv2", topics=[topic]
    )


class Seen(Recorder):
    def items(self) -> list[Any]:
        """Return a copy of what was recorded so far."""
        return self.wait_for(lambda items: True, 0)


def wait_until(condition: Callable[[], bool]) -> bool:
    """Poll *condition* until it holds; False after WAIT_TIMEOUT seconds."""
    deadline = time.monotonic() + WAIT_TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


class LeveretEndpoint:
    """Record each notification with leveret's endpoint signature."""

    def __init__(self, recorder: Seen) -> None:
        self.recorder = recorder

    def _record(self, priority: str, args: tuple[Any, ...]) -> None:
        context, publisher_id, event_type, payload, metadata = args
        self.recorder.add(
            {
                "priority": priority,
                "context": context,
                "bound": leveret.get_context(),
                "publisher_id": publisher_id,
                "event_type": event_type,
                "payload": payload,
                "metadata": metadata,
            }
        )

    def info(self, *args: Any) -> None:
        self._record("info", args)

    def warn(self, *args: Any) -> None:
        self._record("warn", args)


class OsloEndpoint:
    """Record each notification with oslo's endpoint signature."""

    def __init__(self, recorder: Seen) -> None:
        self.recorder = recorder

    def info(
        self,
        ctxt: dict[str, Any],
        publisher_id: str,
        event_type: str,
        payload: Any,
        metadata: dict[str, Any],
    ) -> None:
        self.recorder.add(
            {
                "ctxt": ctxt,
                "publisher_id": publisher_id,
                "event_type": event_type,
                "payload": payload,
                "metadata": metadata,
            }
        )


# oslo notifier to leveret listener.


def test_oslo_to_leveret_fields(
    oslo_notify_transport: Any, start_leveret_listener: Callable[..., Any]
) -> None:
    topic = new_topic("notify-o2l")
    recorder = Seen()
    start_leveret_listener(topic, [LeveretEndpoint(recorder)])
    context = oslo_context.RequestContext(
        user_id="u9",
        project_id="p9",
        request_id="req-abc",
        auth_token="SECRET",
        roles=["reader"],
    )
    payload = {"k": 2, "text": "Grüße 🐇", "nested": {"list": [1, None, True]}}
    oslo_notifier(oslo_notify_transport, topic).warn(context, "demo.warned", payload)

    items = recorder.wait_for(lambda items: len(items) == 1)
    assert len(items) == 1
    item = items[0]
    assert item["priority"] == "warn"
    assert item["publisher_id"] == "pub.oslo"
    assert item["event_type"] == "demo.warned"
    assert item["payload"] == payload
    assert (
        str(uuid.UUID(item["metadata"]["message_id"]))
        == (item["metadata"]["message_id"])
    )
    assert TIMESTAMP.match(item["metadata"]["timestamp"])

    received = item["context"]
    assert isinstance(received, leveret.RequestContext)
    assert received.user_id == "u9"
    assert received.project_id == "p9"
    assert received.request_id == "req-abc"
    assert received.extra["roles"] == ["reader"]
    assert received.extra["auth_token"] is None  # redacted by oslo
    assert item["bound"] == received


def test_oslo_plain_dict_context(
    oslo_notify_transport: Any, start_leveret_listener: Callable[..., Any]
) -> None:
    topic = new_topic("notify-o2l-dict")
    recorder = Seen()
    start_leveret_listener(topic, [LeveretEndpoint(recorder)])
    oslo_notifier(oslo_notify_transport, topic).info({"user": "dropped"}, "e", {"k": 1})
    items = recorder.wait_for(lambda items: len(items) == 1)
    assert len(items) == 1
    assert items[0]["context"].user_id is None  # oslo drops a plain dict context
    assert items[0]["payload"] == {"k": 1}


# leveret notifier to oslo listener.


def test_leveret_to_oslo_fields(
    leveret_transport: Any, start_oslo_listener: Callable[..., Any]
) -> None:
    topic = new_topic("notify-l2o")
    recorder = Seen()
    start_oslo_listener(topic, [OsloEndpoint(recorder)])
    context = leveret.RequestContext(
        "u1", "p1", "req-l2o", roles=["admin"], auth_token="SECRET"
    )
    payload = {"size": 3, "name": "vm-1", "tags": ["a", "b"]}
    notifier = leveret.Notifier(leveret_transport, "compute.host1", [topic])
    with leveret.bind_context(context):
        notifier.info("instance.create.end", payload)
    items = recorder.wait_for(lambda items: len(items) == 1)
    assert len(items) == 1
    item = items[0]
    assert item["publisher_id"] == "compute.host1"
    assert item["event_type"] == "instance.create.end"
    assert item["payload"] == payload
    assert sorted(item["metadata"]) == ["message_id", "timestamp"]
    assert (
        str(uuid.UUID(item["metadata"]["message_id"]))
        == (item["metadata"]["message_id"])
    )
    assert TIMESTAMP.match(item["metadata"]["timestamp"])
    ctxt = item["ctxt"]
    assert ctxt["user_id"] == "u1"
    assert ctxt["project_id"] == "p1"
    assert ctxt["request_id"] == "req-l2o"
    assert ctxt["roles"] == ["admin"]
    assert "auth_token" not in ctxt


def test_leveret_to_oslo_request_context(
    leveret_transport: Any, start_oslo_listener: Callable[..., Any]
) -> None:
    """An oslo service rebuilds an oslo.context object from what leveret sent."""
    topic = new_topic("notify-l2o-ctx")
    recorder = Seen()
    start_oslo_listener(topic, [OsloEndpoint(recorder)])
    context = leveret.RequestContext("u2", "p2", "req-ctx", is_admin=True)
    leveret.Notifier(leveret_transport, "pub", [topic], context=context).info("e", {})
    items = recorder.wait_for(lambda items: len(items) == 1)
    assert len(items) == 1
    rebuilt = oslo_context.RequestContext.from_dict(items[0]["ctxt"])
    assert rebuilt.user_id == "u2"
    assert rebuilt.project_id == "p2"
    assert rebuilt.request_id == "req-ctx"
    assert rebuilt.is_admin is True


# Pools.


def test_shared_pool_splits(
    leveret_transport: Any,
    start_oslo_listener: Callable[..., Any],
    start_leveret_listener: Callable[..., Any],
) -> None:
    """An oslo and a leveret listener of one pool share its queue."""
    topic, pool = new_topic("notify-pool"), new_topic("pool")
    oslo_seen, leveret_seen = Seen(), Seen()
    start_oslo_listener(topic, [OsloEndpoint(oslo_seen)], pool)
    start_leveret_listener(topic, [LeveretEndpoint(leveret_seen)], pool)
    notifier = leveret.Notifier(leveret_transport, "pub", [topic])
    for n in range(10):
        notifier.info("e", n)
    assert wait_until(lambda: len(oslo_seen.items()) + len(leveret_seen.items()) == 10)
    from_oslo = [item["payload"] for item in oslo_seen.items()]
    from_leveret = [item["payload"] for item in leveret_seen.items()]
    assert sorted(from_oslo + from_leveret) == list(range(10))
    assert from_oslo
    assert from_leveret


def test_separate_pools_each_get_all(
    oslo_notify_transport: Any,
    start_oslo_listener: Callable[..., Any],
    start_leveret_listener: Callable[..., Any],
) -> None:
    topic = new_topic("notify-pools")
    oslo_seen, leveret_seen = Seen(), Seen()
    start_oslo_listener(topic, [OsloEndpoint(oslo_seen)], new_topic("pool-oslo"))
    start_leveret_listener(
        topic, [LeveretEndpoint(leveret_seen)], new_topic("pool-leveret")
    )
    notifier = oslo_notifier(oslo_notify_transport, topic)
    for n in range(3):
        notifier.info({}, "e", n)
    for recorder in (oslo_seen, leveret_seen):
        items = recorder.wait_for(lambda items: len(items) == 3)
        assert sorted(item["payload"] for item in items) == [0, 1, 2]


# Filters.


FILTER_CASES = [
    ("compute.start", "compute.host1", {"state": "active"}),
    ("compute.stop", "compute.host2", {"state": "stopped"}),
    ("network.start", "compute.host1", {"state": "active"}),
    ("compute.start", "network.host1", {"state": "active"}),
    ("compute.start", "compute.host3", {"state": 1}),
]
FILTER_RULE = {
    "event_type": r"^compute\.",
    "publisher_id": "^compute",
    "payload": {"state": "^active$"},
}


def test_filters_agree(
    leveret_transport: Any,
    start_oslo_listener: Callable[..., Any],
    start_leveret_listener: Callable[..., Any],
) -> None:
    """The same rule selects the same notifications in oslo and in leveret."""
    topic = new_topic("notify-filter")

    class OsloFiltered(OsloEndpoint):
        filter_rule = om.NotificationFilter(**FILTER_RULE)

    class LeveretFiltered(LeveretEndpoint):
        filter_rule = leveret.NotificationFilter(**FILTER_RULE)

    oslo_seen, oslo_all = Seen(), Seen()
    leveret_seen, leveret_all = Seen(), Seen()
    start_oslo_listener(
        topic,
        [OsloFiltered(oslo_seen), OsloEndpoint(oslo_all)],
        new_topic("pool-oslo"),
    )
    start_leveret_listener(
        topic,
        [LeveretFiltered(leveret_seen), LeveretEndpoint(leveret_all)],
        new_topic("pool-leveret"),
    )
    for n, (event_type, publisher_id, payload) in enumerate(FILTER_CASES):
        notifier = leveret.Notifier(leveret_transport, publisher_id, [topic])
        notifier.info(event_type, {**payload, "n": n})
    for recorder in (oslo_all, leveret_all):
        items = recorder.wait_for(lambda items: len(items) == len(FILTER_CASES))
        assert len(items) == len(FILTER_CASES)
    assert [item["payload"]["n"] for item in oslo_seen.items()] == [0]
    assert [item["payload"]["n"] for item in leveret_seen.items()] == [0]


# Batches.


def test_batch_items_agree(leveret_transport: Any, oslo_notify_transport: Any) -> None:
    """oslo's and leveret's batch listeners get items of the same shape."""
    topic = new_topic("notify-batch")
    oslo_seen, leveret_seen = Seen(), Seen()

    class Batches:
        def __init__(self, recorder: Seen) -> None:
            self.recorder = recorder

        def info(self, items: list[dict[str, Any]]) -> None:
            for item in items:
                self.recorder.add(item)

    oslo_listener = om.get_batch_notification_listener(
        oslo_notify_transport,
        [om.Target(topic=topic)],
        [Batches(oslo_seen)],
        pool=new_topic("pool-oslo"),
        batch_size=2,
        batch_timeout=1,
    )
    leveret_listener = leveret.BatchNotificationListener(
        leveret_transport,
        [leveret.Target(topic)],
        [Batches(leveret_seen)],
        new_topic("pool-leveret"),
        batch_size=2,
        batch_timeout=1.0,
    )
    oslo_listener.start()
    try:
        with leveret_listener:
            notifier = leveret.Notifier(leveret_transport, "pub.b", [topic])
            for n in range(2):
                notifier.info("e.batch", {"n": n})
            oslo_items = oslo_seen.wait_for(lambda items: len(items) == 2)
            leveret_items = leveret_seen.wait_for(lambda items: len(items) == 2)
    finally:
        oslo_listener.stop()
        oslo_listener.wait()
    assert len(oslo_items) == 2
    assert len(leveret_items) == 2
    for oslo_item, leveret_item in zip(oslo_items, leveret_items, strict=True):
        assert sorted(oslo_item) == sorted(leveret_item)
        for key in ("publisher_id", "event_type", "payload", "metadata"):
            assert oslo_item[key] == leveret_item[key], key
