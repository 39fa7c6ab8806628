"""Checks of the numeric options of clients, servers, listeners and notifiers.

Each raises at construction and names the option and its value. Without
them a bad value fails later, far from its cause: ``struct.error`` at
start, ``OverflowError`` at the first call, or a wait that never ends.
"""

from __future__ import annotations

import math

from ._errors import ConfigurationError, InvalidTarget

__all__ = [
    "MAX_PREFETCH",
    "check_consumer_options",
    "check_count",
    "check_message_bytes",
    "check_seconds",
]

MAX_PREFETCH = 65535  # the largest prefetch count AMQP can carry


def _as_seconds(value: object) -> float:
    """Return *value* as float seconds; NaN for a non-number or a huge int."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    try:
        return float(value)
    except OverflowError:
        return math.nan


def check_seconds(
    name: str, value: object, error: type[ConfigurationError] = ConfigurationError
) -> float:
    """Return *value* as float seconds; raise *error* unless finite and above 0."""
    seconds = _as_seconds(value)
    if not 0 < seconds < math.inf:
        raise error(
            f"invalid {name} {value!r}: expected a finite number of seconds above 0"
        )
    return seconds


def check_message_bytes(value: object) -> int:
    """Return *value*, a message size limit; raise unless a whole number above 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(
            f"invalid max_message_bytes {value!r}: expected a whole number above 0"
        )
    return value


def check_count(
    name: str, value: object, lowest: int, highest: float = math.inf
) -> None:
    """Raise InvalidTarget unless *value* is a whole number in the range."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not lowest <= value <= highest
    ):
        allowed = (
            f"{lowest} or more" if highest == math.inf else f"{lowest} to {highest}"
        )
        raise InvalidTarget(
            f"invalid {name} {value!r}: expected a whole number, {allowed}"
        )


def check_consumer_options(
    max_workers: object,
    max_redeliveries: object,
    grace_period: object,
    prefetch: object,
) -> None:
    """Raise InvalidTarget for a server or listener option out of range."""
    check_count("max_workers", max_workers, 1)
    check_count("max_redeliveries", max_redeliveries, 0)
    check_count("prefetch", prefetch, 1, MAX_PREFETCH)
    # Unlike a timeout, a grace period may be 0 or infinite.
    if not 0 <= _as_seconds(grace_period) <= math.inf:
        raise InvalidTarget(
            f"invalid grace_period {grace_period!r}: expected seconds, 0 or more"
        )
