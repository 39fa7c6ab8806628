"""RPC servers: :class:`AsyncRPCServer` and its blocking twin :class:`RPCServer`.

A server of target ``Target(topic, server)`` consumes three addresses: the
topic's shared queue (any one server takes a request), the ``topic.server``
queue (requests for this server only) and the topic's fanout (casts to every
server). ``stop()`` cancels the consumers first, so no new request starts,
then waits up to ``grace_period`` seconds for requests in progress.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import socket
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import Self

from . import _envelope
from ._dispatcher import AccessPolicy, Dispatcher
from ._envelope import Cancel, MalformedMessage, Request
from ._errors import InvalidTarget, NoSuchMethod, TransportClosed, UnsupportedVersion
from ._execution import RequestExecution
from ._remote_errors import serialize_exception
from ._target import Target
from .transports.base import Address, IncomingMessage, Listener, Transport

__all__ = ["AsyncRPCServer", "RPCServer"]

logger = logging.getLogger("leveret.server")

DEFAULT_MAX_WORKERS = 64  # threads that run sync endpoint methods
DEFAULT_GRACE_PERIOD = 30.0  # seconds stop() waits for requests in progress
DEFAULT_PREFETCH = 64  # unacknowledged messages the broker may send ahead


class AsyncRPCServer:
    """Serve the public methods of *endpoints* to the clients of *target*.

    :param target: needs a topic; ``server`` names this server (default: the
        host name) and ``exchange`` overrides the transport's default.
    :param endpoints: objects whose methods are callable remotely.
    :param max_workers: threads that run sync endpoint methods.
    :param access_policy: ``"public"`` (every method whose name does not start
        with ``_``) or ``"exposed"`` (only those marked with ``@leveret.expose``).
    :param grace_period: seconds ``stop()`` lets requests in progress finish.
    :param prefetch: messages the broker may deliver before they are settled.
    """

    def __init__(
        self,
        transport: Transport,
        target: Target,
        endpoints: Sequence[object],
        *,
        max_workers: int = DEFAULT_MAX_WORKERS,
        access_policy: AccessPolicy = "public",
        grace_period: float = DEFAULT_GRACE_PERIOD,
        prefetch: int = DEFAULT_PREFETCH,
        max_message_bytes: int = _envelope.DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        if not isinstance(target, Target) or target.topic is None:
            raise InvalidTarget(f"a server's target needs a topic, got {target!r}")
        if target.fanout:
            raise InvalidTarget("a server's target cannot be fanout; it always is")
        if max_workers < 1:
            raise InvalidTarget(f"invalid max_workers {max_workers}: must be 1 or more")
        if grace_period < 0:
            raise InvalidTarget(f"invalid grace_period {grace_period}: must be >= 0 s")
        self.transport = transport
        self.target = target
        self.server_name = target.server or socket.gethostname()
        self.grace_period = grace_period
        self.prefetch = prefetch
        self._dispatcher = Dispatcher(endpoints, access_policy)
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers, thread_name_prefix=f"leveret-{target.topic}"
        )
        self._execution = RequestExecution(
            transport, self.server_name, self._executor, max_message_bytes
        )
        self._listener: Listener | None = None
        self._in_progress: set[asyncio.Task[None]] = set()
        self._stopped = threading.Event()
        self._stopped_async: asyncio.Event | None = None
        self._stopping = False

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"<{name} topic={self.target.topic} server={self.server_name}>"

    @property
    def addresses(self) -> list[Address]:
        exchange = self.target.exchange or self.transport.default_exchange
        topic = self.target.topic
        assert topic is not None
        return [
            Address(exchange, topic),
            Address(exchange, topic, server=self.server_name),
            Address(exchange, topic, fanout=True),
        ]

    async def start(self) -> None:
        """Start consuming; requests are handled from now on."""
        await self.transport.binding.run_async(self._start())

    async def stop(self) -> None:
        """Stop taking requests and let those in progress finish (grace period)."""
        await self.transport.binding.run_async(self._stop())

    async def wait(self) -> None:
        """Wait until the server has stopped."""
        await self.transport.binding.run_async(self._stopped_event().wait())

    def _stopped_event(self) -> asyncio.Event:
        # Created on the transport's loop, the only loop that sets it.
        if self._stopped_async is None:
            self._stopped_async = asyncio.Event()
            if self._stopped.is_set():
                self._stopped_async.set()
        return self._stopped_async

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _start(self) -> None:
        if self._stopping:
            raise TransportClosed(f"{self!r} was stopped; create a new server")
        if self._listener is not None:
            return
        self._listener = await self.transport.listen(
            self.addresses, self._on_message, prefetch=self.prefetch
        )
        logger.info(
            "server.started topic=%s server=%s exchange=%s",
            self.target.topic,
            self.server_name,
            self.addresses[0].exchange,
        )

    async def _stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        if self._listener is not None:
            await self._listener.stop()
        if self._in_progress:
            _, late = await asyncio.wait(self._in_progress, timeout=self.grace_period)
            for task in late:
                task.cancel()
            if late:
                logger.warning(
                    "server.stop topic=%s server=%s cancelled=%d reason=grace "
                    "period of %g s passed",
                    self.target.topic,
                    self.server_name,
                    len(late),
                    self.grace_period,
                )
        if self._listener is not None:
            await self._listener.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._stopped.set()
        self._stopped_event().set()
        logger.info(
            "server.stopped topic=%s server=%s", self.target.topic, self.server_name
        )

    def _on_message(self, message: IncomingMessage) -> None:
        if self._stopping:
            return
        task = asyncio.get_running_loop().create_task(self._handle(message))
        self._in_progress.add(task)
        task.add_done_callback(self._in_progress.discard)

    async def _handle(self, message: IncomingMessage) -> None:
        # Acknowledged before dispatch: a request runs at most once.
        await message.ack()
        try:
            request = _envelope.decode_request(message.body)
        except MalformedMessage as exc:
            logger.warning(
                "request.dropped topic=%s server=%s reason=malformed error=%s",
                self.target.topic,
                self.server_name,
                exc,
            )
            return
        if isinstance(request, Cancel):
            self._execution.cancel_stream(request.msg_id)
            return
        await self._dispatch(request)

    async def _dispatch(self, request: Request) -> None:
        logger.debug(
            "request.started topic=%s method=%s msg_id=%s unique_id=%s",
            self.target.topic,
            request.method,
            request.msg_id,
            request.unique_id,
        )
        try:
            handler = self._dispatcher.lookup(
                request.namespace, request.version, request.method
            )
        except (NoSuchMethod, UnsupportedVersion) as exc:
            logger.info(
                "request.rejected topic=%s method=%s msg_id=%s error=%s",
                self.target.topic,
                request.method,
                request.msg_id,
                exc,
            )
            if request.msg_id is not None and request.reply_q is not None:
                body = _envelope.encode_reply(
                    request.msg_id, None, serialize_exception(exc), ending=True
                )
                await self.transport.send_reply(request.reply_q, body)
            return
        await self._execution.run(handler, request)


class RPCServer:
    """The blocking server: ``start()``, ``stop()``, ``wait()`` and ``with``.

    Takes the same arguments as :class:`AsyncRPCServer` and runs it on the
    transport's event loop thread.
    """

    def __init__(
        self,
        transport: Transport,
        target: Target,
        endpoints: Sequence[object],
        *,
        max_workers: int = DEFAULT_MAX_WORKERS,
        access_policy: AccessPolicy = "public",
        grace_period: float = DEFAULT_GRACE_PERIOD,
        prefetch: int = DEFAULT_PREFETCH,
        max_message_bytes: int = _envelope.DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self._server = AsyncRPCServer(
            transport,
            target,
            endpoints,
            max_workers=max_workers,
            access_policy=access_policy,
            grace_period=grace_period,
            prefetch=prefetch,
            max_message_bytes=max_message_bytes,
        )

    @property
    def server_name(self) -> str:
        return self._server.server_name

    @property
    def target(self) -> Target:
        return self._server.target

    def start(self) -> None:
        """Start consuming; requests are handled from now on."""
        self._server.transport.binding.run_blocking(self._server._start())

    def stop(self) -> None:
        """Stop taking requests and let those in progress finish (grace period)."""
        self._server.transport.binding.run_blocking(self._server._stop())

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server has stopped; False if *timeout* seconds passed."""
        return self._server._stopped.wait(timeout)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
