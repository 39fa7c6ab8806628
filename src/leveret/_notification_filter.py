"""``NotificationFilter``: which notifications an endpoint receives.

An endpoint with a ``filter_rule`` attribute receives only the notifications
its filter matches. The semantics are oslo.messaging's (18.3):

- each pattern is applied with :func:`re.match`, anchored at the start only
  (end it with ``$`` for a full match);
- ``context``, ``metadata`` and ``payload`` map keys to patterns. Every key
  must be present, and its value must be text that matches. A number, None
  or a missing key is a mismatch, and so is a payload that is not an object;
- a None ``publisher_id`` or ``event_type`` is a mismatch when a pattern for
  it is given;
- all given patterns must match.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ._errors import ConfigurationError

__all__ = ["NotificationFilter"]


def _compile(name: str, pattern: str) -> re.Pattern[str]:
    if not isinstance(pattern, str):
        raise ConfigurationError(
            f"invalid {name} pattern {pattern!r}: expected a regular expression"
        )
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ConfigurationError(f"invalid {name} pattern {pattern!r}: {exc}") from None


def _compile_fields(
    name: str, patterns: Mapping[str, str] | None
) -> dict[str, re.Pattern[str]]:
    if patterns is None:
        return {}
    if not isinstance(patterns, Mapping):
        raise ConfigurationError(
            f"invalid {name} filter {patterns!r}: expected a dict of key: pattern"
        )
    return {key: _compile(f"{name}[{key!r}]", value) for key, value in patterns.items()}


def _text_matches(pattern: re.Pattern[str] | None, value: Any) -> bool:
    if pattern is None:
        return True
    return isinstance(value, str) and pattern.match(value) is not None


def _fields_match(patterns: dict[str, re.Pattern[str]], values: Any) -> bool:
    if not patterns:
        return True
    if not isinstance(values, Mapping):
        return False
    return all(
        key in values and _text_matches(pattern, values[key])
        for key, pattern in patterns.items()
    )


class NotificationFilter:
    """Patterns a notification must match to reach an endpoint.

    Set it as the endpoint's ``filter_rule`` attribute::

        class Endpoint:
            filter_rule = leveret.NotificationFilter(
                event_type=r"^compute\\.instance\\.", context={"project_id": "^p1$"}
            )

    Raises :class:`~leveret.ConfigurationError` for a pattern that does not
    compile.
    """

    def __init__(
        self,
        *,
        event_type: str | None = None,
        publisher_id: str | None = None,
        context: Mapping[str, str] | None = None,
        metadata: Mapping[str, str] | None = None,
        payload: Mapping[str, str] | None = None,
    ) -> None:
        self._event_type = (
            None if event_type is None else _compile("event_type", event_type)
        )
        self._publisher_id = (
            None if publisher_id is None else _compile("publisher_id", publisher_id)
        )
        self._context = _compile_fields("context", context)
        self._metadata = _compile_fields("metadata", metadata)
        self._payload = _compile_fields("payload", payload)

    def match(
        self,
        context: Mapping[str, Any],
        publisher_id: Any,
        event_type: Any,
        metadata: Mapping[str, Any],
        payload: Any,
    ) -> bool:
        """Tell whether a notification passes. The arguments are oslo's, in order.

        *context* is the received context as a dict of ``_context_`` fields.
        """
        return (
            _text_matches(self._publisher_id, publisher_id)
            and _text_matches(self._event_type, event_type)
            and _fields_match(self._context, context)
            and _fields_match(self._metadata, metadata)
            and _fields_match(self._payload, payload)
        )

    def __repr__(self) -> str:
        parts = []
        if self._event_type is not None:
            parts.append(f"event_type={self._event_type.pattern!r}")
        if self._publisher_id is not None:
            parts.append(f"publisher_id={self._publisher_id.pattern!r}")
        for name in ("context", "metadata", "payload"):
            fields: dict[str, re.Pattern[str]] = getattr(self, f"_{name}")
            if fields:
                shown = {key: pattern.pattern for key, pattern in fields.items()}
                parts.append(f"{name}={shown!r}")
        return f"NotificationFilter({', '.join(parts)})"
