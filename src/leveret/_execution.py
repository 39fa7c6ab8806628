"""Running one request's endpoint method and sending its replies.

Sync methods (and sync generators, one item at a time) run in the server's
thread pool so that the event loop, and with it the broker connection's
heartbeats and every other request, keeps running. ``async def`` methods and
async generators run on the loop. In both cases the request's context is
bound only while the method runs, in that thread or task.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable, Coroutine, Iterator
from typing import Any

from . import _envelope
from ._context import RequestContext, reset_current, set_current
from ._dispatcher import Handler, HandlerKind
from ._envelope import Request
from ._errors import (
    LeveretError,
    MessageTooLarge,
    MessagingTimeout,
    NoServerError,
    SerializationError,
)
from ._loop import Inbox, run_on
from ._remote_errors import serialize_exception, serialize_failure
from ._worker_pool import WorkerPool
from .transports.base import Transport

logger = logging.getLogger("leveret.server")

_EXHAUSTED: Any = object()

# Seconds a call cut off by the server's stop may take to send its failure.
CUT_OFF_REPLY_SECONDS = 1.0


class EndpointExit(Exception):
    """An endpoint method raised SystemExit or KeyboardInterrupt.

    Let through, these would stop the server's event loop thread; they are
    reported to the caller as this error instead.
    """


def _in_context(
    context: RequestContext, function: Callable[..., Any], *args: Any
) -> Any:
    token = set_current(context)
    try:
        return function(*args)
    except (SystemExit, KeyboardInterrupt) as exc:
        raise EndpointExit(f"endpoint method raised {exc!r}") from exc
    finally:
        reset_current(token)


async def _exits_reported(coro: Coroutine[Any, Any, Any]) -> Any:
    try:
        return await coro
    except (SystemExit, KeyboardInterrupt) as exc:
        raise EndpointExit(f"endpoint method raised {exc!r}") from exc


def _call_kwargs(function: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    return function(**kwargs)


def _next_item(iterator: Iterator[Any]) -> Any:
    return next(iterator, _EXHAUSTED)


def _last_item(iterator: Iterator[Any]) -> Any:
    last = None
    for last in iterator:  # noqa: B007 - only the final item is sent
        pass
    return last


class RequestExecution:
    """Run requests for one server; tracks streams so they can be cancelled."""

    def __init__(
        self,
        transport: Transport,
        server_name: str,
        pool: WorkerPool,
        max_message_bytes: int,
    ) -> None:
        self._transport = transport
        self._server_name = server_name
        self._pool = pool
        self._max_message_bytes = max_message_bytes
        # The loop async methods run on, when not the transport's own.
        self.app_loop: asyncio.AbstractEventLoop | None = None
        # Hand-overs to the app's loop, and of results back to this one.
        self._app_inbox: Inbox | None = None
        self._own_inbox: Inbox | None = None
        self._cancelled_streams: set[str] = set()
        self._active_streams: set[str] = set()

    def cancel_stream(self, msg_id: str) -> None:
        if msg_id in self._active_streams:
            self._cancelled_streams.add(msg_id)

    async def _in_pool(
        self, context: RequestContext, function: Callable[..., Any], *args: Any
    ) -> Any:
        return await self._pool.run(_in_context, context, function, *args)

    async def _on_app_loop(
        self, context: RequestContext, coro: Coroutine[Any, Any, Any]
    ) -> Any:
        """Await *coro* with the request's context bound, on the app's loop."""
        loop = self.app_loop
        running = asyncio.get_running_loop()
        if loop is None or loop is running:
            # This task already has the request's context bound (see run).
            return await _exits_reported(coro)

        async def bound() -> Any:
            set_current(context)
            return await _exits_reported(coro)

        self._app_inbox = Inbox.serving(self._app_inbox, loop)
        self._own_inbox = Inbox.serving(self._own_inbox, running)
        return await run_on(self._app_inbox, bound(), self._own_inbox)

    async def reply_failure(self, request: Request, exc: Exception) -> None:
        """Send *exc* to the caller of a call; a cast gets nothing."""
        if request.msg_id is not None and request.reply_q is not None:
            await self._reply(request, failure=serialize_exception(exc))

    async def reply_cut_off(self, request: Request) -> None:
        """Tell the caller of a call that the server stopped before it ended.

        Sends a MessagingTimeout failure, so that the caller does not wait
        for its own deadline; a cast gets nothing.
        """
        error = MessagingTimeout(
            f"server {self._server_name} stopped before {request.method} "
            "finished: its grace period passed"
        )
        try:
            async with asyncio.timeout(CUT_OFF_REPLY_SECONDS):
                await self.reply_failure(request, error)
        except TimeoutError:
            logger.info(
                "reply.unsent method=%s msg_id=%s reason=server stopping, "
                "no broker confirm within %g s",
                request.method,
                request.msg_id,
                CUT_OFF_REPLY_SECONDS,
            )

    async def run(self, handler: Handler, request: Request) -> None:
        """Run the method; reply to calls; log the failure of a cast."""
        context = RequestContext.from_dict(request.context)
        set_current(context)  # this task's own copy of the context variables
        if request.msg_id is not None and request.stream:
            await self._stream(handler, request, context)
            return
        heartbeat = self._start_heartbeat(request)
        try:
            result = await self._result(handler, request, context)
        except Exception as exc:
            self._log_failure(request, exc)
            if request.msg_id is not None:
                await self._reply(request, failure=serialize_exception(exc))
            return
        finally:
            if heartbeat is not None:
                heartbeat.cancel()
        if request.msg_id is not None:
            await self._reply(request, result)

    def _start_heartbeat(self, request: Request) -> asyncio.Task[None] | None:
        """Send oslo.messaging's call-monitor replies while a call runs.

        An oslo caller with ``call_monitor_timeout`` sets ``_timeout`` and
        expects a reply with ``ending`` false every ``int(_timeout) / 2``
        seconds. An oslo server sends none when that is under a second.
        """
        timeout = request.call_monitor_timeout
        if request.msg_id is None or timeout is None:
            return None
        interval = int(timeout) / 2
        if interval < 1:
            return None
        return asyncio.get_running_loop().create_task(
            self._heartbeat(request, interval)
        )

    async def _heartbeat(self, request: Request, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self._reply(request, None, ending=False)

    async def _result(
        self, handler: Handler, request: Request, context: RequestContext
    ) -> Any:
        function, kwargs = handler.function, request.args
        kind = handler.kind
        if kind is HandlerKind.ASYNC:
            return await self._on_app_loop(context, function(**kwargs))
        if kind is HandlerKind.SYNC:
            return await self._in_pool(context, _call_kwargs, function, kwargs)
        if kind is HandlerKind.SYNC_GENERATOR:
            iterator = await self._in_pool(context, _call_kwargs, function, kwargs)
            return await self._in_pool(context, _last_item, iterator)
        last = None
        async for last in self._async_items(function(**kwargs), context):  # noqa: B007
            pass
        return last

    async def _async_items(
        self, agen: AsyncGenerator[Any, None], context: RequestContext
    ) -> AsyncGenerator[Any, None]:
        """Iterate an async generator on the app's loop, one item at a time."""
        cancelled = False
        try:
            while True:
                try:
                    yield await self._on_app_loop(context, agen.__anext__())
                except StopAsyncIteration:
                    return
        except asyncio.CancelledError:
            # The step running on the app's loop is cancelled with this task,
            # which ends the generator there; aclose() would find it running.
            cancelled = True
            raise
        finally:
            if not cancelled:
                await self._on_app_loop(context, agen.aclose())

    async def _items(
        self, handler: Handler, request: Request, context: RequestContext
    ) -> AsyncGenerator[Any, None]:
        """Yield the items of a generator method; a plain method yields one."""
        function, kwargs = handler.function, request.args
        kind = handler.kind
        if kind is HandlerKind.ASYNC_GENERATOR:
            async for item in self._async_items(function(**kwargs), context):
                yield item
        elif kind is HandlerKind.SYNC_GENERATOR:
            iterator = await self._in_pool(context, _call_kwargs, function, kwargs)
            cancelled = False
            try:
                while (
                    item := await self._in_pool(context, _next_item, iterator)
                ) is not _EXHAUSTED:
                    yield item
            except asyncio.CancelledError:
                # A pool thread may still run the generator's step, and
                # close() would raise "generator already executing" there.
                cancelled = True
                raise
            finally:
                if not cancelled:
                    await self._in_pool(context, iterator.close)
        else:
            yield await self._result(handler, request, context)

    async def _stream(
        self, handler: Handler, request: Request, context: RequestContext
    ) -> None:
        msg_id = request.msg_id
        assert msg_id is not None
        self._active_streams.add(msg_id)
        items = self._items(handler, request, context)
        try:
            async for item in items:
                if msg_id in self._cancelled_streams:
                    logger.debug(
                        "stream.cancelled method=%s msg_id=%s", request.method, msg_id
                    )
                    return
                if not await self._reply(request, item, ending=False):
                    return
        except Exception as exc:
            self._log_failure(request, exc)
            await self._reply(request, failure=serialize_exception(exc))
            return
        finally:
            await items.aclose()
            self._active_streams.discard(msg_id)
            self._cancelled_streams.discard(msg_id)
        await self._reply(request)

    async def _reply(
        self,
        request: Request,
        result: Any = None,
        failure: str | None = None,
        ending: bool = True,
    ) -> bool:
        """Send one reply; return False when a stream must stop.

        A stream stops when the caller's reply queue is gone, or when an item
        cannot be encoded (the caller then gets that failure as the end).
        """
        assert request.msg_id is not None and request.reply_q is not None
        server = self._server_name if request.stream else None
        sendable = True
        try:
            body = _envelope.encode_reply(
                request.msg_id,
                result,
                failure,
                ending=ending,
                stream_server=server,
                max_bytes=self._max_message_bytes,
            )
        except (SerializationError, MessageTooLarge) as exc:
            logger.info(
                "reply.unsendable method=%s msg_id=%s error=%s",
                request.method,
                request.msg_id,
                exc,
            )
            failure = serialize_failure(
                type(exc).__name__, f"result of {request.method} cannot be sent: {exc}"
            )
            body = _envelope.encode_reply(
                request.msg_id, None, failure, ending=True, stream_server=server
            )
            sendable = False
        try:
            # The transport bounds the wait (Transport.send_reply).
            await self._transport.send_reply(request.reply_q, body)
        except NoServerError:
            logger.info(
                "reply.dropped method=%s msg_id=%s reason=reply queue %s is gone",
                request.method,
                request.msg_id,
                request.reply_q,
            )
            return False
        except LeveretError as exc:
            logger.warning(
                "reply.failed method=%s msg_id=%s error=%s",
                request.method,
                request.msg_id,
                exc,
            )
            return False
        return sendable

    def _log_failure(self, request: Request, exc: Exception) -> None:
        if request.msg_id is None:
            # Nobody else sees a cast's failure: log it for the operator.
            logger.error(
                "cast.failed method=%s unique_id=%s error=%r",
                request.method,
                request.unique_id,
                exc,
                exc_info=exc,
            )
        else:
            logger.info(
                "call.failed method=%s msg_id=%s error=%r",
                request.method,
                request.msg_id,
                exc,
            )
            logger.debug("call.failed traceback", exc_info=exc)
