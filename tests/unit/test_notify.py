"""Notifications on the in-process transport: notifiers, listeners, pools,
filters, requeues, batches and retries, through the blocking and the asyncio API.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import uuid
from collections.abc import Callable, Coroutine, Iterator, Sequence
from typing import Any, TypeVar

import pytest
from harness import WAIT_SECONDS, wait_until

import leveret
from leveret._notification_listener import ListenerCore
from leveret.transports.base import IncomingMessage, NotificationAddress
from leveret.transports.memory import MemoryTransport, broker_named

T = TypeVar("T")

TOPIC = "unit-notifications"
GRACE_SECONDS = 10.0
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{6})?$")
PRIORITY_METHODS = {
    "audit": "AUDIT",
    "debug": "DEBUG",
    "info": "INFO",
    "warn": "WARN",
    "warning": "WARN",
    "error": "ERROR",
    "critical": "CRITICAL",
    "sample": "SAMPLE",
}


# Drivers: the same test against the blocking and the asyncio classes.


class SyncDriver:
    """``Notifier`` and ``NotificationListener``, called from the test thread."""

    name = "sync"

    def __init__(self, transport: leveret.Transport) -> None:
        self.transport = transport
        self._listeners: list[Any] = []

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.transport.binding.run_blocking(coro)

    def notifier(
        self,
        publisher_id: str | None = "pub.1",
        topics: Sequence[str] = (TOPIC,),
        **kw: Any,
    ) -> Any:
        return leveret.Notifier(self.transport, publisher_id, topics, **kw)

    def send(
        self,
        notifier: Any,
        method: str,
        event_type: str,
        payload: Any,
        context: leveret.RequestContext | None = None,
    ) -> None:
        with leveret.bind_context(context):
            getattr(notifier, method)(event_type, payload)

    def listen(
        self,
        endpoints: Sequence[object],
        *,
        topics: Sequence[str] = (TOPIC,),
        pool: str | None = None,
        batch: bool = False,
        **kw: Any,
    ) -> Any:
        kw.setdefault("grace_period", GRACE_SECONDS)
        targets = [leveret.Target(topic) for topic in topics]
        kind = (
            leveret.BatchNotificationListener if batch else leveret.NotificationListener
        )
        listener = kind(self.transport, targets, endpoints, pool, **kw)
        listener.start()
        self._listeners.append(listener)
        return listener

    def stop(self, listener: Any) -> None:
        listener.stop()

    def close(self) -> None:
        if not self.transport.closed:
            for listener in self._listeners:
                listener.stop()
        self.transport.close()


async def _cancel_other_tasks() -> None:
    current = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks() if task is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class AsyncDriver:
    """``AsyncNotifier`` and ``AsyncNotificationListener``, awaited on an
    application event loop in a thread of its own, which the transport binds to."""

    name = "async"

    def __init__(self, transport: leveret.Transport) -> None:
        self.transport = transport
        self._listeners: list[Any] = []
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="unit-app-loop", daemon=True
        )
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(WAIT_SECONDS * 3)

    def notifier(
        self,
        publisher_id: str | None = "pub.1",
        topics: Sequence[str] = (TOPIC,),
        **kw: Any,
    ) -> Any:
        return leveret.AsyncNotifier(self.transport, publisher_id, topics, **kw)

    async def _send(
        self,
        notifier: Any,
        method: str,
        event_type: str,
        payload: Any,
        context: leveret.RequestContext | None,
    ) -> None:
        with leveret.bind_context(context):
            await getattr(notifier, method)(event_type, payload)

    def send(
        self,
        notifier: Any,
        method: str,
        event_type: str,
        payload: Any,
        context: leveret.RequestContext | None = None,
    ) -> None:
        self.run(self._send(notifier, method, event_type, payload, context))

    def listen(
        self,
        endpoints: Sequence[object],
        *,
        topics: Sequence[str] = (TOPIC,),
        pool: str | None = None,
        batch: bool = False,
        **kw: Any,
    ) -> Any:
        kw.setdefault("grace_period", GRACE_SECONDS)
        targets = [leveret.Target(topic) for topic in topics]
        kind = (
            leveret.AsyncBatchNotificationListener
            if batch
            else leveret.AsyncNotificationListener
        )
        listener = kind(self.transport, targets, endpoints, pool, **kw)
        self.run(listener.start())
        self._listeners.append(listener)
        return listener

    def stop(self, listener: Any) -> None:
        self.run(listener.stop())

    def close(self) -> None:
        if not self.transport.closed:
            for listener in self._listeners:
                self.run(listener.stop())
            self.run(self.transport.aclose())
        # Finish what a test left running, so that no pending task is
        # destroyed with the loop and reported during a later test.
        self.run(_cancel_other_tasks())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(WAIT_SECONDS)
        while tasks := asyncio.all_tasks(self.loop):
            for task in tasks:
                task.cancel()
            self.loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        self.loop.close()
        self.transport.close()


Driver = SyncDriver | AsyncDriver


@pytest.fixture(params=["sync", "async"])
def api(request: pytest.FixtureRequest, url: str) -> Iterator[Driver]:
    transport = leveret.get_transport(url)
    driver: Driver = (
        SyncDriver(transport) if request.param == "sync" else AsyncDriver(transport)
    )
    yield driver
    driver.close()


@pytest.fixture
def sync_api(url: str) -> Iterator[SyncDriver]:
    driver = SyncDriver(leveret.get_transport(url))
    yield driver
    driver.close()


# Endpoints.


class Recorder:
    """Record every call of every priority method, with the bound context."""

    def __init__(self, result: Any = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.result = result

    def _record(self, priority: str, args: tuple[Any, ...]) -> Any:
        context, publisher_id, event_type, payload, metadata = args
        with self.lock:
            self.calls.append(
                {
                    "priority": priority,
                    "context": context,
                    "publisher_id": publisher_id,
                    "event_type": event_type,
                    "payload": payload,
                    "metadata": metadata,
                    "bound": leveret.get_context(),
                    "thread": threading.current_thread().name,
                }
            )
        return self.result

    def audit(self, *args: Any) -> Any:
        return self._record("audit", args)

    def debug(self, *args: Any) -> Any:
        return self._record("debug", args)

    def info(self, *args: Any) -> Any:
        return self._record("info", args)

    def warn(self, *args: Any) -> Any:
        return self._record("warn", args)

    def error(self, *args: Any) -> Any:
        return self._record("error", args)

    def critical(self, *args: Any) -> Any:
        return self._record("critical", args)

    def sample(self, *args: Any) -> Any:
        return self._record("sample", args)

    def wait_for(self, count: int) -> bool:
        return wait_until(lambda: len(self.calls) >= count)


class InfoOnly:
    def __init__(self) -> None:
        self.payloads: list[Any] = []

    def info(
        self,
        context: Any,
        publisher_id: Any,
        event_type: Any,
        payload: Any,
        metadata: Any,
    ) -> None:
        self.payloads.append(payload)


class AsyncInfo:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, Any, str]] = []

    async def info(
        self,
        context: Any,
        publisher_id: Any,
        event_type: Any,
        payload: Any,
        metadata: Any,
    ) -> None:
        await asyncio.sleep(0)
        self.calls.append(
            (context, leveret.get_context(), threading.current_thread().name)
        )


class Failing:
    """Raise (or return *result*) the first *failures* times, then handle."""

    def __init__(self, failures: int, result: Any = None) -> None:
        self.failures = failures
        self.result = result
        self.calls = 0
        self.lock = threading.Lock()

    def info(
        self,
        context: Any,
        publisher_id: Any,
        event_type: Any,
        payload: Any,
        metadata: Any,
    ) -> Any:
        with self.lock:
            self.calls += 1
            failing = self.calls <= self.failures
        if not failing:
            return None
        if self.result is not None:
            return self.result
        raise ValueError(f"failure {self.calls}")


class Raw:
    """Collect raw message bodies from notification queues."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, message: IncomingMessage) -> None:
        outer = json.loads(message.body)
        self.bodies.append(
            {"outer": outer, "message": json.loads(outer["oslo.message"])}
        )


def listen_raw(api: Driver, priority: str = "info", topic: str = TOPIC) -> Raw:
    raw = Raw()
    address = NotificationAddress(api.transport.default_exchange, topic, priority)
    api.run(
        api.transport.listen_notifications(
            [address], raw, pool=f"raw-{uuid.uuid4()}", prefetch=10
        )
    )
    return raw


def send_raw(
    api: Driver, message: dict[str, Any] | bytes, priority: str = "info"
) -> None:
    """Publish a hand-made body to ``TOPIC.priority``."""
    body = (
        message
        if isinstance(message, bytes)
        else json.dumps(
            {"oslo.version": "2.0", "oslo.message": json.dumps(message)}
        ).encode()
    )
    address = NotificationAddress(api.transport.default_exchange, TOPIC, priority)
    api.run(api.transport.send_notification(address, body, retry=None))


def raw_notification(priority: str = "INFO", **fields: Any) -> dict[str, Any]:
    message = {
        "message_id": str(uuid.uuid4()),
        "publisher_id": "pub.raw",
        "event_type": "raw.event",
        "priority": priority,
        "payload": {"k": 1},
        "timestamp": "2026-12-04 15:25:31.502854",
        "_unique_id": uuid.uuid4().hex,
    }
    message.update(fields)
    return message


# Wire format.


def test_wire_fields(api: Driver) -> None:
    raw = listen_raw(api)
    api.send(api.notifier("compute.host1"), "info", "instance.create.end", {"id": 7})
    assert wait_until(lambda: len(raw.bodies) == 1)
    outer, message = raw.bodies[0]["outer"], raw.bodies[0]["message"]
    assert outer["oslo.version"] == "2.0"
    assert str(uuid.UUID(message["message_id"])) == message["message_id"]
    assert message["publisher_id"] == "compute.host1"
    assert message["event_type"] == "instance.create.end"
    assert message["priority"] == "INFO"
    assert message["payload"] == {"id": 7}
    assert TIMESTAMP.match(message["timestamp"])
    assert re.fullmatch(r"[0-9a-f]{32}", message["_unique_id"])


def test_wire_field_order(api: Driver) -> None:
    raw = listen_raw(api)
    api.send(api.notifier(), "info", "e", {})
    assert wait_until(lambda: len(raw.bodies) == 1)
    assert list(raw.bodies[0]["message"]) == [
        "message_id",
        "publisher_id",
        "event_type",
        "priority",
        "payload",
        "timestamp",
        "_unique_id",
    ]


@pytest.mark.parametrize("method", sorted(PRIORITY_METHODS))
def test_priority_methods(api: Driver, method: str) -> None:
    wire = PRIORITY_METHODS[method]
    raw = listen_raw(api, priority=wire.lower())
    api.send(api.notifier(), method, "e", {})
    assert wait_until(lambda: len(raw.bodies) == 1)
    assert raw.bodies[0]["message"]["priority"] == wire


def test_publisher_id_none(api: Driver) -> None:
    raw = listen_raw(api)
    api.send(api.notifier(None), "info", "e", {})
    assert wait_until(lambda: len(raw.bodies) == 1)
    assert raw.bodies[0]["message"]["publisher_id"] is None


def test_kept_before_listener(api: Driver) -> None:
    api.send(api.notifier(), "info", "early", {"n": 1})
    recorder = Recorder()
    api.listen([recorder])
    assert recorder.wait_for(1)
    assert recorder.calls[0]["event_type"] == "early"


def test_each_topic_gets_copy(api: Driver) -> None:
    first = listen_raw(api, topic="t1")
    second = listen_raw(api, topic="t2")
    api.send(api.notifier(topics=["t1", "t2"]), "info", "e", {})
    assert wait_until(lambda: len(first.bodies) == 1)
    assert wait_until(lambda: len(second.bodies) == 1)
    one, two = first.bodies[0]["message"], second.bodies[0]["message"]
    assert one["message_id"] == two["message_id"]
    assert one["_unique_id"] != two["_unique_id"]


def test_unencodable_payload(api: Driver) -> None:
    with pytest.raises(leveret.SerializationError):
        api.send(api.notifier(), "info", "e", {"bad": object()})


def test_too_large(api: Driver) -> None:
    notifier = api.notifier(max_message_bytes=100)
    with pytest.raises(leveret.MessageTooLarge):
        api.send(notifier, "info", "e", "x" * 200)


@pytest.mark.parametrize(
    "options",
    [
        {"topics": "notifications"},
        {"topics": []},
        {"topics": [""]},
        {"retry": -2},
        {"retry": 1.5},
        {"timeout": 0},
        {"timeout": float("inf")},
        {"attempt_timeout": -1},
        {"attempt_timeout": float("inf")},
        {"publisher_id": 5},
        {"context": 5},
        {"context": {1: 2}},
        {"max_message_bytes": 0},
        {"max_message_bytes": "4"},
    ],
)
def test_notifier_rejects(api: Driver, options: dict[str, Any]) -> None:
    with pytest.raises(leveret.ConfigurationError):
        api.notifier(**options)


def test_empty_event_type(api: Driver) -> None:
    with pytest.raises(leveret.ConfigurationError):
        api.send(api.notifier(), "info", "", {})


# Context.


def test_bound_context_sent(api: Driver) -> None:
    raw = listen_raw(api)
    context = leveret.RequestContext("u1", "p1", "req-1", roles=["admin"])
    api.send(api.notifier(), "info", "e", {}, context=context)
    assert wait_until(lambda: len(raw.bodies) == 1)
    message = raw.bodies[0]["message"]
    assert message["_context_user_id"] == "u1"
    assert message["_context_project_id"] == "p1"
    assert message["_context_request_id"] == "req-1"
    assert message["_context_roles"] == ["admin"]


def test_dict_context_sent(api: Driver) -> None:
    raw = listen_raw(api)
    notifier = api.notifier(context={"user": "u2", "tenant": "p2"})
    api.send(notifier, "info", "e", {})
    assert wait_until(lambda: len(raw.bodies) == 1)
    message = raw.bodies[0]["message"]
    assert message["_context_user_id"] == "u2"
    assert message["_context_project_id"] == "p2"


def test_no_context_no_fields(api: Driver) -> None:
    raw = listen_raw(api)
    api.send(api.notifier(), "info", "e", {})
    assert wait_until(lambda: len(raw.bodies) == 1)
    assert [k for k in raw.bodies[0]["message"] if k.startswith("_context_")] == []


def test_prepare_context_wins(api: Driver) -> None:
    raw = listen_raw(api)
    notifier = api.notifier().prepare(context=leveret.RequestContext("given"))
    api.send(notifier, "info", "e", {}, context=leveret.RequestContext("bound"))
    assert wait_until(lambda: len(raw.bodies) == 1)
    assert raw.bodies[0]["message"]["_context_user_id"] == "given"


SECRETS = {
    "auth_token": "t0ken",
    "password": "pw",
    "service_token": "st",
    "auth_token_info": {"token": "x"},
    "custom": "c",
}


def test_secrets_dropped(api: Driver) -> None:
    raw = listen_raw(api)
    context = leveret.RequestContext("u1", "p1", is_admin=True, **SECRETS)
    api.send(api.notifier(), "info", "e", {}, context=context)
    assert wait_until(lambda: len(raw.bodies) == 1)
    message = raw.bodies[0]["message"]
    for key in SECRETS:
        assert f"_context_{key}" not in message, key
    assert message["_context_is_admin"] is True


def test_include_secrets(api: Driver) -> None:
    raw = listen_raw(api)
    context = leveret.RequestContext("u1", **SECRETS)
    api.send(api.notifier(include_secrets=True), "info", "e", {}, context=context)
    assert wait_until(lambda: len(raw.bodies) == 1)
    message = raw.bodies[0]["message"]
    for key, value in SECRETS.items():
        assert message[f"_context_{key}"] == value, key


# prepare.


def test_prepare_overrides(api: Driver) -> None:
    raw = listen_raw(api, topic="other")
    notifier = api.notifier("pub.a")
    prepared = notifier.prepare(publisher_id="pub.b", topics=["other"], retry=2)
    api.send(prepared, "info", "e", {})
    assert wait_until(lambda: len(raw.bodies) == 1)
    assert raw.bodies[0]["message"]["publisher_id"] == "pub.b"
    assert prepared.retry == 2
    assert notifier.publisher_id == "pub.a"
    assert notifier.topics == (TOPIC,)
    assert notifier.retry is None


# Retry.


class FlakyTransport(MemoryTransport):
    """Fail the first *failures* notification sends, or hang on every one."""

    def __init__(self, name: str, failures: int = 0, hang: bool = False) -> None:
        super().__init__(broker_named(name))
        self.failures = failures
        self.hang = hang
        self.attempts = 0

    async def send_notification(
        self, address: NotificationAddress, body: bytes, *, retry: int | None
    ) -> None:
        self.attempts += 1
        if self.hang:
            await asyncio.Event().wait()
        if self.attempts <= self.failures:
            raise leveret.ConnectionLost(f"simulated failure {self.attempts}")
        await super().send_notification(address, body, retry=retry)


@pytest.fixture
def flaky(url: str) -> Iterator[Callable[..., SyncDriver]]:
    drivers: list[SyncDriver] = []

    def make(**options: Any) -> SyncDriver:
        driver = SyncDriver(FlakyTransport(url.split("://")[1], **options))
        drivers.append(driver)
        return driver

    yield make
    for driver in drivers:
        driver.close()


def test_retry_zero_raises(flaky: Callable[..., SyncDriver]) -> None:
    driver = flaky(failures=1)
    with pytest.raises(leveret.ConnectionLost):
        driver.send(driver.notifier(retry=0), "info", "e", {})
    assert driver.transport.attempts == 1  # type: ignore[attr-defined]


def test_retry_count_succeeds(flaky: Callable[..., SyncDriver]) -> None:
    driver = flaky(failures=2)
    recorder = Recorder()
    driver.listen([recorder])
    driver.send(driver.notifier(retry=2), "info", "e", {})
    assert recorder.wait_for(1)
    assert driver.transport.attempts == 3  # type: ignore[attr-defined]


def test_retry_count_exhausted(flaky: Callable[..., SyncDriver]) -> None:
    driver = flaky(failures=5)
    with pytest.raises(leveret.ConnectionLost):
        driver.send(driver.notifier(retry=1), "info", "e", {})
    assert driver.transport.attempts == 2  # type: ignore[attr-defined]


def test_retry_none_bounded(flaky: Callable[..., SyncDriver]) -> None:
    driver = flaky(failures=1000)
    with pytest.raises(leveret.MessagingTimeout):
        driver.send(driver.notifier(retry=None, timeout=1.0), "info", "e", {})
    assert driver.transport.attempts >= 2  # type: ignore[attr-defined]


def test_attempt_timeout(flaky: Callable[..., SyncDriver]) -> None:
    driver = flaky(hang=True)
    notifier = driver.notifier(retry=1, attempt_timeout=0.1)
    with pytest.raises(leveret.MessagingTimeout):
        driver.send(notifier, "info", "e", {})
    assert driver.transport.attempts == 2  # type: ignore[attr-defined]


def test_closed_transport_raises(api: Driver) -> None:
    notifier = api.notifier()
    api.run(api.transport.aclose())
    with pytest.raises(leveret.TransportClosed):
        api.send(notifier, "info", "e", {})


# Receiving.


def test_endpoint_arguments(api: Driver) -> None:
    recorder = Recorder()
    api.listen([recorder])
    context = leveret.RequestContext("u1", "p1", "req-9", roles=["r"])
    api.send(api.notifier("pub.9"), "info", "ev.9", {"a": [1]}, context=context)
    assert recorder.wait_for(1)
    call = recorder.calls[0]
    assert isinstance(call["context"], leveret.RequestContext)
    assert call["context"].user_id == "u1"
    assert call["context"].project_id == "p1"
    assert call["context"].request_id == "req-9"
    assert call["context"].extra == {"roles": ["r"]}
    assert call["publisher_id"] == "pub.9"
    assert call["event_type"] == "ev.9"
    assert call["payload"] == {"a": [1]}
    assert sorted(call["metadata"]) == ["message_id", "timestamp"]
    assert TIMESTAMP.match(call["metadata"]["timestamp"])


def test_sync_method_in_pool(api: Driver) -> None:
    recorder = Recorder()
    api.listen([recorder])
    context = leveret.RequestContext("u1")
    api.send(api.notifier(), "info", "e", {}, context=context)
    assert recorder.wait_for(1)
    assert recorder.calls[0]["thread"].startswith("leveret-notify")
    assert recorder.calls[0]["bound"] == recorder.calls[0]["context"]


def test_async_method_on_loop(api: Driver) -> None:
    endpoint = AsyncInfo()
    api.listen([endpoint])
    api.send(api.notifier(), "info", "e", {}, context=leveret.RequestContext("u2"))
    assert wait_until(lambda: len(endpoint.calls) == 1)
    received, bound, thread = endpoint.calls[0]
    assert bound == received
    assert received.user_id == "u2"
    assert not thread.startswith("leveret-notify")


def test_context_unbound_after(api: Driver) -> None:
    bound_after: list[Any] = []

    class Probe:
        def info(self, *args: Any) -> None:
            pass

        def warn(self, *args: Any) -> None:
            bound_after.append(leveret.get_context())

    api.listen([Probe()], max_workers=1)
    notifier = api.notifier()
    api.send(notifier, "info", "e", {}, context=leveret.RequestContext("u3"))
    api.send(notifier, "warn", "e", {})
    assert wait_until(lambda: len(bound_after) == 1)
    assert bound_after[0].user_id is None


def test_dispatch_by_message_priority(api: Driver) -> None:
    recorder = Recorder()
    api.listen([recorder])
    send_raw(api, raw_notification("WARN"), priority="info")
    assert recorder.wait_for(1)
    assert recorder.calls[0]["priority"] == "warn"


def test_lower_case_priority(api: Driver) -> None:
    recorder = Recorder()
    api.listen([recorder])
    send_raw(api, raw_notification("error"), priority="error")
    assert recorder.wait_for(1)
    assert recorder.calls[0]["priority"] == "error"


def test_no_method_for_priority(api: Driver) -> None:
    endpoint = InfoOnly()
    api.listen([endpoint])
    send_raw(api, raw_notification("WARN", payload="warned"), priority="info")
    send_raw(api, raw_notification("INFO", payload="next"), priority="info")
    assert wait_until(lambda: endpoint.payloads == ["next"])


def test_unknown_priority_acked(api: Driver, caplog: pytest.LogCaptureFixture) -> None:
    endpoint = InfoOnly()
    api.listen([endpoint])
    with caplog.at_level(logging.WARNING, "leveret.notify"):
        send_raw(api, raw_notification("BOGUS", payload="bogus"))
        send_raw(api, raw_notification("INFO", payload="next"))
        assert wait_until(lambda: endpoint.payloads == ["next"])
    assert "notification.unknown_priority" in caplog.text


def test_malformed_dropped(api: Driver, caplog: pytest.LogCaptureFixture) -> None:
    endpoint = InfoOnly()
    api.listen([endpoint])
    with caplog.at_level(logging.WARNING, "leveret.notify"):
        send_raw(api, b"not json")
        send_raw(api, raw_notification(payload="next"))
        assert wait_until(lambda: endpoint.payloads == ["next"])
    assert "reason=malformed" in caplog.text


def test_bare_message_accepted(api: Driver) -> None:
    endpoint = InfoOnly()
    api.listen([endpoint])
    send_raw(api, json.dumps(raw_notification(payload="v1")).encode())
    assert wait_until(lambda: endpoint.payloads == ["v1"])


def test_every_endpoint_called(api: Driver) -> None:
    order: list[str] = []

    class Named:
        def __init__(self, name: str) -> None:
            self.name = name

        def info(self, *args: Any) -> None:
            order.append(self.name)

    api.listen([Named("a"), Named("b"), Named("c")], max_workers=1)
    api.send(api.notifier(), "info", "e", {})
    assert wait_until(lambda: len(order) == 3)
    assert order == ["a", "b", "c"]


def test_binds_handled_priorities(api: Driver) -> None:
    listener = api.listen([InfoOnly(), AsyncInfo()])
    core: ListenerCore = (
        listener if isinstance(listener, ListenerCore) else listener._service
    )
    assert [address.routing_key for address in core.addresses] == [f"{TOPIC}.info"]


def test_other_priorities_stay_queued(api: Driver) -> None:
    endpoint = InfoOnly()
    api.listen([endpoint])
    notifier = api.notifier()
    api.send(notifier, "error", "e", "kept")
    api.send(notifier, "info", "e", "taken")
    assert wait_until(lambda: endpoint.payloads == ["taken"])
    recorder = Recorder()
    api.listen([recorder])
    assert recorder.wait_for(1)
    assert recorder.calls[0]["payload"] == "kept"


def test_several_topics(api: Driver) -> None:
    recorder = Recorder()
    api.listen([recorder], topics=["a", "b"])
    api.send(api.notifier(topics=["a"]), "info", "e", "from-a")
    api.send(api.notifier(topics=["b"]), "info", "e", "from-b")
    assert recorder.wait_for(2)
    assert sorted(call["payload"] for call in recorder.calls) == ["from-a", "from-b"]


# Pools.


def test_pool_members_share(api: Driver) -> None:
    first, second = Recorder(), Recorder()
    api.listen([first], pool="workers")
    api.listen([second], pool="workers")
    notifier = api.notifier()
    for n in range(10):
        api.send(notifier, "info", "e", n)
    assert wait_until(lambda: len(first.calls) + len(second.calls) == 10)
    payloads = sorted(c["payload"] for c in first.calls + second.calls)
    assert payloads == list(range(10))
    assert first.calls
    assert second.calls


def test_pools_each_get_all(api: Driver) -> None:
    pooled, other, unpooled = Recorder(), Recorder(), Recorder()
    api.listen([pooled], pool="pool-a")
    api.listen([other], pool="pool-b")
    api.listen([unpooled])
    notifier = api.notifier()
    for n in range(3):
        api.send(notifier, "info", "e", n)
    for recorder in (pooled, other, unpooled):
        assert recorder.wait_for(3)
        assert sorted(c["payload"] for c in recorder.calls) == [0, 1, 2]


def test_pool_queue_named_pool(api: Driver) -> None:
    api.listen([InfoOnly()], pool="exact-pool-name")
    transport = api.transport
    assert isinstance(transport, MemoryTransport)
    assert "exact-pool-name" in transport.broker._queues


# Filters.


def call_filter(rule: leveret.NotificationFilter, **fields: Any) -> bool:
    values: dict[str, Any] = {
        "context": {"user_id": "u1", "n": 1},
        "publisher_id": "compute.host1",
        "event_type": "instance.create.end",
        "metadata": {"message_id": "m1", "timestamp": "2026-12-04 15:25:31"},
        "payload": {"state": "active", "size": 3},
    }
    values.update(fields)
    return rule.match(
        values["context"],
        values["publisher_id"],
        values["event_type"],
        values["metadata"],
        values["payload"],
    )


@pytest.mark.parametrize(
    ("rule", "fields", "expected"),
    [
        ({}, {}, True),
        ({"event_type": r"^instance\."}, {}, True),
        ({"event_type": r"create"}, {}, False),  # re.match anchors at the start
        ({"event_type": r"instance"}, {"event_type": None}, False),
        ({"publisher_id": "^compute"}, {}, True),
        ({"publisher_id": "^network"}, {}, False),
        ({"publisher_id": "^compute"}, {"publisher_id": None}, False),
        ({"context": {"user_id": "^u1$"}}, {}, True),
        ({"context": {"user_id": "^u2$"}}, {}, False),
        ({"context": {"missing": ".*"}}, {}, False),
        ({"context": {"n": ".*"}}, {}, False),  # a number is not text
        ({"metadata": {"timestamp": "^2026"}}, {}, True),
        ({"payload": {"state": "^active$"}}, {}, True),
        ({"payload": {"state": "^deleted$"}}, {}, False),
        ({"payload": {"size": "3"}}, {}, False),
        ({"payload": {"state": ".*"}}, {"payload": "text"}, False),
        ({"event_type": "^instance", "publisher_id": "^network"}, {}, False),
    ],
)
def test_filter_semantics(
    rule: dict[str, Any], fields: dict[str, Any], expected: bool
) -> None:
    assert call_filter(leveret.NotificationFilter(**rule), **fields) is expected


@pytest.mark.parametrize(
    "rule", [{"event_type": "("}, {"context": {"k": "["}}, {"payload": ["x"]}]
)
def test_filter_rejects_invalid(rule: dict[str, Any]) -> None:
    with pytest.raises(leveret.ConfigurationError):
        leveret.NotificationFilter(**rule)


def test_filter_on_endpoint(api: Driver) -> None:
    class Computes(Recorder):
        filter_rule = leveret.NotificationFilter(event_type=r"^compute\.")

    filtered, everything = Computes(), Recorder()
    api.listen([filtered, everything])
    notifier = api.notifier()
    api.send(notifier, "info", "compute.start", 1)
    api.send(notifier, "info", "network.start", 2)
    assert everything.wait_for(2)
    assert [c["payload"] for c in filtered.calls] == [1]


def test_filter_on_context(api: Driver) -> None:
    class ProjectOne(Recorder):
        filter_rule = leveret.NotificationFilter(context={"project_id": "^p1$"})

    filtered, everything = ProjectOne(), Recorder()
    api.listen([filtered, everything])
    notifier = api.notifier()
    api.send(notifier, "info", "e", 1, context=leveret.RequestContext("u", "p1"))
    api.send(notifier, "info", "e", 2, context=leveret.RequestContext("u", "p2"))
    assert everything.wait_for(2)
    assert [c["payload"] for c in filtered.calls] == [1]


# Requeue.


def test_requeue_result(api: Driver) -> None:
    endpoint = Failing(1, result=leveret.NotificationResult.REQUEUE)
    api.listen([endpoint])
    api.send(api.notifier(), "info", "e", {})
    assert wait_until(lambda: endpoint.calls == 2)


def test_requeue_string(api: Driver) -> None:
    endpoint = Failing(2, result="requeue")
    api.listen([endpoint])
    api.send(api.notifier(), "info", "e", {})
    assert wait_until(lambda: endpoint.calls == 3)


def test_requeue_stops_later_endpoints(api: Driver) -> None:
    first, later = Failing(1, result="requeue"), Recorder()
    api.listen([first, later], max_workers=1)
    api.send(api.notifier(), "info", "e", {})
    assert later.wait_for(1)
    assert first.calls == 2
    assert len(later.calls) == 1


def test_error_requeued(api: Driver) -> None:
    endpoint = Failing(2)
    api.listen([endpoint])
    api.send(api.notifier(), "info", "e", {})
    assert wait_until(lambda: endpoint.calls == 3)


def test_poison_dropped(api: Driver, caplog: pytest.LogCaptureFixture) -> None:
    endpoint = Failing(1000)
    listener = api.listen([endpoint], max_redeliveries=2)
    notifier = api.notifier()
    with caplog.at_level(logging.WARNING, "leveret.notify"):
        api.send(notifier, "info", "poison", "poison")
        assert wait_until(lambda: "notification.dropped" in caplog.text)
    dropped = [r for r in caplog.records if "notification.dropped" in r.getMessage()]
    assert endpoint.calls == 3
    assert dropped[0].levelno == logging.ERROR
    assert "event_type=poison" in dropped[0].getMessage()
    api.stop(listener)
    after = InfoOnly()
    api.listen([after])
    api.send(notifier, "info", "next", "next")
    assert wait_until(lambda: after.payloads == ["next"])


def test_no_requeue_on_error(api: Driver, caplog: pytest.LogCaptureFixture) -> None:
    endpoint = Failing(1000)
    api.listen([endpoint], requeue_on_error=False)
    with caplog.at_level(logging.ERROR, "leveret.notify"):
        api.send(api.notifier(), "info", "e", {})
        assert wait_until(lambda: "notification.dropped" in caplog.text)
    assert endpoint.calls == 1
    assert "requeue_on_error is False" in caplog.text


def test_requeue_result_without_requeue_on_error(api: Driver) -> None:
    endpoint = Failing(1, result="requeue")
    api.listen([endpoint], requeue_on_error=False)
    api.send(api.notifier(), "info", "e", {})
    assert wait_until(lambda: endpoint.calls == 2)


def test_max_redeliveries_zero(api: Driver, caplog: pytest.LogCaptureFixture) -> None:
    endpoint = Failing(1000)
    api.listen([endpoint], max_redeliveries=0)
    with caplog.at_level(logging.ERROR, "leveret.notify"):
        api.send(api.notifier(), "info", "e", {})
        assert wait_until(lambda: "notification.dropped" in caplog.text)
    assert endpoint.calls == 1


# Batches.


class BatchRecorder:
    def __init__(self, result: Any = None) -> None:
        self.batches: list[tuple[str, list[dict[str, Any]]]] = []
        self.result = result
        self.lock = threading.Lock()

    def _record(self, priority: str, items: list[dict[str, Any]]) -> Any:
        with self.lock:
            self.batches.append((priority, items))
            return self.result if len(self.batches) == 1 else None

    def info(self, items: list[dict[str, Any]]) -> Any:
        return self._record("info", items)

    def error(self, items: list[dict[str, Any]]) -> Any:
        return self._record("error", items)

    def payloads(self) -> list[list[Any]]:
        return [[item["payload"] for item in items] for _, items in self.batches]


def test_batch_by_size(api: Driver) -> None:
    endpoint = BatchRecorder()
    api.listen([endpoint], batch=True, batch_size=3, batch_timeout=WAIT_SECONDS)
    notifier = api.notifier()
    for n in range(6):
        api.send(notifier, "info", "e", n)
    assert wait_until(lambda: len(endpoint.batches) == 2)
    assert endpoint.payloads() == [[0, 1, 2], [3, 4, 5]]


def test_batch_by_timeout(api: Driver) -> None:
    endpoint = BatchRecorder()
    api.listen([endpoint], batch=True, batch_size=100, batch_timeout=0.2)
    notifier = api.notifier()
    api.send(notifier, "info", "e", 0)
    api.send(notifier, "info", "e", 1)
    assert wait_until(lambda: len(endpoint.batches) == 1)
    assert endpoint.payloads() == [[0, 1]]


def test_batch_item_shape(api: Driver) -> None:
    endpoint = BatchRecorder()
    api.listen([endpoint], batch=True, batch_size=1)
    api.send(
        api.notifier("pub.b"), "info", "ev.b", {"v": 1}, leveret.RequestContext("u")
    )
    assert wait_until(lambda: len(endpoint.batches) == 1)
    item = endpoint.batches[0][1][0]
    assert sorted(item) == ["ctxt", "event_type", "metadata", "payload", "publisher_id"]
    assert item["ctxt"].user_id == "u"
    assert item["publisher_id"] == "pub.b"
    assert item["event_type"] == "ev.b"
    assert item["payload"] == {"v": 1}
    assert sorted(item["metadata"]) == ["message_id", "timestamp"]


def test_batch_grouped_by_priority(api: Driver) -> None:
    endpoint = BatchRecorder()
    api.listen([endpoint], batch=True, batch_size=4, batch_timeout=WAIT_SECONDS)
    notifier = api.notifier()
    for method, n in [("info", 0), ("error", 1), ("info", 2), ("error", 3)]:
        api.send(notifier, method, "e", n)
    assert wait_until(lambda: len(endpoint.batches) == 2)
    grouped = {
        priority: [i["payload"] for i in items] for priority, items in endpoint.batches
    }
    assert grouped == {"info": [0, 2], "error": [1, 3]}


def test_batch_requeue_whole_group(api: Driver) -> None:
    endpoint = BatchRecorder(result="requeue")
    api.listen([endpoint], batch=True, batch_size=2, batch_timeout=0.2)
    notifier = api.notifier()
    api.send(notifier, "info", "e", 0)
    api.send(notifier, "info", "e", 1)
    assert wait_until(
        lambda: sorted(p for batch in endpoint.payloads()[1:] for p in batch) == [0, 1]
    )
    assert sorted(endpoint.payloads()[0]) == [0, 1]


def test_batch_filter(api: Driver) -> None:
    class Filtered(BatchRecorder):
        filter_rule = leveret.NotificationFilter(event_type="^keep")

    endpoint = Filtered()
    api.listen([endpoint], batch=True, batch_size=3, batch_timeout=WAIT_SECONDS)
    notifier = api.notifier()
    for event_type, n in [("keep.a", 0), ("drop.b", 1), ("keep.c", 2)]:
        api.send(notifier, "info", event_type, n)
    assert wait_until(lambda: len(endpoint.batches) == 1)
    assert endpoint.payloads() == [[0, 2]]


@pytest.mark.parametrize(
    "options",
    [
        {"batch_size": 0},
        {"batch_timeout": "1"},
        {"batch_timeout": True},
        {"batch_timeout": 10**400},
    ],
)
def test_batch_rejects_options(api: Driver, options: dict[str, Any]) -> None:
    with pytest.raises(leveret.InvalidTarget):
        api.listen([BatchRecorder()], batch=True, **options)


def test_batch_stop_requeues_pending(api: Driver) -> None:
    endpoint = BatchRecorder()
    listener = api.listen(
        [endpoint], batch=True, batch_size=10, batch_timeout=WAIT_SECONDS
    )
    api.send(api.notifier(), "info", "e", "pending")
    api.stop(listener)
    assert endpoint.batches == []
    later = Recorder()
    api.listen([later])
    assert later.wait_for(1)
    assert later.calls[0]["payload"] == "pending"


# Life cycle.


def test_wait_after_stop(sync_api: SyncDriver) -> None:
    listener = sync_api.listen([InfoOnly()])
    assert listener.wait(0.05) is False
    listener.stop()
    assert listener.wait(WAIT_SECONDS) is True


def test_context_manager(sync_api: SyncDriver) -> None:
    endpoint = InfoOnly()
    listener = leveret.NotificationListener(
        sync_api.transport, [leveret.Target(TOPIC)], [endpoint]
    )
    with listener:
        sync_api.send(sync_api.notifier(), "info", "e", "inside")
        assert wait_until(lambda: endpoint.payloads == ["inside"])
    assert listener.wait(0) is True


def test_async_context_manager(url: str) -> None:
    async def scenario() -> list[Any]:
        transport = leveret.get_transport(url)
        endpoint = InfoOnly()
        listener = leveret.AsyncNotificationListener(
            transport, [leveret.Target(TOPIC)], [endpoint]
        )
        async with listener:
            await leveret.AsyncNotifier(transport, "p", [TOPIC]).info("e", "inside")
            for _ in range(1000):
                if endpoint.payloads:
                    break
                await asyncio.sleep(0.01)
        await listener.wait()
        await transport.aclose()
        return endpoint.payloads

    assert asyncio.run(scenario()) == ["inside"]


def test_restart_rejected(sync_api: SyncDriver) -> None:
    listener = sync_api.listen([InfoOnly()])
    listener.stop()
    with pytest.raises(leveret.TransportClosed):
        listener.start()


def test_stop_requeues_in_progress(api: Driver) -> None:
    class Stuck:
        async def info(self, *args: Any) -> None:
            await asyncio.sleep(WAIT_SECONDS * 10)

    listener = api.listen([Stuck()], grace_period=0.1)
    api.send(api.notifier(), "info", "e", "stuck")
    api.stop(listener)
    recorder = Recorder()
    api.listen([recorder])
    assert recorder.wait_for(1)
    assert recorder.calls[0]["payload"] == "stuck"


@pytest.mark.parametrize(
    "targets",
    [
        [],
        [leveret.Target()],
        [leveret.Target("t", server="s")],
        [leveret.Target("t", fanout=True)],
    ],
)
def test_invalid_targets(sync_api: SyncDriver, targets: list[leveret.Target]) -> None:
    with pytest.raises(leveret.InvalidTarget):
        leveret.NotificationListener(sync_api.transport, targets, [InfoOnly()])


@pytest.mark.parametrize(
    "options",
    [
        {"pool": ""},
        {"max_workers": 0},
        {"max_redeliveries": -1},
        {"prefetch": 0},
        {"prefetch": 70_000},
        {"prefetch": 1.5},
        {"max_redeliveries": float("nan")},
        {"grace_period": float("nan")},
    ],
)
def test_invalid_options(sync_api: SyncDriver, options: dict[str, Any]) -> None:
    with pytest.raises(leveret.InvalidTarget):
        leveret.NotificationListener(
            sync_api.transport, [leveret.Target(TOPIC)], [InfoOnly()], **options
        )


def test_no_priority_methods(sync_api: SyncDriver) -> None:
    with pytest.raises(leveret.ConfigurationError):
        leveret.NotificationListener(
            sync_api.transport, [leveret.Target(TOPIC)], [object()]
        )


def test_invalid_filter_rule(sync_api: SyncDriver) -> None:
    class Endpoint(InfoOnly):
        filter_rule = "^compute"

    with pytest.raises(leveret.ConfigurationError):
        leveret.NotificationListener(
            sync_api.transport, [leveret.Target(TOPIC)], [Endpoint()]
        )
