"""An oslo.messaging 18.x RPC client talking to leveret servers.

Two leveret servers, ``a`` and ``b``, serve this module's topic. The oslo side
runs with ``amqp_durable_queues = true`` because leveret declares only
durable or exclusive queues, and RabbitMQ rejects a second declaration of a
queue with a different durable flag (see test_oslo_shared_topic.py).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import interop_exceptions
import oslo_messaging as om
import pytest
from interop_support import CALL_TIMEOUT, Recorder, new_topic

import leveret

pytestmark = pytest.mark.broker

NON_ASCII = "Grüße aus 東京 🐇 — ünïcödé"


class HiddenError(Exception):
    """An error from a module that no client allows."""


class LeveretEndpoint:
    """Methods with leveret's signature: keyword arguments only."""

    def __init__(self, name: str, recorder: Recorder) -> None:
        self.name = name
        self.recorder = recorder

    def echo(self, **kwargs: Any) -> dict[str, Any]:
        return kwargs

    def give(self, value: Any) -> Any:
        return value

    def whoami(self) -> str:
        return self.name

    def context(self) -> dict[str, Any]:
        context = leveret.get_context()
        assert context is not None
        return {"type": type(context).__name__, **context.to_dict()}

    def record(self, token: str) -> None:
        self.recorder.add((self.name, token))

    def exceed_quota(self, resource: str, limit: int) -> None:
        raise interop_exceptions.QuotaExceeded(resource, limit)

    def fail_hidden(self, text: str) -> None:
        raise HiddenError(text)

    def fail_builtin(self, key: str) -> None:
        raise KeyError(key)

    def sleep(self, seconds: float) -> str:
        time.sleep(seconds)
        return "slept"

    def count(self, n: int) -> Iterator[int]:
        yield from range(1, n + 1)

    async def count_async(self, n: int) -> AsyncIterator[int]:
        for item in range(1, n + 1):
            yield item


class InventoryEndpoint:
    target = leveret.Target(namespace="inventory", version="1.3")

    def describe(self) -> str:
        return "inventory 1.3"


@pytest.fixture(scope="module")
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture(scope="module")
def topic(start_leveret_server: Any, recorder: Recorder) -> str:
    """This module's topic, served by leveret servers ``a`` and ``b``."""
    topic = new_topic("oslo-client")
    for name in ("a", "b"):
        endpoints = [LeveretEndpoint(name, recorder), InventoryEndpoint()]
        start_leveret_server(topic, name, endpoints)
    return topic


@pytest.fixture(scope="module")
def client(oslo_transport: Any, topic: str) -> Any:
    return om.get_rpc_client(
        oslo_transport, om.Target(topic=topic), timeout=CALL_TIMEOUT
    )


def test_call_returns_result(client: Any) -> None:
    assert client.call({}, "echo", a=1, b="x") == {"a": 1, "b": "x"}


def test_cast_reaches_one_server(client: Any, recorder: Recorder) -> None:
    token = uuid.uuid4().hex
    client.cast({}, "record", token=token)
    recorder.wait_for(lambda items: any(item[1] == token for item in items))
    assert len(recorder.with_token(token)) == 1


def test_fanout_cast_reaches_all(client: Any, recorder: Recorder) -> None:
    token = uuid.uuid4().hex
    client.prepare(fanout=True).cast({}, "record", token=token)
    recorder.wait_for(
        lambda items: {name for name, seen in items if seen == token} == {"a", "b"}
    )
    names = sorted(name for name, _ in recorder.with_token(token))
    assert names == ["a", "b"]


def test_server_call_reaches_named(client: Any) -> None:
    to_b = client.prepare(server="b")
    answers = [to_b.call({}, "whoami") for _ in range(4)]
    assert answers == ["b", "b", "b", "b"]


def test_namespaced_versioned_call(client: Any) -> None:
    inventory = client.prepare(namespace="inventory", version="1.2")
    assert inventory.call({}, "describe") == "inventory 1.3"


def test_newer_version_is_remote_error(client: Any) -> None:
    inventory = client.prepare(namespace="inventory", version="1.4")
    with pytest.raises(om.RemoteError) as caught:
        inventory.call({}, "describe")
    assert caught.value.exc_type == "UnsupportedVersion"


@pytest.mark.parametrize(
    ("namespace", "version", "method", "error"),
    [
        ("unserved", "1.0", "describe", "UnsupportedVersion"),
        ("inventory", "1.0", "missing", "NoSuchMethod"),
        (None, "1.0", "missing", "NoSuchMethod"),
        (None, "9.0", "missing", "UnsupportedVersion"),
        ("inventory", "1.3.1", "describe", "UnsupportedVersion"),
    ],
)
def test_lookup_errors_match(
    client: Any, namespace: str | None, version: str, method: str, error: str
) -> None:
    with pytest.raises(om.RemoteError) as caught:
        client.prepare(namespace=namespace, version=version).call({}, method)
    assert caught.value.exc_type == error


def test_revision_version_served(client: Any) -> None:
    assert (
        client.prepare(namespace="inventory", version="1.2.9").call({}, "describe")
        == "inventory 1.3"
    )


def test_allowed_exception_keeps_type(client: Any) -> None:
    with pytest.raises(interop_exceptions.QuotaExceeded) as caught:
        client.call({}, "exceed_quota", resource="disk", limit=3)
    assert caught.value.resource == "disk"
    assert caught.value.limit == 3


def test_other_exception_is_remote_error(client: Any) -> None:
    with pytest.raises(om.RemoteError) as caught:
        client.call({}, "fail_hidden", text=NON_ASCII)
    assert caught.value.exc_type == "HiddenError"
    assert caught.value.value == NON_ASCII
    assert any("HiddenError" in line for line in caught.value.traceback)


def test_builtin_exception_keeps_type(client: Any) -> None:
    with pytest.raises(KeyError):
        client.call({}, "fail_builtin", key="missing")


def test_no_such_method_is_remote_error(client: Any) -> None:
    with pytest.raises(om.RemoteError) as caught:
        client.call({}, "nosuch")
    assert caught.value.exc_type == "NoSuchMethod"


def test_context_reaches_get_context(client: Any) -> None:
    context = {
        "user_id": "u1",
        "project_id": "p1",
        "request_id": "req-1",
        "roles": ["admin"],
    }
    received = client.call(context, "context")
    assert received["type"] == "RequestContext"
    assert received["user_id"] == "u1"
    assert received["project_id"] == "p1"
    assert received["request_id"] == "req-1"
    assert received["roles"] == ["admin"]


def test_legacy_context_keys_map(client: Any) -> None:
    received = client.call({"user": "u2", "tenant": "p2"}, "context")
    assert received["user_id"] == "u2"
    assert received["project_id"] == "p2"


def test_non_ascii_round_trip(client: Any) -> None:
    result = client.call({}, "echo", text=NON_ASCII, **{"ключ": NON_ASCII})
    assert result == {"text": NON_ASCII, "ключ": NON_ASCII}


@pytest.mark.parametrize("value", [0, 0.0, "", [], {}, False, None])
def test_falsy_result_returned(client: Any, value: Any) -> None:
    result = client.call({}, "give", value=value)
    assert result == value
    assert type(result) is type(value)


@pytest.mark.parametrize("method", ["count", "count_async"])
def test_generator_call_gets_last(client: Any, method: str) -> None:
    assert client.call({}, method, n=3) == 3


def test_empty_generator_gets_none(client: Any) -> None:
    assert client.call({}, "count", n=0) is None


def test_call_monitor_gets_heartbeats(client: Any) -> None:
    # An oslo server sends a heartbeat every call_monitor_timeout / 2 seconds
    # (RPCDispatcher._watchdog), and the caller times out without one.
    monitored = client.prepare(call_monitor_timeout=2, timeout=CALL_TIMEOUT)
    assert monitored.call({}, "sleep", seconds=3) == "slept"
