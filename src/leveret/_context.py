"""Request context: who asked, for which project, under which request id.

A client sends the context bound with :func:`bind_context` (or given to
``prepare(context=...)``) with each request. The server binds the received
context while the endpoint method runs, so :func:`get_context` and log records
show that request's context and never another one's. The binding lives in a
:class:`contextvars.ContextVar`, which gives each thread and each asyncio task
its own value.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from ._errors import ConfigurationError

__all__ = [
    "ContextLogFilter",
    "RequestContext",
    "bind_context",
    "get_context",
]

_CONTEXT_PREFIX = "_context_"

_current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "leveret_request_context", default=None
)


def new_request_id() -> str:
    """Return a fresh request id in the ``req-<uuid4>`` form OpenStack uses."""
    return f"req-{uuid.uuid4()}"


class RequestContext:
    """The caller's identity and request id, sent along with every request.

    Keys other than ``user_id``, ``project_id`` and ``request_id`` are kept in
    ``extra`` and travel unchanged. They must be JSON-serializable.
    """

    __slots__ = ("_request_id", "extra", "project_id", "user_id")

    def __init__(
        self,
        user_id: str | None = None,
        project_id: str | None = None,
        request_id: str | None = None,
        **extra: Any,
    ) -> None:
        self.user_id = user_id
        self.project_id = project_id
        # Generated on first use: a server builds a context for every
        # request, and most of those that arrive without one never read it.
        self._request_id = request_id or None
        self.extra: dict[str, Any] = extra

    @property
    def request_id(self) -> str:
        """The request id, ``req-<uuid4>`` unless one was given."""
        if self._request_id is None:
            self._request_id = new_request_id()
        return self._request_id

    @request_id.setter
    def request_id(self, value: str) -> None:
        self._request_id = value

    def to_dict(self) -> dict[str, Any]:
        """Return the context as a flat dict of JSON-serializable values.

        ``user`` repeats ``user_id`` because oslo.context's ``from_dict``
        (6.x) reads the user id from that key.
        """
        values = dict(self.extra)
        values["user"] = self.user_id
        values["user_id"] = self.user_id
        values["project_id"] = self.project_id
        values["request_id"] = self.request_id
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> RequestContext:
        """Build a context from :meth:`to_dict` output or an oslo.context dict.

        oslo.context's ``user`` and older ``tenant`` keys stand in for a
        missing ``user_id`` and ``project_id``. ``tenant`` is also kept in
        ``extra``, and :meth:`to_dict` writes ``user`` again.
        """
        extra = dict(values)
        user = extra.pop("user", None)
        user_id = extra.pop("user_id", None) or user
        project_id = extra.pop("project_id", None) or values.get("tenant")
        request_id = extra.pop("request_id", None)
        # extra is set after construction because, passed as keyword arguments,
        # a received key such as "self" makes the constructor raise TypeError.
        context = cls(user_id, project_id, request_id)
        context.extra = extra
        return context

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RequestContext):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"RequestContext(user_id={self.user_id!r}, "
            f"project_id={self.project_id!r}, request_id={self.request_id!r})"
        )


def get_context() -> RequestContext | None:
    """Return the context bound in this thread or task, or None."""
    return _current.get()


@contextlib.contextmanager
def bind_context(context: RequestContext | None) -> Iterator[RequestContext | None]:
    """Bind *context* for the ``with`` block in this thread or task.

    Clients send the bound context with each request unless their
    ``prepare(context=...)`` gave one.
    """
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


def set_current(context: RequestContext | None) -> contextvars.Token[Any]:
    return _current.set(context)


def reset_current(token: contextvars.Token[Any]) -> None:
    _current.reset(token)


def pack_context(context: Mapping[str, Any], message: dict[str, Any]) -> None:
    """Add *context* to *message* as ``_context_<key>`` fields (the wire form)."""
    for key, value in context.items():
        message[_CONTEXT_PREFIX + key] = value


def unpack_context(message: Mapping[str, Any]) -> dict[str, Any]:
    """Collect the ``_context_<key>`` fields of a received message."""
    start = len(_CONTEXT_PREFIX)
    return {
        key[start:]: value
        for key, value in message.items()
        if key.startswith(_CONTEXT_PREFIX)
    }


class ContextLogFilter(logging.Filter):
    """Add the bound context's ids to every log record that passes through.

    Records get ``request_id``, ``user_id`` and ``project_id`` attributes
    (``"-"`` when no context is bound), for format strings such as
    ``"%(request_id)s %(user_id)s %(message)s"``. Attach it to a handler.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        context = _current.get()
        if context is None:
            record.request_id = record.user_id = record.project_id = "-"
        else:
            record.request_id = context.request_id
            record.user_id = context.user_id or "-"
            record.project_id = context.project_id or "-"
        return True


def as_context(value: object) -> RequestContext | None:
    """Return *value* as a RequestContext; a dict is read with ``from_dict``.

    Raises ConfigurationError for any other type, or a dict whose keys are
    not all text.
    """
    if value is None or isinstance(value, RequestContext):
        return value
    if isinstance(value, Mapping) and all(isinstance(key, str) for key in value):
        return RequestContext.from_dict(value)
    raise ConfigurationError(
        f"invalid context {value!r}: expected a leveret.RequestContext or a dict "
        "with text keys"
    )
