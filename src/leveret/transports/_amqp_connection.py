"""A RabbitMQ connection that reconnects by itself.

One supervisor task per transport opens a connection to the first broker that
accepts it (trying the URL's brokers in turn), runs the transport's
``on_connected`` callback to declare every exchange, queue, binding and
consumer again, then waits for the connection to close. When it does, the
supervisor sleeps an exponential backoff with full jitter, capped, and
starts over. Every failed attempt is logged at WARNING with the broker's
address (password masked) and the error, or at ERROR when the broker rejected
the login or the virtual host, which an operator has to fix.

Until the first connection opens, once every broker of the URL has rejected
the login, the callers that wait for a connection fail at once with
:class:`~leveret.AccessRefused` instead of at their deadline. The supervisor
keeps trying in the background all the same, so a user or virtual host
created a moment later still gets used.

The connection runs on the transport's own event loop thread, so its
heartbeats keep flowing whatever the application does with its threads or
its own event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
from collections.abc import Awaitable, Callable

from .._errors import AccessRefused, ConnectionLost, TransportClosed
from ._amqp_protocol import (
    ACCESS_REFUSED,
    NOT_ALLOWED,
    Connection,
    ConnectionClosed,
    open_connection,
)
from ._amqp_url import BrokerAddress, RabbitMQOptions

logger = logging.getLogger("leveret.transport.rabbitmq")

BACKOFF_FIRST = 0.2  # seconds before the first reconnect attempt, at most
# Seconds between attempts, at most. RabbitMQ takes seconds to restart, and
# with full jitter a client reconnects about half a cap after it is back.
BACKOFF_CAP = 10.0

# Reply codes of a broker that rejects the login or the virtual host:
# 403 ACCESS_REFUSED (bad user or password, or no access to the virtual host)
# and 530 NOT_ALLOWED (no such virtual host).
_ACCESS_REFUSED_CODES = frozenset({ACCESS_REFUSED, NOT_ALLOWED})


def backoff_delay(attempt: int) -> float:
    """Return a full-jitter exponential delay in seconds for *attempt* (0-based)."""
    ceiling = min(BACKOFF_CAP, BACKOFF_FIRST * (2**attempt))
    return random.uniform(0, ceiling)


class ConnectionSupervisor:
    """Keep one connection open; call *on_connected* after each (re)connect."""

    def __init__(
        self,
        options: RabbitMQOptions,
        on_connected: Callable[[Connection], Awaitable[None]],
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        self._options = options
        self._ssl_context = ssl_context
        self._on_connected = on_connected
        self._ready = asyncio.Event()
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self.connection: Connection | None = None
        self.broker: BrokerAddress | None = None
        self.last_error: BaseException | None = None
        # The URL's brokers (by position) whose latest attempt was rejected,
        # with the broker's address and reason.
        self._rejected_by: dict[int, str] = {}
        self.connections_opened = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def ready(self) -> Connection:
        """Wait until a connection is open (callers bound the wait)."""
        self.start()
        while True:
            if self._closed:
                raise TransportClosed("the RabbitMQ transport is closed")
            connection = self.connection
            if connection is not None and not connection.is_closed:
                return connection
            if self.connections_opened == 0 and self._all_rejected():
                raise AccessRefused(
                    f"the broker rejected the login: {self._rejections()}; check "
                    "the user name, password and virtual host in the URL"
                )
            # Nothing usable yet (or a closed connection that the supervisor
            # task has not seen): wait for its next change. Without the
            # clear, Event.wait would return at once and never let it run.
            self._ready.clear()
            await self._ready.wait()

    def _all_rejected(self) -> bool:
        return len(self._rejected_by) == len(self._options.brokers)

    def _rejections(self) -> str:
        return ", ".join(self._rejected_by.values())

    async def _run(self) -> None:
        attempt = 0
        brokers = self._options.brokers
        while not self._closed:
            broker = brokers[attempt % len(brokers)]
            try:
                connection = await self._connect(broker)
            except Exception as exc:  # any failure to connect is retried
                delay = backoff_delay(attempt)
                self._failed(attempt, exc, delay)
                attempt += 1
                await asyncio.sleep(delay)
                continue
            attempt = 0
            self._rejected_by.clear()
            await self._serve(connection, broker)

    def _failed(self, attempt: int, exc: Exception, delay: float) -> None:
        """Log a failed attempt and note whether the broker rejected the login."""
        self.last_error = exc
        position = attempt % len(self._options.brokers)
        address = self._options.brokers[position].masked()
        if (
            isinstance(exc, ConnectionClosed)
            and exc.reply_code in _ACCESS_REFUSED_CODES
        ):
            logger.error(
                "connection.rejected broker=%s attempt=%d error=%r retry_in=%.2fs; "
                "check the user name, password and virtual host",
                address,
                attempt + 1,
                exc,
                delay,
            )
            self._rejected_by[position] = f"{address} {exc}"
            self._ready.set()  # so that waiters check whether to raise
            return
        logger.warning(
            "connection.failed broker=%s attempt=%d error=%r retry_in=%.2fs",
            address,
            attempt + 1,
            exc,
            delay,
        )
        self._rejected_by.pop(position, None)

    async def _connect(self, broker: BrokerAddress) -> Connection:
        async with asyncio.timeout(self._options.connection_timeout):
            connection = await open_connection(
                broker.host,
                broker.port,
                username=broker.username,
                password=broker.password,
                virtual_host=broker.virtual_host,
                heartbeat=self._options.heartbeat,
                ssl_context=self._ssl_context if broker.scheme == "amqps" else None,
            )
            try:
                await self._on_connected(connection)
            except BaseException:
                await _close_quietly(connection)
                raise
        return connection

    async def _serve(self, connection: Connection, broker: BrokerAddress) -> None:
        self.connection = connection
        self.broker = broker
        self.connections_opened += 1
        self._ready.set()
        logger.info("connection.opened broker=%s", broker.masked())
        try:
            # Shielded: cancelling the supervisor must not cancel the future
            # that the connection settles when it closes.
            await asyncio.shield(connection.closing)
        except asyncio.CancelledError:
            raise  # the transport is closing: close() closes the connection
        except Exception as exc:  # the reason the connection closed
            self.last_error = exc
        self._ready.clear()
        self.connection = None
        if not self._closed:
            logger.warning(
                "connection.lost broker=%s error=%r; reconnecting",
                broker.masked(),
                self.last_error,
            )

    async def close(self) -> None:
        self._closed = True
        self._ready.set()  # wake waiters so that they see the transport closed
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.connection is not None:
            await _close_quietly(self.connection)
            self.connection = None


async def _close_quietly(connection: Connection) -> None:
    try:
        await connection.close()
    except Exception as exc:  # closing a broken connection can fail in many ways
        logger.debug("connection.close_failed error=%r", exc)


def lost(exc: BaseException) -> ConnectionLost:
    """Translate a connection or channel failure, once, at the boundary."""
    return ConnectionLost(f"RabbitMQ connection failed: {exc!r}")
