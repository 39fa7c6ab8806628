"""Serialization of exceptions raised by endpoint methods.

The ``failure`` field of a reply is the JSON text of::

    {"class": "ValueError", "module": "builtins", "message": "...",
     "tb": ["Traceback ...", ...], "args": [...], "kwargs": {...}}

which is the form oslo.messaging sends and reads. The caller rebuilds the same
type with the same ``args`` and ``kwargs`` only for built-in exception types,
leveret's own, and types from modules on its ``allowed_remote_exmods`` list.
Any other type, and any type that cannot be rebuilt from its arguments,
becomes :class:`~leveret.RemoteError`. The remote traceback is attached to the
rebuilt exception as a note.
"""

from __future__ import annotations

import builtins
import importlib
import re
import traceback
from collections.abc import Collection
from typing import Any

from . import _errors, _values
from ._errors import NoSuchMethod, RemoteError, UnsupportedVersion

# Exceptions of oslo.messaging's dispatcher that mean the same as leveret's.
_OSLO_DISPATCHER = "oslo_messaging.rpc.dispatcher"
_LEVERET_MODULES = frozenset({"leveret", "leveret._errors"})
# The suffix oslo.messaging appends to the class name of a rebuilt remote
# exception; a chained remote error arrives with it.
_REMOTE_SUFFIX = "_Remote"
# oslo.messaging 18.x's dispatcher errors pass their whole message as the only
# argument (oslo_messaging/rpc/dispatcher.py), so the method and version are
# parsed back from the message.
_OSLO_NO_SUCH_METHOD = re.compile(
    r"Endpoint does not support RPC method (.*)", re.DOTALL
)
_OSLO_UNSUPPORTED_VERSION = re.compile(
    r"Endpoint does not support RPC version (.*?)(?:\. Attempted method: (.*))?",
    re.DOTALL,
)


def _json_safe(values: Any, fallback: Any) -> Any:
    try:
        _values.dumps(values)
    except _errors.SerializationError:
        return fallback
    return values


def serialize_exception(exc: BaseException) -> str:
    """Return the ``failure`` JSON text for *exc*, raised by an endpoint method."""
    klass = type(exc)
    name = klass.__name__.removesuffix(_REMOTE_SUFFIX)
    kwargs = getattr(exc, "kwargs", None)
    failure = {
        "class": name,
        "module": klass.__module__,
        "message": str(exc),
        "tb": traceback.format_exception(exc),
        "args": _json_safe(list(exc.args), [str(arg) for arg in exc.args]),
        "kwargs": _json_safe(kwargs, {}) if isinstance(kwargs, dict) else {},
    }
    return _values.dumps_text(failure)


def serialize_failure(class_name: str, message: str) -> str:
    """Return ``failure`` text that every caller turns into a RemoteError.

    Used for server-side faults with no exception type of the caller's to map
    to, such as a result that cannot be encoded.
    """
    failure = {
        "class": class_name,
        "module": "leveret.server",
        "message": message,
        "tb": [],
        "args": [message],
        "kwargs": {},
    }
    return _values.dumps_text(failure)


def _find_class(module: str, name: str, allowed: Collection[str]) -> type | None:
    if module == _OSLO_DISPATCHER and name in ("NoSuchMethod", "UnsupportedVersion"):
        module = "leveret"
    if module == "builtins":
        found = getattr(builtins, name, None)
    elif module in _LEVERET_MODULES:
        found = getattr(_errors, name, None)
    elif module in allowed:
        try:
            found = getattr(importlib.import_module(module), name, None)
        except ImportError:
            return None
    else:
        return None
    if isinstance(found, type) and issubclass(found, Exception):
        return found
    return None


def _from_oslo_dispatcher(module: str, name: str, message: str) -> Exception | None:
    """Rebuild oslo's NoSuchMethod or UnsupportedVersion as leveret's type."""
    if module != _OSLO_DISPATCHER:
        return None
    if name == "NoSuchMethod":
        match = _OSLO_NO_SUCH_METHOD.fullmatch(message)
        if match is not None:
            return NoSuchMethod(match.group(1))
    elif name == "UnsupportedVersion":
        match = _OSLO_UNSUPPORTED_VERSION.fullmatch(message)
        if match is not None:
            return UnsupportedVersion(match.group(1), match.group(2))
    return None


def deserialize_failure(failure_text: str, allowed: Collection[str]) -> Exception:
    """Rebuild the exception a ``failure`` field describes."""
    try:
        failure = _values.loads(failure_text)
    except ValueError:
        return RemoteError("Unknown", failure_text)
    if not isinstance(failure, dict):
        return RemoteError("Unknown", str(failure))

    name = str(failure.get("class", "Unknown")).removesuffix(_REMOTE_SUFFIX)
    message = str(failure.get("message", ""))
    trace = failure.get("tb") or []
    trace_text = "".join(trace) if isinstance(trace, list) else str(trace)
    args = failure.get("args") or []
    kwargs = failure.get("kwargs") or {}

    module = str(failure.get("module", ""))
    exc = _from_oslo_dispatcher(module, name, message)
    if exc is None:
        klass = _find_class(module, name, allowed)
        if klass is None or not isinstance(args, list) or not isinstance(kwargs, dict):
            return RemoteError(name, message, trace_text)
        try:
            exc = klass(*args, **kwargs)
        except Exception:  # any constructor signature mismatch
            return RemoteError(name, message, trace_text)
    if trace_text:
        exc.add_note(f"Remote traceback:\n{trace_text.rstrip()}")
    return exc
