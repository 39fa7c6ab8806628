"""RPC servers: :class:`AsyncRPCServer` and its blocking twin :class:`RPCServer`.

A server of target ``Target(topic, server)`` consumes three addresses: the
topic's shared queue (any one server takes a request), the ``topic.server``
queue (requests for this server only) and the topic's fanout (casts to every
server). ``stop()`` cancels the consumers first, so no new request starts,
then waits up to ``grace_period`` seconds for requests in progress.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Sequence

from . import _envelope
from ._checks import check_consumer_options, check_message_bytes
from ._delivery import AckPolicy, RecentIds, check_ack_policy
from ._dispatcher import AccessPolicy, Dispatcher, Handler
from ._envelope import Cancel, MalformedMessage, Request
from ._errors import InvalidTarget, NoSuchMethod, TransportClosed, UnsupportedVersion
from ._execution import CUT_OFF_REPLY_SECONDS, RequestExecution
from ._lifecycle import AsyncService, BlockingService
from ._redelivery import DEFAULT_MAX_REDELIVERIES, RedeliveryCounter
from ._target import Target
from ._worker_pool import WorkerPool
from .transports.base import Address, IncomingMessage, Listener, Transport

__all__ = ["AsyncRPCServer", "RPCServer"]

logger = logging.getLogger("leveret.server")

DEFAULT_MAX_WORKERS = 64  # threads that run sync endpoint methods
DEFAULT_GRACE_PERIOD = 30.0  # seconds stop() waits for requests in progress


class AsyncRPCServer(AsyncService):
    """Serve the public methods of *endpoints* to the clients of *target*.

    :param target: needs a topic; ``server`` names this server (default: the
        host name) and ``exchange`` overrides the transport's default.
    :param endpoints: objects whose methods are callable remotely.
    :param max_workers: threads that run sync endpoint methods.
    :param access_policy: ``"public"`` (every method whose name does not start
        with ``_``) or ``"exposed"`` (only those marked with ``@leveret.expose``).
    :param grace_period: seconds ``stop()`` lets requests in progress finish.
    :param prefetch: messages the broker may deliver before they are settled;
        None takes the transport's (the ``prefetch`` URL option, default 64).
    :param ack_policy: ``"before"`` acknowledges a request before its method
        runs (at most once), ``"after"`` once it returned (at least once). An
        endpoint object's own ``ack_policy`` attribute overrides it.
    :param max_redeliveries: a request redelivered more often is dropped
        (or dead-lettered) with an ERROR log.
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
        prefetch: int | None = None,
        max_message_bytes: int = _envelope.DEFAULT_MAX_MESSAGE_BYTES,
        ack_policy: AckPolicy = "before",
        max_redeliveries: int = DEFAULT_MAX_REDELIVERIES,
    ) -> None:
        if not isinstance(target, Target) or target.topic is None:
            raise InvalidTarget(f"a server's target needs a topic, got {target!r}")
        if target.fanout:
            raise InvalidTarget("a server's target cannot be fanout; it always is")
        self.prefetch = transport.default_prefetch if prefetch is None else prefetch
        check_consumer_options(
            max_workers, max_redeliveries, grace_period, self.prefetch
        )
        self.transport = transport
        self.target = target
        self.server_name = target.server or socket.gethostname()
        self.grace_period = grace_period
        self.ack_policy = check_ack_policy(ack_policy, "the server")
        for endpoint in endpoints:
            policy = getattr(endpoint, "ack_policy", None)
            if policy is not None:
                check_ack_policy(policy, f"endpoint {endpoint!r}")
        self._dispatcher = Dispatcher(endpoints, access_policy)
        self._recent_ids = RecentIds()
        # The deliveries of each request running or waiting here under
        # ack_policy "after", by unique id, settled together when it ends.
        self._unsettled: dict[str, list[IncomingMessage]] = {}
        self._redeliveries = RedeliveryCounter(max_redeliveries)
        self._pool = WorkerPool(max_workers, f"leveret-{target.topic}")
        self._execution = RequestExecution(
            transport,
            self.server_name,
            self._pool,
            check_message_bytes(max_message_bytes),
        )
        self._listener: Listener | None = None
        self._in_progress: set[asyncio.Task[None]] = set()
        self.stopped = threading.Event()
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

    def before_start(self) -> None:
        # async def endpoint methods run on the event loop that starts the
        # server, even when the transport's I/O runs on a thread of its own.
        self._execution.app_loop = asyncio.get_running_loop()

    async def start_on_loop(self) -> None:
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

    async def stop_on_loop(self) -> None:
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
                # Let the cancelled calls tell their callers (bounded there).
                await asyncio.wait(late, timeout=CUT_OFF_REPLY_SECONDS + 1)
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
        self._pool.shutdown()
        self.mark_stopped()
        logger.info(
            "server.stopped topic=%s server=%s", self.target.topic, self.server_name
        )

    def _on_message(self, message: IncomingMessage) -> None:
        if self._stopping:
            return
        task = asyncio.get_running_loop().create_task(self._handle_safely(message))
        self._in_progress.add(task)
        task.add_done_callback(self._in_progress.discard)

    async def _handle_safely(self, message: IncomingMessage) -> None:
        try:
            await self._handle(message)
        except Exception:
            # A bug in leveret or the transport, not in the endpoint method:
            # log it so that it is seen, and keep serving.
            logger.exception(
                "request.crashed topic=%s server=%s",
                self.target.topic,
                self.server_name,
            )

    async def _handle(self, message: IncomingMessage) -> None:
        try:
            request = _envelope.decode_request(message.body)
        except MalformedMessage as exc:
            logger.warning(
                "request.dropped topic=%s server=%s reason=malformed error=%s",
                self.target.topic,
                self.server_name,
                exc,
            )
            await message.reject(requeue=False)
            return
        if isinstance(request, Cancel):
            await message.ack()
            self._execution.cancel_stream(request.msg_id)
            return
        if not await self._admit(message, request):
            return
        handler = await self._lookup(message, request)
        if handler is not None:
            await self._run(message, request, handler)

    async def _admit(self, message: IncomingMessage, request: Request) -> bool:
        """Drop duplicates and requests redelivered too often."""
        unique_id = request.unique_id
        if unique_id is not None and unique_id in self._recent_ids:
            copies = self._unsettled.get(unique_id)
            if copies is not None:
                # The broker redelivered this copy after a dropped connection
                # while the first still waits or runs here. It is settled with
                # the first, so a stop or crash before then leaves it queued.
                copies.append(message)
                outcome = "settled with the copy already here"
            else:
                await message.ack()
                outcome = "dropped"
            logger.info(
                "request.duplicate topic=%s method=%s unique_id=%s; %s",
                self.target.topic,
                request.method,
                unique_id,
                outcome,
            )
            return False
        redeliveries = self._redeliveries.count(
            unique_id, message.redelivered, message.delivery_count
        )
        if self._redeliveries.exceeded(redeliveries):
            logger.error(
                "request.poison topic=%s method=%s unique_id=%s redeliveries=%d; "
                "rejected without requeue (dead-lettered if the queue has a "
                "dead-letter exchange)",
                self.target.topic,
                request.method,
                unique_id,
                redeliveries,
            )
            await message.reject(requeue=False)
            return False
        if unique_id is not None:
            self._recent_ids.add(unique_id)
        return True

    async def _lookup(
        self, message: IncomingMessage, request: Request
    ) -> Handler | None:
        logger.debug(
            "request.started topic=%s method=%s msg_id=%s unique_id=%s",
            self.target.topic,
            request.method,
            request.msg_id,
            request.unique_id,
        )
        try:
            return self._dispatcher.lookup(
                request.namespace, request.version, request.method
            )
        except (NoSuchMethod, UnsupportedVersion) as exc:
            await message.ack()
            logger.info(
                "request.rejected topic=%s method=%s msg_id=%s error=%s",
                self.target.topic,
                request.method,
                request.msg_id,
                exc,
            )
            await self._execution.reply_failure(request, exc)
            return None

    async def _run(
        self, message: IncomingMessage, request: Request, handler: Handler
    ) -> None:
        endpoint = getattr(handler.function, "__self__", None)
        policy = getattr(endpoint, "ack_policy", None) or self.ack_policy
        if policy == "before":
            # NOTE: acknowledged on arrival, so prefetch does not bound the
            # requests that wait here for a pool worker. Holding them
            # unacknowledged instead lets a dropped connection run them
            # twice (docs/rabbitmq.md).
            await message.ack()
            try:
                await self._execution.run(handler, request)
            except asyncio.CancelledError:
                # Stopped after the grace period, and acknowledged, so no other
                # server takes it: the caller hears of it now.
                await self._execution.reply_cut_off(request)
                raise
            return
        copies = [message]
        if request.unique_id is not None:
            self._unsettled[request.unique_id] = copies
        try:
            await self._execution.run(handler, request)
        except asyncio.CancelledError:
            # Stopped before the method returned: another server takes it.
            for copy in copies:
                await copy.reject(requeue=True)
            raise
        finally:
            if request.unique_id is not None:
                self._unsettled.pop(request.unique_id, None)
        for copy in copies:
            await copy.ack()


class RPCServer(BlockingService):
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
        prefetch: int | None = None,
        max_message_bytes: int = _envelope.DEFAULT_MAX_MESSAGE_BYTES,
        ack_policy: AckPolicy = "before",
        max_redeliveries: int = DEFAULT_MAX_REDELIVERIES,
    ) -> None:
        self._service: AsyncRPCServer = AsyncRPCServer(
            transport,
            target,
            endpoints,
            max_workers=max_workers,
            access_policy=access_policy,
            grace_period=grace_period,
            prefetch=prefetch,
            max_message_bytes=max_message_bytes,
            ack_policy=ack_policy,
            max_redeliveries=max_redeliveries,
        )

    @property
    def server_name(self) -> str:
        return self._service.server_name

    @property
    def target(self) -> Target:
        return self._service.target
