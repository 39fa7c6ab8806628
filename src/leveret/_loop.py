"""The event loop a transport runs its I/O on, and the bridges into it.

A transport binds to one event loop: the running loop of the first asyncio
code that uses it, or else a background thread of its own that it starts
for the sync API (:class:`LoopThread`). Sync callers and async callers on
other loops reach the bound loop through ``run_coroutine_threadsafe``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from ._errors import TransportClosed

T = TypeVar("T")

# Seconds between checks that the loop still runs, while a blocking call waits.
_LIVENESS_CHECK_SECONDS = 1.0
# Seconds to wait for the loop thread to finish its pending callbacks on stop.
_STOP_JOIN_SECONDS = 5.0


class LoopThread:
    """A daemon thread that runs an event loop until :meth:`stop`."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._running = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        self._running.wait()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._running.set)
        try:
            self.loop.run_forever()
        finally:
            self._finish_tasks()
            self.loop.close()

    def _finish_tasks(self) -> None:
        """Cancel what still runs (e.g. a client library's heartbeat task)
        and let it clean up, as ``asyncio.run`` does."""
        # Callbacks that ran while finishing (a coroutine submitted from
        # another thread just before the stop) can start new tasks: repeat.
        while tasks := asyncio.all_tasks(self.loop):
            for task in tasks:
                task.cancel()
            gathered = asyncio.gather(*tasks, return_exceptions=True)
            self.loop.run_until_complete(gathered)
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    def stop(self, wait: bool = True) -> None:
        """Stop the loop and, if *wait*, join the thread; safe to call twice."""
        if self.loop.is_closed():
            return
        if threading.current_thread() is self._thread:
            self.loop.stop()
            return
        try:
            self.loop.call_soon_threadsafe(self.loop.stop)
        except RuntimeError:  # closed in the meantime
            return
        if wait:
            self._thread.join(_STOP_JOIN_SECONDS)


class LoopBinding:
    """The loop a transport is bound to, and how to run coroutines on it."""

    def __init__(self, thread_name: str) -> None:
        self._thread_name = thread_name
        self._lock = threading.Lock()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.loop_thread: LoopThread | None = None
        self.closed = False

    def bind_running(self) -> asyncio.AbstractEventLoop:
        """Return the bound loop, binding the running one if none is bound yet."""
        loop = self.loop
        if loop is not None:
            return loop
        with self._lock:
            if self.loop is None:
                self.loop = asyncio.get_running_loop()
            return self.loop

    def bind_thread(self) -> asyncio.AbstractEventLoop:
        """Return the bound loop, starting a loop thread if none is bound yet."""
        loop = self.loop
        if loop is not None:
            return loop
        with self._lock:
            if self.loop is None:
                self.loop_thread = LoopThread(self._thread_name)
                self.loop = self.loop_thread.loop
            return self.loop

    def in_loop(self) -> bool:
        """Tell whether the caller runs on the bound loop."""
        return self.loop is not None and _running_loop() is self.loop

    async def run_async(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await *coro* on the bound loop from whichever loop is running."""
        loop = self.bind_running()
        if asyncio.get_running_loop() is loop:
            return await coro
        _check_open(loop, coro, self.closed)
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))

    def run_blocking(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run *coro* on the bound loop and block this thread for its result."""
        loop = self.bind_thread()
        if _running_loop() is loop:
            coro.close()
            raise RuntimeError(
                "a blocking leveret call was made on the transport's own event "
                "loop, where it would deadlock; use the Async* classes there"
            )
        _check_open(loop, coro, self.closed)
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        # The coroutine bounds its own wait; the periodic check only notices
        # a loop that died and so will never finish it.
        while True:
            try:
                return future.result(_LIVENESS_CHECK_SECONDS)
            except concurrent.futures.CancelledError:
                raise TransportClosed("the transport's event loop stopped") from None
            except TimeoutError:
                if future.done():
                    raise  # the coroutine itself raised, e.g. MessagingTimeout
                if not loop.is_running():
                    future.cancel()
                    raise TransportClosed(
                        "the transport's event loop stopped"
                    ) from None

    def close(self, wait: bool = True) -> None:
        """Stop the loop thread this binding started, if any.

        Work submitted afterwards raises TransportClosed at once, even while
        the thread is still stopping.
        """
        self.closed = True
        if self.loop_thread is not None:
            self.loop_thread.stop(wait)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _check_open(
    loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], closed: bool
) -> None:
    if closed:
        coro.close()
        raise TransportClosed("the transport is closed")
    if loop.is_closed() or not loop.is_running():
        coro.close()
        raise TransportClosed(
            "the transport is bound to an event loop that is no longer running; "
            "create one transport per event loop"
        )
