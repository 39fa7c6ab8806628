"""A leveret client talking to oslo.messaging 18.x RPC servers.

Two oslo servers, ``a`` and ``b``, serve this module's topic. The oslo side
runs with ``amqp_durable_queues = true`` because leveret declares only
durable or exclusive queues, and RabbitMQ rejects a second declaration of a
queue with a different durable flag (see test_oslo_shared_topic.py).
"""

from __future__ import annotations

import uuid
from typing import Any

import interop_exceptions
import oslo_messaging as om
import pytest
from interop_support import ALLOWED_MODULES, CALL_TIMEOUT, Recorder, new_topic

import leveret

pytestmark = pytest.mark.broker

NON_ASCII = "Grüße aus 東京 🐇 — ünïcödé"


class HiddenError(Exception):
    """An error from a module that no client allows."""


class OsloEndpoint:
    """Methods with oslo's signature: the context, then keyword arguments."""

    def __init__(self, name: str, recorder: Recorder) -> None:
        self.name = name
        self.recorder = recorder

    def echo(self, ctxt: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return kwargs

    def give(self, ctxt: dict[str, Any], value: Any) -> Any:
        return value

    def whoami(self, ctxt: dict[str, Any]) -> str:
        return self.name

    def context(self, ctxt: dict[str, Any]) -> dict[str, Any]:
        return ctxt

    def record(self, ctxt: dict[str, Any], token: str) -> None:
        self.recorder.add((self.name, token))

    def exceed_quota(self, ctxt: dict[str, Any], resource: str, limit: int) -> None:
        raise interop_exceptions.QuotaExceeded(resource, limit)

    def fail_hidden(self, ctxt: dict[str, Any], text: str) -> None:
        raise HiddenError(text)

    def fail_builtin(self, ctxt: dict[str, Any], key: str) -> None:
        raise KeyError(key)


class InventoryEndpoint:
    target = om.Target(namespace="inventory", version="1.3")

    def describe(self, ctxt: dict[str, Any]) -> str:
        return "inventory 1.3"


@pytest.fixture(scope="module")
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture(scope="module")
def topic(start_oslo_server: Any, recorder: Recorder) -> str:
    """This module's topic, served by oslo servers ``a`` and ``b``."""
    topic = new_topic("oslo-server")
    for name in ("a", "b"):
        endpoints = [OsloEndpoint(name, recorder), InventoryEndpoint()]
        start_oslo_server(topic, name, endpoints)
    return topic


@pytest.fixture(scope="module")
def client(leveret_transport: Any, topic: str) -> leveret.RPCClient:
    return leveret.RPCClient(
        leveret_transport,
        leveret.Target(topic=topic),
        timeout=CALL_TIMEOUT,
        allowed_remote_exmods=ALLOWED_MODULES,
    )


def test_call_returns_result(client: leveret.RPCClient) -> None:
    assert client.call("echo", a=1, b="x") == {"a": 1, "b": "x"}


def test_cast_reaches_one_server(client: leveret.RPCClient, recorder: Recorder) -> None:
    token = uuid.uuid4().hex
    client.cast("record", token=token)
    recorder.wait_for(lambda items: any(item[1] == token for item in items))
    assert len(recorder.with_token(token)) == 1


def test_fanout_cast_reaches_all(client: leveret.RPCClient, recorder: Recorder) -> None:
    token = uuid.uuid4().hex
    client.prepare(fanout=True).cast("record", token=token)
    recorder.wait_for(
        lambda items: {name for name, seen in items if seen == token} == {"a", "b"}
    )
    names = sorted(name for name, _ in recorder.with_token(token))
    assert names == ["a", "b"]


def test_server_call_reaches_named(client: leveret.RPCClient) -> None:
    to_b = client.prepare(server="b")
    answers = [to_b.call("whoami") for _ in range(4)]
    assert answers == ["b", "b", "b", "b"]


def test_namespaced_versioned_call(client: leveret.RPCClient) -> None:
    inventory = client.prepare(namespace="inventory", version="1.2")
    assert inventory.call("describe") == "inventory 1.3"


def test_newer_version_raises_unsupported(client: leveret.RPCClient) -> None:
    inventory = client.prepare(namespace="inventory", version="1.4")
    with pytest.raises(leveret.UnsupportedVersion) as caught:
        inventory.call("describe")
    assert caught.value.version == "1.4"
    assert caught.value.method == "describe"


@pytest.mark.parametrize(
    ("namespace", "version", "method", "error"),
    [
        ("unserved", "1.0", "describe", leveret.UnsupportedVersion),
        ("inventory", "1.0", "missing", leveret.NoSuchMethod),
        (None, "1.0", "missing", leveret.NoSuchMethod),
        (None, "9.0", "missing", leveret.UnsupportedVersion),
        ("inventory", "1.3.1", "describe", leveret.UnsupportedVersion),
    ],
)
def test_lookup_errors_match(
    client: leveret.RPCClient,
    namespace: str | None,
    version: str,
    method: str,
    error: type,
) -> None:
    with pytest.raises(error):
        client.prepare(namespace=namespace, version=version).call(method)


def test_revision_version_served(client: leveret.RPCClient) -> None:
    assert (
        client.prepare(namespace="inventory", version="1.2.9").call("describe")
        == "inventory 1.3"
    )


def test_allowed_exception_keeps_type(client: leveret.RPCClient) -> None:
    with pytest.raises(interop_exceptions.QuotaExceeded) as caught:
        client.call("exceed_quota", resource="disk", limit=3)
    assert type(caught.value) is interop_exceptions.QuotaExceeded
    assert caught.value.resource == "disk"
    assert caught.value.limit == 3


def test_other_exception_is_remote_error(client: leveret.RPCClient) -> None:
    with pytest.raises(leveret.RemoteError) as caught:
        client.call("fail_hidden", text=NON_ASCII)
    assert caught.value.exc_type == "HiddenError"
    assert caught.value.value == NON_ASCII
    assert "HiddenError" in (caught.value.traceback or "")


def test_builtin_exception_keeps_type(client: leveret.RPCClient) -> None:
    with pytest.raises(KeyError) as caught:
        client.call("fail_builtin", key="missing")
    assert caught.value.args == ("missing",)


def test_no_such_method_maps(client: leveret.RPCClient) -> None:
    with pytest.raises(leveret.NoSuchMethod) as caught:
        client.call("nosuch")
    assert caught.value.method == "nosuch"


def test_private_method_is_no_such_method(client: leveret.RPCClient) -> None:
    with pytest.raises(leveret.NoSuchMethod):
        client.call("_private")


def test_context_reaches_endpoint(client: leveret.RPCClient) -> None:
    context = leveret.RequestContext(
        user_id="u1", project_id="p1", request_id="req-1", roles=["admin"]
    )
    with leveret.bind_context(context):
        received = client.call("context")
    assert received["user_id"] == "u1"
    assert received["project_id"] == "p1"
    assert received["request_id"] == "req-1"
    assert received["roles"] == ["admin"]
    # The oslo server adds the request's _timeout as client_timeout, and
    # leveret sends _timeout as null.
    assert received["client_timeout"] is None


def test_no_context_sends_none(client: leveret.RPCClient) -> None:
    assert client.call("context") == {"client_timeout": None}


def test_non_ascii_round_trip(client: leveret.RPCClient) -> None:
    result = client.call("echo", text=NON_ASCII, **{"ключ": NON_ASCII})
    assert result == {"text": NON_ASCII, "ключ": NON_ASCII}


@pytest.mark.parametrize("value", [0, 0.0, "", [], {}, False, None])
def test_falsy_result_returned(client: leveret.RPCClient, value: Any) -> None:
    result = client.call("give", value=value)
    assert result == value
    assert type(result) is type(value)


def test_stream_yields_single_result(client: leveret.RPCClient) -> None:
    with client.stream("echo", n=1) as stream:
        items = list(stream)
    assert items == [{"n": 1}]
