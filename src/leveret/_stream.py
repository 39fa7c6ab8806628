"""Streamed replies: the caller's side of a generator endpoint method.

The server sends each item the generator yields as a reply with ``ending``
false, then one reply with ``ending`` true (carrying the generator's exception
as ``failure``, if it raised). Each reply names the server, so that closing
the stream early can tell that server to stop the generator. A peer that does
not stream (an oslo.messaging server) sends one result, which the stream
yields as its only item.

A stream dropped without being closed (a ``for`` loop left with ``break``)
is closed when it is garbage collected: its reply waiter goes, so items no
longer pile up in the caller's memory, and the server gets a cancel that
stops the generator.

NOTE: the server does not wait for the caller to take items, so a slow
consumer of a long stream lets items pile up in its reply queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import weakref
from collections.abc import Callable, Collection
from types import TracebackType
from typing import Any, Self

from . import _envelope
from ._errors import LeveretError, MessagingTimeout
from ._remote_errors import deserialize_failure
from .transports.base import Address, Transport

__all__ = ["AsyncReplyStream", "ReplyStream", "StreamRequest"]

logger = logging.getLogger("leveret.client")

CANCEL_SEND_TIMEOUT = 1.0  # seconds a stream's cancel may wait for the broker

_END: Any = object()


@dataclasses.dataclass(frozen=True, slots=True)
class StreamRequest:
    """The request of a stream; *encode* builds its body from
    ``(msg_id, reply_q)``."""

    transport: Transport
    address: Address
    method: str
    timeout: float
    allowed_remote_exmods: Collection[str]
    encode: Callable[[str, str], bytes]


class _OpenStream:
    """The parts of a started stream that outlive its iterator: its reply
    waiter, and the server to tell when the stream stops early."""

    __slots__ = ("request", "msg_id", "server", "registered", "cancelling")

    def __init__(self, request: StreamRequest, msg_id: str) -> None:
        self.request = request
        self.msg_id = msg_id
        self.server: str | None = None
        self.registered = False
        # A cancel sent in the background, referenced until it ends.
        self.cancelling: asyncio.Task[None] | None = None

    async def send_cancel(self) -> None:
        """Send the server a cancel that stops the generator, at best effort."""
        request = self.request
        if self.server is not None:
            address = dataclasses.replace(request.address, server=self.server)
        else:
            # No item arrived yet, so the server that took the request is
            # unknown: every server of the topic gets the cancel, and the
            # ones without this stream ignore it.
            address = dataclasses.replace(request.address, server=None, fanout=True)
        try:
            # Best effort: a broker that does not take the cancel at once
            # must not hold up a stream whose deadline has passed.
            async with asyncio.timeout(min(request.timeout, CANCEL_SEND_TIMEOUT)):
                await request.transport.send(
                    address, _envelope.encode_cancel(self.msg_id)
                )
        except (LeveretError, TimeoutError) as exc:
            logger.info(
                "stream.cancel_failed msg_id=%s server=%s error=%s",
                self.msg_id,
                self.server,
                exc,
            )

    def cancel_in_background(self) -> None:
        """Send the cancel in a task of its own, on the transport's loop."""
        self.cancelling = asyncio.get_running_loop().create_task(self.send_cancel())

    def on_collected(self) -> None:
        """Close the stream whose iterator was garbage collected unclosed.

        Runs in whichever thread collected it, so the work goes to the
        transport's loop.
        """
        binding = self.request.transport.binding
        inbox = binding.inbox
        if not self.registered or binding.closed or inbox is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            inbox.put(self._abandon)

    def unregister(self) -> None:
        """Stop taking replies: later ones are dropped by the transport."""
        self.registered = False
        self.request.transport.replies.unregister(self.msg_id)

    def _abandon(self) -> None:
        if not self.registered:
            return
        self.unregister()
        logger.info(
            "stream.abandoned msg_id=%s method=%s; the stream was not closed, "
            "so it is closed now that it was garbage collected",
            self.msg_id,
            self.request.method,
        )
        self.cancel_in_background()


class AsyncReplyStream:
    """An async iterator over a generator method's items; close it to stop early.

    The request is sent on the first ``__anext__``. Each item has its own
    deadline: :class:`~leveret.MessagingTimeout` if the next item does not
    arrive within the client's timeout. A stream garbage collected unclosed
    is closed then.
    """

    def __init__(self, request: StreamRequest) -> None:
        self._request = request
        self._msg_id = _envelope.new_id()
        self._queue: asyncio.Queue[_envelope.Reply | BaseException] | None = None
        self._done = False
        self._kept_result: Any = None
        self._open = _OpenStream(request, self._msg_id)
        collected = weakref.finalize(self, self._open.on_collected)
        collected.atexit = False

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Any:
        binding = self._request.transport.binding
        item = await binding.run_async(self.next_item())
        if item is _END:
            raise StopAsyncIteration
        return item

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the stream; the server stops the generator. Safe to call twice."""
        binding = self._request.transport.binding
        if binding.closed:
            return
        await binding.run_async(self.close_on_loop())

    async def next_item(self) -> Any:
        """Return the next item or ``_END``; runs on the transport's loop."""
        if self._done:
            return _END
        if self._queue is None:
            await self._start()
        while True:
            reply = await self._receive()
            if reply is _CLOSED:
                return _END
            item = self._take(reply)
            if item is not _CONTINUE:
                return item

    async def close_on_loop(self) -> None:
        if self._done or self._queue is None:
            self._done = True
            return
        self._finish()
        await self._open.send_cancel()

    async def _start(self) -> None:
        request = self._request
        self._queue = asyncio.Queue()
        try:
            async with asyncio.timeout(request.timeout):
                reply_q = await request.transport.reply_queue()
                body = request.encode(self._msg_id, reply_q)
                request.transport.replies.register(self._msg_id, self._queue.put_nowait)
                self._open.registered = True
                await request.transport.send(
                    request.address, body, expiration=request.timeout
                )
        except TimeoutError:
            self._finish()
            raise self._timeout_error("start") from None
        except BaseException:
            self._finish()
            raise

    async def _receive(self) -> _envelope.Reply:
        assert self._queue is not None
        try:
            async with asyncio.timeout(self._request.timeout):
                reply = await self._queue.get()
        except TimeoutError:
            # The caller learns of its deadline now. The cancel, which may
            # wait for an unreachable broker, goes out in the background.
            self._finish()
            self._open.cancel_in_background()
            raise self._timeout_error("next item") from None
        if isinstance(reply, BaseException):
            self._finish()
            raise reply
        return reply

    def _take(self, reply: _envelope.Reply) -> Any:
        """Turn one reply into an item, ``_END``, ``_CONTINUE`` or an exception."""
        if reply.server is not None:
            self._open.server = reply.server
        if reply.failure is not None:
            self._finish()
            raise deserialize_failure(
                reply.failure, self._request.allowed_remote_exmods
            )
        if reply.stream:
            if reply.ending:
                self._finish()
                return _END
            return reply.result
        # A plain reply from a peer that does not stream: keep a result sent
        # before the ending reply, as the call path does.
        if not reply.ending:
            if reply.result is not None:
                self._kept_result = reply.result
            return _CONTINUE
        self._finish()
        return reply.result if reply.result is not None else self._kept_result

    def _finish(self) -> None:
        self._done = True
        self._open.unregister()
        if self._queue is not None:
            # Ends the wait of a reader in another thread or task.
            self._queue.put_nowait(_CLOSED)

    def _timeout_error(self, waiting_for: str) -> MessagingTimeout:
        request = self._request
        return MessagingTimeout(
            f"stream of {request.method} from {request.address} timed out after "
            f"{request.timeout:g} s waiting for its {waiting_for} "
            f"(msg_id {self._msg_id}){request.transport.connection_note()}"
        )


_CONTINUE: Any = object()
# Queued when the stream is closed, so that a waiting reader ends too.
_CLOSED: Any = object()


class ReplyStream:
    """The blocking iterator over a generator method's items."""

    def __init__(self, request: StreamRequest) -> None:
        self._stream = AsyncReplyStream(request)
        self._binding = request.transport.binding

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> Any:
        item = self._binding.run_blocking(self._stream.next_item())
        if item is _END:
            raise StopIteration
        return item

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the stream; the server stops the generator. Safe to call twice."""
        if self._binding.closed:
            return
        self._binding.run_blocking(self._stream.close_on_loop())
