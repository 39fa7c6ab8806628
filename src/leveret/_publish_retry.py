"""Publishing a notification again after a failed attempt.

``retry`` counts retries as oslo.messaging does: None means retry until the
send's ``timeout``, 0 means one attempt only, and N means at most N retries
(N + 1 attempts). Unlike oslo.messaging, where ``retry=None`` can block
forever while the broker is down, every send here ends within ``timeout``
seconds, retries and waits included. An attempt fails when the connection
drops or when it has not completed within ``attempt_timeout`` seconds, the
wait for a (re)connection to the broker included. Between attempts the
sender sleeps for an exponential backoff.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import NoReturn

from ._checks import check_seconds
from ._errors import (
    AccessRefused,
    ConfigurationError,
    ConnectionLost,
    MessagingTimeout,
    TransportClosed,
    TransportError,
)

__all__ = [
    "DEFAULT_ATTEMPT_TIMEOUT",
    "DEFAULT_SEND_TIMEOUT",
    "RetryPolicy",
    "send_with_retry",
]

logger = logging.getLogger("leveret.notify")

DEFAULT_SEND_TIMEOUT = 30.0  # seconds one notification may take, retries included
DEFAULT_ATTEMPT_TIMEOUT = 10.0  # seconds one attempt may take, connecting included
RETRY_DELAY_FIRST = 0.5  # seconds before the first retry
RETRY_DELAY_MAX = 5.0  # seconds between two attempts, at most


@dataclasses.dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long a notifier tries to publish one notification."""

    retry: int | None = None
    timeout: float = DEFAULT_SEND_TIMEOUT
    attempt_timeout: float = DEFAULT_ATTEMPT_TIMEOUT

    def __post_init__(self) -> None:
        retry = self.retry
        if retry is not None and (
            isinstance(retry, bool) or not isinstance(retry, int) or retry < -1
        ):
            raise ConfigurationError(
                f"invalid retry {retry!r}: expected None (retry until the "
                "timeout), 0 (no retry) or a number of retries"
            )
        check_seconds("timeout", self.timeout)
        check_seconds("attempt_timeout", self.attempt_timeout)

    @property
    def max_retries(self) -> int | None:
        """Retries allowed, or None for as many as fit in ``timeout``.

        -1 means None, as in oslo.messaging's ``retry`` option.
        """
        return None if self.retry is None or self.retry == -1 else self.retry


def retry_delay(retries_done: int) -> float:
    """Return the seconds to sleep before retry number *retries_done* + 1."""
    return min(RETRY_DELAY_MAX, RETRY_DELAY_FIRST * 2.0**retries_done)


async def send_with_retry(
    send: Callable[[], Awaitable[None]],
    policy: RetryPolicy,
    description: str,
    connection_note: Callable[[], str],
) -> None:
    """Await ``send()`` until it succeeds, as *policy* allows.

    Raises :class:`~leveret.MessagingTimeout` when the last attempt timed out
    or ``policy.timeout`` ran out, :class:`~leveret.ConnectionLost` when the
    last attempt failed on the connection, and :class:`~leveret.TransportClosed`
    and :class:`~leveret.AccessRefused` at once. *description* names the
    notification in errors and log lines; ``connection_note()`` is appended
    to the error of an attempt that timed out.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + policy.timeout
    max_retries = policy.max_retries
    retries = 0
    while True:
        remaining = deadline - loop.time()
        try:
            async with asyncio.timeout(min(policy.attempt_timeout, remaining)):
                await send()
            return
        except (TransportClosed, AccessRefused):
            raise
        except TransportError as exc:
            error: Exception = exc
        except TimeoutError:
            error = MessagingTimeout(
                f"attempt timed out after {min(policy.attempt_timeout, remaining):g} s"
                f"{connection_note()}"
            )
        attempts = retries + 1
        if max_retries is not None and retries >= max_retries:
            _raise_failure(description, attempts, error)
        delay = retry_delay(retries)
        if loop.time() + delay >= deadline:
            _raise_failure(
                description,
                attempts,
                MessagingTimeout(f"timeout of {policy.timeout:g} s reached: {error}"),
            )
        logger.warning(
            "notification.retry %s attempt=%d error=%s retry_in=%.2fs",
            description,
            attempts,
            error,
            delay,
        )
        await asyncio.sleep(delay)
        retries += 1


def _raise_failure(description: str, attempts: int, error: Exception) -> NoReturn:
    message = f"could not send notification {description} in {attempts} attempt(s)"
    if isinstance(error, ConnectionLost):
        raise ConnectionLost(f"{message}: {error}") from error
    if isinstance(error, MessagingTimeout):
        raise MessagingTimeout(
            f"{message}: {error}; a copy may still arrive from each attempt "
            "that timed out"
        ) from None
    raise error
