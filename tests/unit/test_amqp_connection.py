"""The connection supervisor's handling of brokers that reject the login."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

import leveret
from leveret.transports import _amqp_connection
from leveret.transports._amqp_connection import ConnectionSupervisor
from leveret.transports._amqp_protocol import Connection, ConnectionClosed
from leveret.transports._amqp_url import parse_rabbitmq_url

REFUSED = ConnectionClosed(403, "ACCESS_REFUSED - Login was refused")
NO_VHOST = ConnectionClosed(530, "NOT_ALLOWED - vhost missing not found")


async def _nothing(connection: Connection) -> None:
    return None


def _supervisor(url: str) -> ConnectionSupervisor:
    return ConnectionSupervisor(parse_rabbitmq_url(url), _nothing, None)


@pytest.fixture
def attempts(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[BaseException]]:
    """Errors that connection attempts raise, in turn, repeating the last one."""
    errors: list[BaseException] = []
    tried = 0

    async def fake_open(host: str, port: int, **options: Any) -> Connection:
        nonlocal tried
        error = errors[min(tried, len(errors) - 1)]
        tried += 1
        raise error

    monkeypatch.setattr(_amqp_connection, "open_connection", fake_open)
    yield errors


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 5))


def test_rejected_login_raises_access_refused(attempts: list[BaseException]) -> None:
    attempts.append(REFUSED)

    async def scenario() -> None:
        supervisor = _supervisor("amqp://guest:hunter2@127.0.0.1:1/")
        with pytest.raises(leveret.AccessRefused) as caught:
            await asyncio.wait_for(supervisor.ready(), 1)
        await supervisor.close()

        message = str(caught.value)
        assert "403 ACCESS_REFUSED" in message
        assert "127.0.0.1:1" in message
        assert "hunter2" not in message
        assert "password" in message

    run(scenario)


def test_missing_virtual_host_raises_access_refused(
    attempts: list[BaseException],
) -> None:
    attempts.append(NO_VHOST)

    async def scenario() -> None:
        supervisor = _supervisor("amqp://guest:guest@127.0.0.1:1/missing")
        with pytest.raises(leveret.AccessRefused, match="530 NOT_ALLOWED"):
            await asyncio.wait_for(supervisor.ready(), 1)
        await supervisor.close()

    run(scenario)


def test_access_refused_is_a_permission_error() -> None:
    assert issubclass(leveret.AccessRefused, leveret.TransportError)
    assert issubclass(leveret.AccessRefused, PermissionError)


def test_one_of_two_brokers_rejecting_keeps_waiting(
    attempts: list[BaseException],
) -> None:
    # Refused on the first broker, unreachable on the second, and so on.
    attempts.extend([REFUSED, OSError("connection refused")] * 20)

    async def scenario() -> None:
        supervisor = _supervisor(
            "amqp://guest:wrong@127.0.0.1:1,guest:guest@127.0.0.1:2/"
        )
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(supervisor.ready(), 0.5)
        await supervisor.close()

    run(scenario)


def test_every_broker_rejecting_raises(attempts: list[BaseException]) -> None:
    attempts.append(REFUSED)

    async def scenario() -> None:
        supervisor = _supervisor(
            "amqp://guest:wrong@127.0.0.1:1,guest:wrong@127.0.0.1:2/"
        )
        with pytest.raises(leveret.AccessRefused) as caught:
            await asyncio.wait_for(supervisor.ready(), 2)
        await supervisor.close()

        assert "127.0.0.1:1" in str(caught.value)
        assert "127.0.0.1:2" in str(caught.value)

    run(scenario)


def test_rejection_after_a_connection_keeps_waiting(
    attempts: list[BaseException],
) -> None:
    attempts.append(REFUSED)

    async def scenario() -> None:
        supervisor = _supervisor("amqp://guest:guest@127.0.0.1:1/")
        # As if a connection had opened and dropped since.
        supervisor.connections_opened = 1
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(supervisor.ready(), 0.5)
        await supervisor.close()

    run(scenario)


def test_rejection_logged_at_error(
    attempts: list[BaseException], caplog: pytest.LogCaptureFixture
) -> None:
    attempts.append(REFUSED)
    caplog.set_level(logging.DEBUG, logger="leveret.transport.rabbitmq")

    async def scenario() -> None:
        supervisor = _supervisor("amqp://guest:hunter2@127.0.0.1:1/")
        with pytest.raises(leveret.AccessRefused):
            await asyncio.wait_for(supervisor.ready(), 1)
        await supervisor.close()

    run(scenario)

    rejected = [r for r in caplog.records if "connection.rejected" in r.getMessage()]
    assert rejected
    assert rejected[0].levelno == logging.ERROR
    assert "hunter2" not in rejected[0].getMessage()


def test_other_failures_logged_at_warning(
    attempts: list[BaseException], caplog: pytest.LogCaptureFixture
) -> None:
    attempts.append(OSError("connection refused"))
    caplog.set_level(logging.DEBUG, logger="leveret.transport.rabbitmq")

    async def scenario() -> None:
        supervisor = _supervisor("amqp://guest:guest@127.0.0.1:1/")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(supervisor.ready(), 0.3)
        await supervisor.close()

    run(scenario)

    failed = [r for r in caplog.records if "connection.failed" in r.getMessage()]
    assert failed
    assert {r.levelno for r in failed} == {logging.WARNING}


def test_backoff_grows_then_stays_capped() -> None:
    for attempt in range(40):
        ceiling = min(10.0, 0.2 * 2**attempt)
        delays = [_amqp_connection.backoff_delay(attempt) for _ in range(200)]
        assert min(delays) >= 0
        assert max(delays) <= ceiling
    # Full jitter: spread over the whole range, not bunched at the cap.
    capped = [_amqp_connection.backoff_delay(30) for _ in range(2000)]
    assert min(capped) < 2.0
    assert max(capped) > 8.0
