"""JSON encoding of argument, result and payload values.

JSON carries fewer types than Python, so some values change type on the way:

=====================  ==================================================
Python value           arrives as
=====================  ==================================================
``datetime``           ISO 8601 text, e.g. ``"2026-01-02T03:04:05.000006"``
``date``, ``time``     ISO 8601 text
``uuid.UUID``          its canonical text form
``bytes``              text, decoded as UTF-8 (other bytes are rejected)
``set``, ``frozenset``  a list
``tuple``              a list
dataclass              a dict of its fields
``enum.Enum``          its value
=====================  ==================================================

Floats NaN and infinity arrive as ``null`` (JSON has no such numbers), and
integers outside the signed and unsigned 64-bit ranges raise
:class:`~leveret.SerializationError`, as does any other type. Nothing is ever
unpickled: decoding only produces dicts, lists, text, numbers, booleans and None.
"""

from __future__ import annotations

from typing import Any

import orjson

from ._errors import SerializationError

_ENCODE_OPTIONS = orjson.OPT_NON_STR_KEYS


def _encode_extra(value: Any) -> Any:
    """Convert the types orjson does not handle itself (its ``default`` hook)."""
    if isinstance(value, (set, frozenset)):
        return list(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise TypeError(
                "bytes that are not UTF-8 cannot be sent; encode them as base64 text"
            ) from None
    raise TypeError(f"type {type(value).__qualname__} is not JSON serializable")


def dumps(value: Any) -> bytes:
    """Encode *value* as JSON bytes, or raise :class:`SerializationError`."""
    try:
        return orjson.dumps(value, default=_encode_extra, option=_ENCODE_OPTIONS)
    except orjson.JSONEncodeError as exc:
        # orjson replaces the message of an error raised by _encode_extra with
        # a generic one and keeps the original as __cause__.
        raise SerializationError(str(exc.__cause__ or exc)) from exc


def dumps_text(value: Any) -> str:
    """Encode *value* as JSON text, or raise :class:`SerializationError`."""
    return dumps(value).decode("utf-8")


def loads(data: bytes | str) -> Any:
    """Decode JSON bytes or text; raise ``ValueError`` when it is not JSON."""
    return orjson.loads(data)
