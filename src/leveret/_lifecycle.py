"""The life cycle of servers and listeners: ``start``, ``stop``, ``wait``, ``with``.

A service implements ``start_on_loop`` and ``stop_on_loop``, which run on the
transport's event loop; :class:`AsyncService` reaches them from any event
loop, and :class:`BlockingService` from sync code.
"""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType
from typing import Protocol, Self

from .transports.base import Transport


class LoopService(Protocol):
    """The interface an asyncio server or listener offers its blocking twin."""

    transport: Transport
    stopped: threading.Event

    async def start_on_loop(self) -> None: ...

    async def stop_on_loop(self) -> None: ...


class AsyncService:
    """``start``, ``stop``, ``wait`` and ``async with`` for an asyncio service.

    Subclasses set ``transport`` and ``stopped``, implement the two
    ``*_on_loop`` coroutines, and call :meth:`mark_stopped` at the end of
    ``stop_on_loop``.
    """

    transport: Transport
    stopped: threading.Event
    _stopped_async: asyncio.Event | None = None

    async def start_on_loop(self) -> None:
        raise NotImplementedError

    async def stop_on_loop(self) -> None:
        raise NotImplementedError

    def before_start(self) -> None:
        """Run on the caller's event loop just before the service starts."""

    async def start(self) -> None:
        """Start consuming; messages are handled from now on."""
        self.before_start()
        await self.transport.binding.run_async(self.start_on_loop())

    async def stop(self) -> None:
        """Stop consuming and let handlers in progress finish (grace period).

        A no-op once the transport is closed, which stopped every consumer.
        """
        if self.transport.closed:
            self.stopped.set()
            return
        await self.transport.binding.run_async(self.stop_on_loop())

    async def wait(self) -> None:
        """Wait until the service has stopped."""
        await self.transport.binding.run_async(self._stopped_event().wait())

    def mark_stopped(self) -> None:
        """Wake every waiter; call it on the transport's loop."""
        self.stopped.set()
        self._stopped_event().set()

    def _stopped_event(self) -> asyncio.Event:
        # Created on the transport's loop, the only loop that sets it.
        if self._stopped_async is None:
            self._stopped_async = asyncio.Event()
            if self.stopped.is_set():
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


class BlockingService:
    """Run a :class:`LoopService` from sync code."""

    _service: LoopService

    def start(self) -> None:
        """Start consuming; messages are handled from now on."""
        self._service.transport.binding.run_blocking(self._service.start_on_loop())

    def stop(self) -> None:
        """Stop consuming and let handlers in progress finish (grace period).

        A no-op once the transport is closed, which stopped every consumer.
        """
        service = self._service
        if service.transport.closed:
            service.stopped.set()
            return
        service.transport.binding.run_blocking(service.stop_on_loop())

    def wait(self, timeout: float | None = None) -> bool:
        """Block until stopped; False if *timeout* seconds passed first."""
        return self._service.stopped.wait(timeout)

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
