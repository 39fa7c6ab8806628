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
    "check_message_bytes",
    "check_seconds",
]

MAX_PREFETCH = 65535  # the largest prefetch count AMQP can carry


def check_seconds(name: str, value: object) -> float:
    """Return *value* as float seconds; raise unless finite and above 0."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(f"invalid {name} {value!r}: expected seconds")
    try:
        seconds = float(value)
    except OverflowError:
        seconds = math.inf
    if not 0 < seconds < math.inf:
        raise ConfigurationError(
            f"invalid {name} {value!r}: must be a finite number above 0 s"
        )
    return seconds


def check_message_bytes(value: object) -> int:
    """Return *value*, a message size limit; raise unless a whole number above 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(
            f"invalid max_message_bytes {value!r}: expected a whole number above 0"
        )
    return value


def _check_whole(name: str, value: object, lowest: int, highest: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidTarget(f"invalid {name} {value!r}: expected a whole number")
    if not lowest <= value <= highest:
        upper = "" if highest == math.inf else f" to {highest}"
        more = " or more" if not upper else ""
        raise InvalidTarget(f"invalid {name} {value!r}: must be {lowest}{upper}{more}")


def check_consumer_options(
    max_workers: object,
    max_redeliveries: object,
    grace_period: object,
    prefetch: object,
) -> None:
    """Raise InvalidTarget for a server or listener option out of range."""
    _check_whole("max_workers", max_workers, 1, math.inf)
    _check_whole("max_redeliveries", max_redeliveries, 0, math.inf)
    _check_whole("prefetch", prefetch, 1, MAX_PREFETCH)
    if isinstance(grace_period, bool) or not isinstance(grace_period, int | float):
        seconds = math.nan
    else:
        try:
            seconds = float(grace_period)
        except OverflowError:
            seconds = math.nan
    if not 0 <= seconds <= math.inf:
        raise InvalidTarget(
            f"invalid grace_period {grace_period!r}: expected seconds, 0 or more"
        )
