"""The event loop a transport runs its I/O on, and the bridges into it.

A transport binds to one event loop: the running loop of the first asyncio
code that uses it, or else a background thread of its own that it starts
for the sync API (:class:`LoopThread`). Sync callers and async callers on
other loops reach the bound loop through :class:`_Bridge`: one hand-over to
start the coroutine as a task there (through the loop's :class:`Inbox` for
threads, ``call_soon_threadsafe`` for another loop), and one wake-up of the
caller when it ends (a lock release for a thread, a ``call_soon_threadsafe``
for another loop). That is what ``run_coroutine_threadsafe`` does, less its
``concurrent.futures.Future``, condition variable and chained callbacks,
which profiles of calls showed."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

from ._errors import TransportClosed

T = TypeVar("T")

# Seconds between checks that the loop still runs, while a blocking call waits.
_LIVENESS_CHECK_SECONDS = 1.0
# Seconds to wait for the loop thread to finish its pending callbacks on stop.
_STOP_JOIN_SECONDS = 5.0
# Loop passes run after the last task has finished, before the loop closes.
_FINAL_PASSES = 3


class LoopThread:
    """A daemon thread that runs an event loop until :meth:`stop`."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._running = threading.Event()
        self._stop_lock = threading.Lock()
        self._stop_requested = False
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
        # A few more passes for callbacks that the clean-up scheduled, such
        # as a transport closing its socket after an aborted connect.
        # NOTE: one test run saw a socket left open after a transport closed
        # during reconnect attempts; that these passes remove its cause is
        # not established.
        for _ in range(_FINAL_PASSES):
            self.loop.run_until_complete(asyncio.sleep(0))

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    def stop(self, wait: bool = True) -> None:
        """Stop the loop and, if *wait*, join the thread.

        Safe to call twice and from several threads at once: only the first
        call stops the loop, since a second ``loop.stop`` would interrupt
        the final pass that lets the remaining tasks finish.
        """
        with self._stop_lock:
            first, self._stop_requested = not self._stop_requested, True
        if first and not self.loop.is_closed():
            if threading.current_thread() is self._thread:
                self.loop.stop()
                return
            try:
                self.loop.call_soon_threadsafe(self.loop.stop)
            except RuntimeError:  # closed in the meantime
                return
        if wait and threading.current_thread() is not self._thread:
            self._thread.join(_STOP_JOIN_SECONDS)


_Item = tuple[contextvars.Context, Callable[..., object], tuple[Any, ...]]


class Inbox:
    """Callbacks handed to one event loop by other threads, a wake-up per batch.

    ``call_soon_threadsafe`` writes to the loop's wake-up pipe on every call,
    and the loop reads each byte back. When many threads hand over work at
    once (blocking callers starting calls, pool threads returning results),
    one write wakes the loop and the rest find it already scheduled to run
    the batch. Each callback runs in a copy of the context it was put from,
    as with ``call_soon_threadsafe``.
    """

    __slots__ = ("loop", "_items", "_scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._items: collections.deque[_Item] = collections.deque()
        self._scheduled = False

    @classmethod
    def serving(cls, inbox: Inbox | None, loop: asyncio.AbstractEventLoop) -> Inbox:
        """Return *inbox* if it serves *loop*, else a new inbox for *loop*."""
        if inbox is not None and inbox.loop is loop:
            return inbox
        return cls(loop)

    def put(self, callback: Callable[..., object], *args: Any) -> None:
        """Run ``callback(*args)`` on the loop soon, from any thread.

        Raises RuntimeError when the loop is closed.
        """
        # Checked first: a loop closed with a run still scheduled leaves
        # _scheduled set, and an item added then would never run.
        if self.loop.is_closed():
            raise RuntimeError("Event loop is closed")
        item = (contextvars.copy_context(), callback, args)
        self._items.append(item)
        if self._scheduled:
            return
        self._scheduled = True
        try:
            self.loop.call_soon_threadsafe(self._run)
        except BaseException:
            # E.g. the loop closed since the check, or a KeyboardInterrupt
            # arrived: the next put must schedule a run again.
            self._scheduled = False
            with contextlib.suppress(ValueError):
                self._items.remove(item)
            raise

    def _run(self) -> None:
        # Cleared first: an item added from now on schedules another run,
        # and one added before is taken below.
        self._scheduled = False
        items = self._items
        # Only what is here now, so that a steady stream of new items cannot
        # keep the loop from its other work.
        for _ in range(len(items)):
            context, callback, args = items.popleft()
            try:
                context.run(callback, *args)
            except (SystemExit, KeyboardInterrupt):
                # Leaves the loop, as asyncio lets these through; what is
                # left of the batch runs when the loop runs again.
                if items and not self._scheduled:
                    self._scheduled = True
                    self.loop.call_soon(self._run)
                raise
            except BaseException as exc:  # reported like a failed loop callback
                self.loop.call_exception_handler(
                    {"message": f"exception in callback {callback!r}", "exception": exc}
                )


_LOOP_STOPPED = "the transport's event loop stopped"


class _Bridge(Generic[T]):
    """Run one coroutine as a task on the bound loop for another thread or loop.

    :meth:`start` runs on the bound loop. The outcome goes to a blocked
    thread (:meth:`wait`) or to a future of the caller's loop (*future*),
    through that loop's inbox (*caller*).
    """

    __slots__ = (
        "_coro",
        "_task",
        "_done",
        "future",
        "_caller",
        "_cancelled",
        "outcome",
    )

    def __init__(
        self,
        coro: Coroutine[Any, Any, T],
        future: asyncio.Future[T] | None = None,
        caller: Inbox | None = None,
    ) -> None:
        self._coro: Coroutine[Any, Any, T] | None = coro
        self._task: asyncio.Task[T] | None = None
        self.future = future
        self._caller = caller
        self._cancelled = False
        self._done = threading.Lock()
        self._done.acquire()
        self.outcome: asyncio.Task[T] | None = None

    def start(self) -> None:
        coro, self._coro = self._coro, None
        if coro is None:  # abandoned by a caller that was interrupted
            return
        task = asyncio.get_running_loop().create_task(coro)
        self._task = task
        if self._cancelled:
            task.cancel()
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[T]) -> None:
        self.outcome = task
        if not task.cancelled():
            # Seen, so that asyncio does not log it when the caller left
            # without reading it (e.g. on KeyboardInterrupt).
            task.exception()
        future = self.future
        if future is None:
            self._done.release()
            return
        assert self._caller is not None
        # RuntimeError: the caller's loop closed, so the result has no reader.
        with contextlib.suppress(RuntimeError):
            self._caller.put(_copy_outcome, task, future)

    def cancel(self) -> None:
        """Cancel the task; called on the bound loop."""
        self._cancelled = True
        if self._task is not None:
            self._task.cancel()

    def abandon(self) -> None:
        """Close the coroutine if the loop never started it."""
        coro, self._coro = self._coro, None
        if coro is not None:
            coro.close()

    def wait(self, loop: asyncio.AbstractEventLoop) -> T:
        """Block until the task ends; return its result or raise its error."""
        # The coroutine bounds its own wait; the periodic check only notices
        # a loop that died and so will never finish it.
        try:
            while not self._done.acquire(timeout=_LIVENESS_CHECK_SECONDS):
                if not loop.is_running():
                    self.abandon()
                    raise TransportClosed(_LOOP_STOPPED)
        except BaseException:
            # E.g. KeyboardInterrupt: the caller leaves, and so does the task.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self.cancel)
            raise
        assert self.outcome is not None
        return _result_of(self.outcome)


def _result_of(task: asyncio.Task[T]) -> T:
    if task.cancelled():
        raise TransportClosed(_LOOP_STOPPED)
    return task.result()


def _copy_outcome(task: asyncio.Task[T], future: asyncio.Future[T]) -> None:
    if future.done():
        return
    try:
        future.set_result(_result_of(task))
    except BaseException as exc:  # handed to the awaiting caller
        future.set_exception(exc)


class LoopBinding:
    """The loop a transport is bound to, and how to run coroutines on it."""

    def __init__(self, thread_name: str) -> None:
        self._thread_name = thread_name
        self._lock = threading.Lock()
        self.loop: asyncio.AbstractEventLoop | None = None
        # Set before loop, so that a thread that reads the loop finds it set.
        self.inbox: Inbox | None = None
        # The inbox of the last other loop that awaited a coroutine here.
        self._caller_inbox: Inbox | None = None
        self.loop_thread: LoopThread | None = None
        self.closed = False

    def bind_running(self) -> asyncio.AbstractEventLoop:
        """Return the bound loop, binding the running one if none is bound yet."""
        loop = self.loop
        if loop is not None:
            return loop
        with self._lock:
            return self.loop or self._bind(asyncio.get_running_loop())

    def bind_thread(self) -> asyncio.AbstractEventLoop:
        """Return the bound loop, starting a loop thread if none is bound yet."""
        loop = self.loop
        if loop is not None:
            return loop
        with self._lock:
            if self.loop is None:
                self.loop_thread = LoopThread(self._thread_name)
                return self._bind(self.loop_thread.loop)
            return self.loop

    def _bind(self, loop: asyncio.AbstractEventLoop) -> asyncio.AbstractEventLoop:
        self.inbox = Inbox(loop)
        self.loop = loop
        return loop

    def in_loop(self) -> bool:
        """Tell whether the caller runs on the bound loop."""
        return self.loop is not None and _running_loop() is self.loop

    async def run_async(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await *coro* on the bound loop from whichever loop is running."""
        loop = self.bind_running()
        running = asyncio.get_running_loop()
        if running is loop:
            return await coro
        _check_open(loop, coro, self.closed)
        assert self.inbox is not None
        caller = self._caller_inbox = Inbox.serving(self._caller_inbox, running)
        return await run_on(self.inbox, coro, caller)

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
        bridge = _Bridge(coro)
        assert self.inbox is not None
        _submit(self.inbox.put, bridge)
        return bridge.wait(loop)

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


async def run_on(
    target: Inbox, coro: Coroutine[Any, Any, T], caller: Inbox | None = None
) -> T:
    """Run *coro* as a task on *target*'s loop, another thread's, and await it.

    The result comes back through *caller*, the running loop's inbox (a new
    one when *caller* serves another loop). Cancelling the awaiting task
    cancels the one on the target loop.
    """
    running = asyncio.get_running_loop()
    future: asyncio.Future[T] = running.create_future()
    bridge = _Bridge(coro, future, Inbox.serving(caller, running))
    _submit(target.put, bridge)
    try:
        return await future
    except asyncio.CancelledError:
        # The caller gave up (its own timeout, or its task was cancelled):
        # so does the coroutine on the other loop.
        with contextlib.suppress(RuntimeError):
            target.loop.call_soon_threadsafe(bridge.cancel)
        raise


def _submit(
    schedule: Callable[[Callable[[], None]], object], bridge: _Bridge[Any]
) -> None:
    """Start *bridge* on its loop through *schedule*, e.g. ``Inbox.put``."""
    try:
        schedule(bridge.start)
    except RuntimeError:  # the loop closed since the check
        bridge.abandon()
        raise TransportClosed(_LOOP_STOPPED) from None
    except BaseException:  # e.g. KeyboardInterrupt: the caller leaves
        bridge.abandon()
        raise


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
