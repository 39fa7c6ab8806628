"""The blocking face of an asyncio service: ``start``, ``stop``, ``wait``, ``with``.

:class:`~leveret.RPCServer` and the blocking notification listeners wrap an
asyncio implementation and run it on the transport's event loop thread.
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Protocol, Self

from .transports.base import Transport


class LoopService(Protocol):
    """What an asyncio server or listener offers its blocking twin."""

    transport: Transport
    stopped: threading.Event

    async def start_on_loop(self) -> None: ...

    async def stop_on_loop(self) -> None: ...


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
