"""Encoding and decoding of requests and replies, in oslo.messaging's wire form.

A message body is JSON. Version 2.0 wraps the message's own JSON text::

    {"oslo.version": "2.0", "oslo.message": "<JSON text of the message>"}

Older senders put the message dict in the body directly; both are accepted.

Request fields: ``method``, ``args`` (keyword arguments), ``namespace``,
``version``, ``_unique_id``, the context as ``_context_<key>`` fields and, for a
call, ``_msg_id`` (correlates replies), ``_reply_q`` (where replies go) and
``_timeout``. Reply fields: ``result``, ``failure`` (JSON text, see
``_remote_errors``), ``ending`` and ``_msg_id``.

leveret adds fields that other peers ignore: ``_leveret_stream`` on a request
requests a streamed reply, and on a reply marks it as part of one.
``_leveret_server`` on a streamed reply names the server, so that the caller
can send it ``_leveret_cancel`` (the stream's ``_msg_id``) to stop the stream.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from collections.abc import Mapping
from typing import Any

from . import _values
from ._context import pack_context, unpack_context
from ._errors import MessageTooLarge

ENVELOPE_VERSION = "2.0"
VERSION_KEY = "oslo.version"
MESSAGE_KEY = "oslo.message"

# 16 MiB: RabbitMQ 4.0 and later reject larger messages by default
# (its max_message_size setting), so a larger limit would only move the error.
DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024


class MalformedMessage(ValueError):
    """A received body that is not a valid request or reply."""


class _IdSource:
    """32 hex digits: 64 random bits per process, then a 64-bit counter.

    Ids need only be unique, and a counter is several times cheaper than a
    uuid4 per message; the random half keeps processes apart.
    """

    def __init__(self) -> None:
        self.reseed()
        # A forked child must not repeat its parent's ids.
        os.register_at_fork(after_in_child=self.reseed)

    def reseed(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._counter = itertools.count(int.from_bytes(os.urandom(4), "big"))

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._counter) & _COUNTER_MASK:016x}"


_COUNTER_MASK = (1 << 64) - 1
new_id = _IdSource()


@dataclasses.dataclass(slots=True)
class Request:
    """A decoded request. ``msg_id`` and ``reply_q`` are set for calls only."""

    method: str
    args: dict[str, Any]
    context: dict[str, Any]
    namespace: str | None = None
    version: str | None = None
    unique_id: str | None = None
    msg_id: str | None = None
    reply_q: str | None = None
    stream: bool = False
    # oslo.messaging's call monitor: the caller wants a reply with ending
    # false every _timeout / 2 seconds while the method runs.
    call_monitor_timeout: float | None = None


@dataclasses.dataclass(slots=True)
class Cancel:
    """A caller's request to stop the stream with ``msg_id``."""

    msg_id: str


@dataclasses.dataclass(slots=True)
class Reply:
    """A decoded reply. ``failure`` is the JSON text of a remote exception."""

    msg_id: str
    result: Any
    failure: str | None
    ending: bool
    stream: bool = False
    server: str | None = None


def wrap(message: Mapping[str, Any], max_bytes: int) -> bytes:
    """Encode *message* in the 2.0 envelope; raise if it is over *max_bytes*."""
    inner = _values.dumps_text(message)
    body = _values.dumps({VERSION_KEY: ENVELOPE_VERSION, MESSAGE_KEY: inner})
    if len(body) > max_bytes:
        raise MessageTooLarge(len(body), max_bytes)
    return body


def unwrap(body: bytes | str) -> dict[str, Any]:
    """Decode a body into the message dict, accepting the unwrapped form too."""
    try:
        outer = _values.loads(body)
    except ValueError as exc:
        raise MalformedMessage(f"body is not JSON: {exc}") from None
    if not isinstance(outer, dict):
        raise MalformedMessage("body is not a JSON object")
    if VERSION_KEY not in outer:
        return outer
    if outer[VERSION_KEY] != ENVELOPE_VERSION:
        raise MalformedMessage(f"unsupported envelope version {outer[VERSION_KEY]!r}")
    try:
        message = _values.loads(outer[MESSAGE_KEY])
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedMessage(f"envelope contains no valid message: {exc!r}") from None
    if not isinstance(message, dict):
        raise MalformedMessage("envelope message is not a JSON object")
    return message


def encode_request(
    method: str,
    args: Mapping[str, Any],
    context: Mapping[str, Any],
    *,
    namespace: str | None,
    version: str | None,
    msg_id: str | None = None,
    reply_q: str | None = None,
    stream: bool = False,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> bytes:
    """Encode a call (with *msg_id* and *reply_q*) or a cast request."""
    message: dict[str, Any] = {"method": method, "args": args}
    # Unset fields are left out, as oslo.messaging's client does: its server
    # reads a present "version": null as version None, which no endpoint serves.
    if namespace is not None:
        message["namespace"] = namespace
    if version is not None:
        message["version"] = version
    message["_unique_id"] = new_id()
    if msg_id is not None:
        message["_msg_id"] = msg_id
        message["_reply_q"] = reply_q
        # NOTE: oslo.messaging servers treat a non-null _timeout as a request
        # for periodic "still working" replies, so leveret leaves it null and
        # carries the deadline in the broker message's expiration instead.
        message["_timeout"] = None
    if stream:
        message["_leveret_stream"] = True
    pack_context(context, message)
    return wrap(message, max_bytes)


def encode_cancel(msg_id: str, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> bytes:
    return wrap({"_leveret_cancel": msg_id, "_unique_id": new_id()}, max_bytes)


def _optional_text(message: Mapping[str, Any], key: str) -> str | None:
    value = message.get(key)
    if value is not None and not isinstance(value, str):
        raise MalformedMessage(f"field {key} is not text: {value!r}")
    return value


def _optional_number(message: Mapping[str, Any], key: str) -> float | None:
    value = message.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def decode_request(body: bytes | str) -> Request | Cancel:
    """Decode a request body, raising :class:`MalformedMessage` if invalid."""
    message = unwrap(body)
    cancel = message.get("_leveret_cancel")
    if isinstance(cancel, str):
        return Cancel(cancel)
    method = message.get("method")
    if not isinstance(method, str) or not method:
        raise MalformedMessage("request has no method")
    args = message.get("args") or {}
    if not isinstance(args, dict):
        raise MalformedMessage(f"request args is not an object: {args!r}")
    return Request(
        method=method,
        args=args,
        context=unpack_context(message),
        namespace=_optional_text(message, "namespace"),
        version=_optional_text(message, "version"),
        unique_id=_optional_text(message, "_unique_id"),
        msg_id=_optional_text(message, "_msg_id"),
        reply_q=_optional_text(message, "_reply_q"),
        stream=message.get("_leveret_stream") is True,
        call_monitor_timeout=_optional_number(message, "_timeout"),
    )


def encode_reply(
    msg_id: str,
    result: Any = None,
    failure: str | None = None,
    *,
    ending: bool = True,
    stream_server: str | None = None,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> bytes:
    """Encode one reply; *stream_server* marks it as part of a streamed reply."""
    message: dict[str, Any] = {
        "result": result,
        "failure": failure,
        "ending": ending,
        "_msg_id": msg_id,
        "_unique_id": new_id(),
    }
    if stream_server is not None:
        message["_leveret_stream"] = True
        message["_leveret_server"] = stream_server
    return wrap(message, max_bytes)


def decode_reply(body: bytes | str) -> Reply:
    """Decode a reply body, raising :class:`MalformedMessage` if invalid."""
    message = unwrap(body)
    msg_id = message.get("_msg_id")
    if not isinstance(msg_id, str):
        raise MalformedMessage("reply has no _msg_id")
    failure = message.get("failure")
    if failure is not None and not isinstance(failure, str):
        failure = _values.dumps_text(failure)
    return Reply(
        msg_id=msg_id,
        result=message.get("result"),
        failure=failure,
        ending=bool(message.get("ending", True)),
        stream=message.get("_leveret_stream") is True,
        server=_optional_text(message, "_leveret_server"),
    )
