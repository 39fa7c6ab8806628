"""Parsing of the ``KEY=VALUE`` arguments of ``call`` and ``cast``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click

__all__ = ["parse_arguments", "parse_value"]


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON, and the wire encoding would turn them
    # into null, so such a VALUE is kept as text.
    raise ValueError(f"{name} is not a JSON value")


def parse_value(text: str) -> Any:
    """Return *text* decoded as JSON when it is valid JSON, else *text* itself."""
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError:
        return text


def parse_arguments(assignments: Sequence[str]) -> dict[str, Any]:
    """Build a method's keyword arguments from ``KEY=VALUE`` strings.

    Raises :class:`click.BadParameter` (a usage error) for a missing ``=``, a
    KEY that is not a Python identifier, or a KEY given twice.
    """
    arguments: dict[str, Any] = {}
    for assignment in assignments:
        key, separator, text = assignment.partition("=")
        if not separator:
            raise click.BadParameter(
                f"missing '=' in {assignment!r}: write arguments as KEY=VALUE"
            )
        if not key.isidentifier():
            raise click.BadParameter(
                f"invalid argument name {key!r} in {assignment!r}: "
                "KEY must be a Python identifier"
            )
        if key in arguments:
            raise click.BadParameter(f"argument {key!r} is given more than once")
        arguments[key] = parse_value(text)
    return arguments
