"""leveret's messages as bytes on the broker, checked against oslo.messaging 18.x.

A pika connection plays the oslo peer at the byte level: it sends requests as
oslo's client encodes them and reads what leveret publishes. An oslo client
reads a reply's ``failure`` with ``data["failure"]`` and ends a call only on a
truthy ``ending``, so a reply without them breaks the call.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pika
import pika.adapters.blocking_connection
import pytest
from interop_support import CALL_TIMEOUT, WAIT_TIMEOUT, Recorder, new_topic

import leveret

pytestmark = pytest.mark.broker

HEX_ID = re.compile(r"[0-9a-f]{32}")
ENVELOPE_KEYS = {"oslo.version", "oslo.message"}
REPLY_KEYS = {"result", "failure", "ending", "_msg_id", "_unique_id"}

Channel = pika.adapters.blocking_connection.BlockingChannel


class WireEndpoint:
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def echo(self, **kwargs: Any) -> dict[str, Any]:
        return kwargs

    def record(self, token: str) -> None:
        self.recorder.add(("a", token))

    def fail(self, text: str) -> None:
        raise ValueError(text, 42)

    def count(self, n: int) -> Iterator[int]:
        yield from range(1, n + 1)


@pytest.fixture(scope="module")
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture(scope="module")
def topic(start_leveret_server: Any, recorder: Recorder) -> str:
    """This module's topic, served by one leveret server named ``a``."""
    topic = new_topic("wire")
    start_leveret_server(topic, "a", [WireEndpoint(recorder)])
    return topic


@pytest.fixture(scope="module")
def channel(amqp_url: str) -> Iterator[Channel]:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    yield connection.channel()
    connection.close()


def oslo_body(message: dict[str, Any]) -> bytes:
    """Encode *message* in the 2.0 envelope, as oslo.messaging's client does."""
    envelope = {"oslo.version": "2.0", "oslo.message": json.dumps(message)}
    return json.dumps(envelope).encode()


def oslo_properties() -> pika.BasicProperties:
    return pika.BasicProperties(
        content_type="application/json",
        content_encoding="utf-8",
        delivery_mode=2,
        priority=0,
        headers={},
    )


def take(channel: Channel, queue: str) -> tuple[Any, bytes]:
    """Return the properties and body of the next message on *queue*."""
    for method, properties, body in channel.consume(
        queue, auto_ack=True, inactivity_timeout=WAIT_TIMEOUT
    ):
        channel.cancel()
        assert method is not None, f"no message on {queue} in {WAIT_TIMEOUT:g} s"
        return properties, body
    raise AssertionError("consume ended without a message")


def inner(body: bytes) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(json.loads(body)["oslo.message"])
    return message


class RawCall:
    """One call sent as oslo's client sends it, with its own reply queue."""

    def __init__(self, channel: Channel, exchange: str, routing_key: str) -> None:
        self.channel = channel
        self.exchange = exchange
        self.routing_key = routing_key
        self.reply_q = channel.queue_declare("", exclusive=True).method.queue
        self.msg_id = uuid.uuid4().hex
        self.unique_id = uuid.uuid4().hex

    def send(self, method: str, **args: Any) -> None:
        message = {
            "method": method,
            "args": args,
            "_msg_id": self.msg_id,
            "_reply_q": self.reply_q,
            "_timeout": None,
            "_unique_id": self.unique_id,
            "_context_user_id": "u1",
        }
        self.channel.basic_publish(
            self.exchange, self.routing_key, oslo_body(message), oslo_properties()
        )

    def reply(self) -> tuple[Any, bytes]:
        return take(self.channel, self.reply_q)


@pytest.fixture
def raw_call(channel: Channel, control_exchange: str, topic: str) -> RawCall:
    return RawCall(channel, control_exchange, topic)


def test_reply_has_oslo_fields(raw_call: RawCall) -> None:
    raw_call.send("echo", a=1)
    _, body = raw_call.reply()
    reply = inner(body)
    assert set(reply) >= REPLY_KEYS
    assert reply["result"] == {"a": 1}
    assert reply["failure"] is None
    assert reply["ending"] is True
    assert reply["_msg_id"] == raw_call.msg_id
    assert HEX_ID.fullmatch(reply["_unique_id"])
    assert reply["_unique_id"] != raw_call.unique_id


def test_reply_is_json_envelope(raw_call: RawCall) -> None:
    raw_call.send("echo")
    properties, body = raw_call.reply()
    assert properties.content_type == "application/json"
    assert properties.content_encoding == "utf-8"
    envelope = json.loads(body)
    assert set(envelope) == ENVELOPE_KEYS
    assert envelope["oslo.version"] == "2.0"
    assert isinstance(envelope["oslo.message"], str)


def test_failure_reply_is_json_text(raw_call: RawCall) -> None:
    raw_call.send("fail", text="bad thing")
    _, body = raw_call.reply()
    reply = inner(body)
    assert set(reply) >= REPLY_KEYS
    assert reply["result"] is None
    assert reply["ending"] is True
    assert isinstance(reply["failure"], str)
    failure = json.loads(reply["failure"])
    assert failure["class"] == "ValueError"
    assert failure["module"] == "builtins"
    assert failure["message"] == "('bad thing', 42)"
    assert failure["args"] == ["bad thing", 42]
    assert failure["kwargs"] == {}
    assert isinstance(failure["tb"], list)


def test_generator_sends_one_reply(raw_call: RawCall) -> None:
    raw_call.send("count", n=3)
    _, body = raw_call.reply()
    reply = inner(body)
    assert reply["ending"] is True
    assert reply["result"] == 3
    # A second reply, if any, would arrive at once after the first one.
    method, _, _ = raw_call.channel.basic_get(raw_call.reply_q, auto_ack=True)
    assert method is None


def test_duplicate_unique_id_runs_once(
    channel: Channel, control_exchange: str, topic: str, recorder: Recorder
) -> None:
    token = uuid.uuid4().hex
    sentinel = uuid.uuid4().hex
    cast = {"method": "record", "args": {"token": token}, "_unique_id": token}
    for _ in range(2):
        channel.basic_publish(
            control_exchange, f"{topic}.a", oslo_body(cast), oslo_properties()
        )
    after = {"method": "record", "args": {"token": sentinel}, "_unique_id": sentinel}
    channel.basic_publish(
        control_exchange, f"{topic}.a", oslo_body(after), oslo_properties()
    )
    recorder.wait_for(lambda items: any(item[1] == sentinel for item in items))
    assert len(recorder.with_token(sentinel)) == 1
    assert len(recorder.with_token(token)) == 1


@pytest.fixture
def bound_queue(channel: Channel, control_exchange: str) -> tuple[str, str]:
    """A topic whose requests land in a queue this test reads: (topic, queue)."""
    topic = new_topic("wire-capture")
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(queue, control_exchange, routing_key=topic)
    return topic, queue


def test_cast_omits_unset_fields(
    leveret_transport: Any, channel: Channel, bound_queue: tuple[str, str]
) -> None:
    topic, queue = bound_queue
    client = leveret.RPCClient(leveret_transport, leveret.Target(topic=topic))
    client.cast("ping", a=1)
    properties, body = take(channel, queue)
    request = inner(body)
    assert set(request) == {"method", "args", "_unique_id"}
    assert request["method"] == "ping"
    assert request["args"] == {"a": 1}
    assert HEX_ID.fullmatch(request["_unique_id"])
    assert properties.content_type == "application/json"
    assert properties.expiration is None


def test_call_request_has_oslo_fields(
    leveret_transport: Any, channel: Channel, bound_queue: tuple[str, str]
) -> None:
    topic, queue = bound_queue
    client = leveret.RPCClient(
        leveret_transport,
        leveret.Target(topic=topic, namespace="inventory", version="1.2"),
        timeout=CALL_TIMEOUT,
    )
    results: list[Any] = []
    context = leveret.RequestContext(user_id="u1", project_id="p1", request_id="r1")

    def call() -> None:
        results.append(client.prepare(context=context).call("ping"))

    caller = threading.Thread(target=call)
    started = time.monotonic()
    caller.start()

    properties, body = take(channel, queue)
    request = inner(body)

    # Reply as an oslo server does, so the call ends before its timeout.
    reply = {
        "result": "pong",
        "failure": None,
        "ending": True,
        "_msg_id": request["_msg_id"],
        "_unique_id": uuid.uuid4().hex,
    }
    channel.basic_publish("", request["_reply_q"], oslo_body(reply), oslo_properties())
    caller.join(CALL_TIMEOUT)

    assert results == ["pong"]
    assert time.monotonic() - started < CALL_TIMEOUT
    assert request["namespace"] == "inventory"
    assert request["version"] == "1.2"
    assert HEX_ID.fullmatch(request["_msg_id"])
    assert request["_reply_q"]
    assert request["_timeout"] is None
    assert request["_context_user_id"] == "u1"
    assert request["_context_project_id"] == "p1"
    assert request["_context_request_id"] == "r1"
    assert properties.expiration == str(CALL_TIMEOUT * 1000)
