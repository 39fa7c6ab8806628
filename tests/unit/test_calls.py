"""call and cast: results, argument values, routing and send-side errors."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import logging
import queue
import threading
import time
import uuid
from typing import Any

import pytest
from harness import TOPIC, WAIT_SECONDS, Api, wait_until

import leveret
from leveret.transports.base import Address


class Recorder:
    """Records every call it serves, so tests can check what arrived."""

    def __init__(self, name: str = "server-1") -> None:
        self.name = name
        self.seen: list[tuple[str, dict[str, Any]]] = []
        self.casts: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._lock = threading.Lock()

    def _record(self, method: str, kwargs: dict[str, Any]) -> None:
        with self._lock:
            self.seen.append((method, kwargs))

    def echo(self, value: Any = None) -> Any:
        self._record("echo", {"value": value})
        return value

    def echo_kwargs(self, **kwargs: Any) -> dict[str, Any]:
        self._record("echo_kwargs", kwargs)
        return kwargs

    def whoami(self) -> str:
        return self.name

    def note(self, value: Any = None) -> None:
        self.casts.put((self.name, value))

    def unsendable(self) -> object:
        return Unsendable()

    def huge(self, size: int) -> str:
        return "x" * size


class Unsendable:
    pass


# results and arguments


def test_call_returns_result(api: Api) -> None:
    api.serve([Recorder()])
    assert api.call(api.client(), "echo", value={"a": [1, 2]}) == {"a": [1, 2]}


@pytest.mark.parametrize("value", [None, 0, "", False, [], {}, 0.0])
def test_call_falsy_result_exact(api: Api, value: Any) -> None:
    api.serve([Recorder()])
    result = api.call(api.client(), "echo", value=value)
    assert result == value
    assert type(result) is type(value)


def test_call_kwargs_json_types(api: Api) -> None:
    api.serve([Recorder()])
    kwargs = {
        "text": "héllo ☃ 日本",
        "integer": -(2**63),
        "big": 2**64 - 1,
        "real": 1.5e-300,
        "flag": True,
        "nothing": None,
        "items": [1, "two", [3.0], {"four": None}],
        "mapping": {"nested": {"deep": [True, False]}},
        "empty_text": "",
    }
    assert api.call(api.client(), "echo_kwargs", **kwargs) == kwargs


def test_call_without_kwargs(api: Api) -> None:
    api.serve([Recorder()])
    assert api.call(api.client(), "echo") is None


class Colour(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x: int
    y: int


@pytest.mark.parametrize(
    ("value", "arrives_as"),
    [
        (
            datetime.datetime(2026, 1, 2, 3, 4, 5, 6),
            "2026-01-02T03:04:05.000006",
        ),
        (
            datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
            "2026-01-02T03:04:05+00:00",
        ),
        (datetime.date(2026, 1, 2), "2026-01-02"),
        (datetime.time(3, 4, 5), "03:04:05"),
        (
            uuid.UUID("12345678-1234-5678-1234-567812345678"),
            "12345678-1234-5678-1234-567812345678",
        ),
        (b"caf\xc3\xa9", "café"),
        (bytearray(b"abc"), "abc"),
        ({3}, [3]),
        (frozenset({"a"}), ["a"]),
        ((1, 2), [1, 2]),
        (Point(1, 2), {"x": 1, "y": 2}),
        (Colour.RED, "red"),
        ({1: "one"}, {"1": "one"}),
    ],
)
def test_call_converts_values(api: Api, value: Any, arrives_as: Any) -> None:
    recorder = Recorder()
    api.serve([recorder])
    assert api.call(api.client(), "echo", value=value) == arrives_as
    assert recorder.seen == [("echo", {"value": arrives_as})]


@pytest.mark.parametrize(
    "value", [object(), b"\xff\xfe", 2**64, {"nested": [Unsendable()]}]
)
def test_call_unserializable_argument_not_sent(api: Api, value: Any) -> None:
    recorder = Recorder()
    api.serve([recorder])
    client = api.client()
    with pytest.raises(leveret.SerializationError):
        api.call(client, "echo", value=value)
    with pytest.raises(leveret.SerializationError):
        api.cast(client, "echo", value=value)
    with pytest.raises(leveret.SerializationError):
        client.stream("echo", value=value)
    assert api.call(client, "echo_kwargs") == {}
    assert recorder.seen == [("echo_kwargs", {})]


def test_serialization_error_names_cause(api: Api) -> None:
    api.serve([Recorder()])
    with pytest.raises(leveret.SerializationError) as caught:
        api.call(api.client(), "echo", value=b"\xff")
    assert "not UTF-8" in str(caught.value)
    assert isinstance(caught.value, TypeError)


def test_unserializable_result_is_remote_error(api: Api) -> None:
    api.serve([Recorder()])
    client = api.client()
    with pytest.raises(leveret.RemoteError) as caught:
        api.call(client, "unsendable")
    assert caught.value.exc_type == "SerializationError"
    assert caught.value.value is not None
    assert "Unsendable" in caught.value.value
    assert "unsendable" in caught.value.value
    assert api.call(client, "echo", value=1) == 1


def test_oversized_result_is_remote_error(api: Api) -> None:
    api.serve([Recorder()], max_message_bytes=1000)
    client = api.client()
    with pytest.raises(leveret.RemoteError) as caught:
        api.call(client, "huge", size=2000)
    assert caught.value.exc_type == "MessageTooLarge"
    assert api.call(client, "huge", size=10) == "x" * 10


def test_message_too_large_on_sender(api: Api) -> None:
    recorder = Recorder()
    api.serve([recorder])
    client = api.client(max_message_bytes=1000)
    with pytest.raises(leveret.MessageTooLarge) as caught:
        api.call(client, "echo", value="x" * 2000)
    assert caught.value.limit == 1000
    assert caught.value.size > 2000
    assert "over the limit of 1000 bytes" in str(caught.value)
    with pytest.raises(leveret.MessageTooLarge):
        api.cast(client, "echo", value="x" * 2000)
    assert recorder.seen == []


# cast and routing


def test_cast_delivered(api: Api) -> None:
    recorder = Recorder()
    api.serve([recorder])
    assert api.cast(api.client(), "note", value="hello") is None
    assert recorder.casts.get(timeout=WAIT_SECONDS) == ("server-1", "hello")


def test_fanout_cast_reaches_every_server(api: Api) -> None:
    recorders = [Recorder(f"server-{i}") for i in range(3)]
    for recorder in recorders:
        api.serve([recorder], server=recorder.name)
    api.cast(api.client().prepare(fanout=True), "note", value=5)
    for recorder in recorders:
        assert recorder.casts.get(timeout=WAIT_SECONDS) == (recorder.name, 5)
    api.call(api.client(), "echo")  # a round trip, so late duplicates would show
    for recorder in recorders:
        assert recorder.casts.empty()


def test_topic_call_served_once(api: Api) -> None:
    recorders = [Recorder(f"server-{i}") for i in range(3)]
    for recorder in recorders:
        api.serve([recorder], server=recorder.name)
    client = api.client()
    for value in range(6):
        assert api.call(client, "echo", value=value) == value
    served = sorted(
        value for r in recorders for _, kwargs in r.seen for value in [kwargs["value"]]
    )
    assert served == list(range(6))


def test_server_targeted_call_reaches_one(api: Api) -> None:
    recorders = [Recorder(f"server-{i}") for i in range(3)]
    for recorder in recorders:
        api.serve([recorder], server=recorder.name)
    client = api.client().prepare(server="server-2")
    for _ in range(5):
        assert api.call(client, "whoami") == "server-2"
    for _ in range(5):
        api.call(client, "echo", value=1)
    assert len(recorders[2].seen) == 5
    assert recorders[0].seen == []
    assert recorders[1].seen == []


def test_fanout_call_rejected_before_send(api: Api) -> None:
    recorder = Recorder()
    api.serve([recorder])
    client = api.client().prepare(fanout=True)
    with pytest.raises(leveret.InvalidTarget, match="fanout"):
        api.call(client, "echo", value=1)
    with pytest.raises(leveret.InvalidTarget, match="fanout"):
        client.stream("echo", value=1)
    api.call(api.client(), "echo_kwargs")
    assert recorder.seen == [("echo_kwargs", {})]


@pytest.mark.parametrize("method", ["", None])
def test_invalid_method_name_rejected(api: Api, method: Any) -> None:
    api.serve([Recorder()])
    with pytest.raises(leveret.InvalidTarget, match="method name"):
        api.call(api.client(), method)


def test_no_server_error_for_idle_topic(api: Api) -> None:
    client = api.client(topic="nobody-listens", timeout=30)
    started = time.monotonic()
    with pytest.raises(leveret.NoServerError, match="nobody-listens"):
        api.call(client, "echo")
    assert time.monotonic() - started < 15  # raised on send, not on timeout
    with pytest.raises(leveret.NoServerError):
        api.cast(client, "echo")
    items, error = api.stream(client, "echo")
    assert items == []
    assert isinstance(error, leveret.NoServerError)


def test_no_server_error_for_unknown_server(api: Api) -> None:
    api.serve([Recorder()])
    with pytest.raises(leveret.NoServerError):
        api.call(api.client().prepare(server="server-9"), "echo")


# malformed requests


@pytest.mark.parametrize(
    "body",
    [
        b"garbage",
        b"[1, 2]",
        b'{"oslo.version": "2.0", "oslo.message": "not json"}',
        b'{"oslo.version": "9.9", "oslo.message": "{}"}',
        b'{"args": {}}',
        b'{"method": "echo", "args": [1]}',
        b'{"method": "echo", "args": {}, "_msg_id": 5}',
    ],
)
def test_malformed_request_dropped(
    api: Api, body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder()
    api.serve([recorder])
    address = Address(api.transport.default_exchange, TOPIC)
    with caplog.at_level(logging.WARNING, logger="leveret.server"):
        api.run(api.transport.send(address, body))
        assert wait_until(lambda: "request.dropped" in caplog.text)
    assert api.call(api.client(), "echo", value=2) == 2
    assert recorder.seen == [("echo", {"value": 2})]


def test_oslo_unwrapped_cast_served(api: Api) -> None:
    recorder = Recorder()
    api.serve([recorder])
    address = Address(api.transport.default_exchange, TOPIC)
    body = b'{"method": "note", "args": {"value": 3}, "_context_user_id": "u"}'
    api.run(api.transport.send(address, body))
    assert recorder.casts.get(timeout=WAIT_SECONDS) == ("server-1", 3)
