"""The threads that run a server's sync endpoint methods.

A smaller cousin of ``concurrent.futures.ThreadPoolExecutor`` plus
``loop.run_in_executor``: a job carries the asyncio future to settle, and the
worker settles it through the loop's :class:`~leveret._loop.Inbox`. That saves
a ``concurrent.futures.Future``, its lock and the callbacks chaining it to an
asyncio future, which a profile of a sync call showed among the largest costs
of the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any

from ._loop import Inbox

_Job = tuple[
    Inbox,
    "asyncio.Future[Any]",
    Callable[..., Any],
    tuple[Any, ...],
]


def _settle(
    future: asyncio.Future[Any], result: Any, error: BaseException | None
) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class WorkerPool:
    """Up to *max_workers* daemon threads, started as jobs arrive."""

    def __init__(self, max_workers: int, name: str) -> None:
        self._max_workers = max_workers
        self._name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._shut_down = False
        self._inbox: Inbox | None = None

    async def run(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run ``function(*args)`` in a worker thread and await its result."""
        if self._shut_down:
            raise RuntimeError(f"worker pool {self._name} is shut down")
        loop = asyncio.get_running_loop()
        inbox = self._inbox = Inbox.serving(self._inbox, loop)
        future: asyncio.Future[Any] = loop.create_future()
        self._jobs.put((inbox, future, function, args))
        self._add_worker_if_needed()
        return await future

    def _add_worker_if_needed(self) -> None:
        with self._lock:
            if self._idle > 0:
                self._idle -= 1  # an idle worker takes the job
                return
            if len(self._threads) >= self._max_workers:
                return  # the job waits for a busy worker

            thread = threading.Thread(
                target=self._work,
                name=f"{self._name}-{len(self._threads)}",
                daemon=True,
            )
            self._threads.append(thread)
        thread.start()

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            inbox, future, function, args = job
            if not future.cancelled():
                self._run_job(inbox, future, function, args)
            with self._lock:
                self._idle += 1

    @staticmethod
    def _run_job(
        inbox: Inbox,
        future: asyncio.Future[Any],
        function: Callable[..., Any],
        args: tuple[Any, ...],
    ) -> None:
        result: Any = None
        error: BaseException | None = None
        try:
            result = function(*args)
        except BaseException as exc:  # handed to the awaiting task, not lost
            error = exc
        # RuntimeError: the loop closed, so nobody waits for this result.
        with contextlib.suppress(RuntimeError):
            inbox.put(_settle, future, result, error)

    def shutdown(self) -> None:
        """Let the workers exit after their current job; safe to call twice."""
        with self._lock:
            if self._shut_down:
                return
            self._shut_down = True
            count = len(self._threads)
        for _ in range(count):
            self._jobs.put(None)
