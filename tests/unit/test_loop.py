"""Running coroutines on a transport's loop from other threads and loops."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import leveret
from leveret._loop import Inbox, LoopBinding, LoopThread

WAIT_SECONDS = 10.0


@pytest.fixture
def binding() -> Iterator[LoopBinding]:
    binding = LoopBinding("test-loop")
    binding.bind_thread()
    yield binding
    binding.close()


async def _loop_thread_name() -> str:
    return threading.current_thread().name


async def _fail() -> None:
    raise KeyError("missing")


def test_blocking_call_runs_on_the_loop_thread(binding: LoopBinding) -> None:
    assert binding.run_blocking(_loop_thread_name()) == "test-loop"


def test_blocking_call_raises_the_coroutine_error(binding: LoopBinding) -> None:
    with pytest.raises(KeyError, match="missing"):
        binding.run_blocking(_fail())


def test_blocking_call_on_the_loop_itself_refused(binding: LoopBinding) -> None:
    async def nested() -> None:
        binding.run_blocking(_loop_thread_name())

    with pytest.raises(RuntimeError, match="deadlock"):
        binding.run_blocking(nested())


def test_blocking_call_after_close_raises(binding: LoopBinding) -> None:
    binding.close()

    with pytest.raises(leveret.TransportClosed):
        binding.run_blocking(_loop_thread_name())


def test_blocking_call_ends_when_the_loop_stops(binding: LoopBinding) -> None:
    started = threading.Event()

    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    def stop_when_started() -> None:
        started.wait(5)
        assert binding.loop_thread is not None
        binding.loop_thread.stop(wait=False)

    threading.Thread(target=stop_when_started).start()
    with pytest.raises(leveret.TransportClosed, match="stopped"):
        binding.run_blocking(forever())


def test_async_call_from_another_loop(binding: LoopBinding) -> None:
    async def main() -> str:
        return await binding.run_async(_loop_thread_name())

    assert asyncio.run(main()) == "test-loop"


def test_async_call_raises_the_coroutine_error(binding: LoopBinding) -> None:
    async def main() -> None:
        await binding.run_async(_fail())

    with pytest.raises(KeyError, match="missing"):
        asyncio.run(main())


def test_caller_timeout_cancels_the_coroutine(binding: LoopBinding) -> None:
    cancelled = threading.Event()

    async def slow() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def main() -> None:
        async with asyncio.timeout(0.1):
            await binding.run_async(slow())

    with pytest.raises(TimeoutError):
        asyncio.run(main())
    assert cancelled.wait(5), "the coroutine on the bound loop still runs"


def test_concurrent_async_results_share_wakeups(binding: LoopBinding) -> None:
    async def echo(number: int) -> int:
        return number

    async def main() -> tuple[list[int], int]:
        loop = asyncio.get_running_loop()
        wakeups = 0
        original = loop.call_soon_threadsafe

        def counted(callback: Callable[..., object], *args: Any) -> asyncio.Handle:
            nonlocal wakeups
            wakeups += 1
            return original(callback, *args)

        loop.call_soon_threadsafe = counted  # type: ignore[method-assign]
        calls = asyncio.gather(*(binding.run_async(echo(n)) for n in range(50)))
        await asyncio.sleep(0)  # every call hands its coroutine over
        # This loop stays busy until every result waits in its inbox, as
        # when results come back faster than the loop takes them.
        inbox = binding._caller_inbox
        assert inbox is not None
        deadline = time.monotonic() + 5
        while len(inbox._items) < 50 and time.monotonic() < deadline:
            time.sleep(0.001)  # noqa: ASYNC251 (blocks this loop on purpose)
        return await calls, wakeups

    results, wakeups = asyncio.run(main())

    assert results == list(range(50))
    # The fifty results come back with one wake-up of this loop, not one each.
    assert wakeups == 1


# Inbox: callbacks from other threads, one wake-up per batch.


class CountingLoop:
    """A loop thread whose call_soon_threadsafe calls are counted."""

    def __init__(self) -> None:
        self.thread = LoopThread("inbox-test")
        self.loop = self.thread.loop
        self.wakeups = 0
        original = self.loop.call_soon_threadsafe

        def counted(callback: Callable[..., object], *args: Any) -> asyncio.Handle:
            self.wakeups += 1
            return original(callback, *args)

        self.loop.call_soon_threadsafe = counted  # type: ignore[method-assign]

    def block(self) -> threading.Event:
        """Keep the loop busy until the returned event is set."""
        release = threading.Event()
        self.loop.call_soon_threadsafe(release.wait, 5)
        return release

    def drain(self) -> None:
        """Wait until the loop has run everything scheduled so far."""
        done = threading.Event()
        self.loop.call_soon_threadsafe(done.set)
        assert done.wait(5)


@pytest.fixture
def counting_loop() -> Iterator[CountingLoop]:
    counting = CountingLoop()
    yield counting
    counting.thread.stop()


def test_inbox_batch_wakes_loop_once(counting_loop: CountingLoop) -> None:
    inbox = Inbox(counting_loop.loop)
    ran: list[int] = []
    release = counting_loop.block()
    wakeups_before = counting_loop.wakeups

    for number in range(100):
        inbox.put(ran.append, number)
    release.set()
    counting_loop.drain()

    assert ran == list(range(100))
    assert counting_loop.wakeups - wakeups_before == 2  # the batch, then drain


def test_inbox_wakes_loop_again_after_a_batch(counting_loop: CountingLoop) -> None:
    inbox = Inbox(counting_loop.loop)
    ran: list[str] = []

    inbox.put(ran.append, "first")
    counting_loop.drain()
    inbox.put(ran.append, "second")
    counting_loop.drain()

    assert ran == ["first", "second"]


def test_inbox_item_added_while_running_runs_later(
    counting_loop: CountingLoop,
) -> None:
    inbox = Inbox(counting_loop.loop)
    ran: list[str] = []

    def first() -> None:
        ran.append("first")
        inbox.put(ran.append, "added by first")

    inbox.put(first)
    counting_loop.drain()
    counting_loop.drain()

    assert ran == ["first", "added by first"]


def _raise(error: BaseException) -> None:
    raise error


@pytest.mark.parametrize("error", [KeyError("missing"), asyncio.CancelledError()])
def test_inbox_failing_callback_spares_the_rest(
    counting_loop: CountingLoop, error: BaseException
) -> None:
    inbox = Inbox(counting_loop.loop)
    reported: list[dict[str, Any]] = []
    counting_loop.loop.set_exception_handler(
        lambda _, context: reported.append(context)
    )
    ran: list[str] = []
    release = counting_loop.block()

    inbox.put(_raise, error)
    inbox.put(ran.append, "after")
    release.set()
    counting_loop.drain()

    assert ran == ["after"]
    assert len(reported) == 1
    assert reported[0]["exception"] is error


REQUEST = contextvars.ContextVar[str]("REQUEST")


def test_inbox_runs_each_callback_in_its_own_context(
    counting_loop: CountingLoop,
) -> None:
    inbox = Inbox(counting_loop.loop)
    seen: list[str] = []
    release = counting_loop.block()

    def put_as(name: str) -> None:
        REQUEST.set(name)
        inbox.put(lambda: seen.append(REQUEST.get("unset")))

    for name in ("first", "second"):
        sender = threading.Thread(target=put_as, args=(name,))
        sender.start()
        sender.join()
    release.set()
    counting_loop.drain()

    assert seen == ["first", "second"]


def test_inbox_on_closed_loop_raises_every_time() -> None:
    loop = asyncio.new_event_loop()
    loop.close()
    inbox = Inbox(loop)

    with pytest.raises(RuntimeError):
        inbox.put(print)
    with pytest.raises(RuntimeError):
        inbox.put(print)


def test_inbox_takes_items_from_many_threads(counting_loop: CountingLoop) -> None:
    inbox = Inbox(counting_loop.loop)
    ran: list[tuple[int, int]] = []

    def put_many(sender: int) -> None:
        for number in range(500):
            inbox.put(ran.append, (sender, number))

    senders = [threading.Thread(target=put_many, args=(s,)) for s in range(8)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()
    counting_loop.drain()

    assert len(ran) == 8 * 500
    for sender in range(8):
        assert [n for s, n in ran if s == sender] == list(range(500))


def test_inbox_on_loop_closed_with_run_scheduled_raises() -> None:
    loop = asyncio.new_event_loop()
    inbox = Inbox(loop)
    inbox.put(print, "first")  # schedules a run that the loop never gets to
    loop.close()

    with pytest.raises(RuntimeError):
        inbox.put(print, "second")


def test_interrupted_put_keeps_binding_usable() -> None:
    # A KeyboardInterrupt can arrive while call_soon_threadsafe runs: only
    # the interrupted call may fail, and the next one must still run.
    binding = LoopBinding("interrupt-test")
    loop = binding.bind_thread()
    original = loop.call_soon_threadsafe
    interrupted = False

    def interrupt_once(callback: Callable[..., object], *args: Any) -> Any:
        nonlocal interrupted
        if not interrupted:
            interrupted = True
            raise KeyboardInterrupt
        return original(callback, *args)

    loop.call_soon_threadsafe = interrupt_once  # type: ignore[method-assign]
    try:
        with pytest.raises(KeyboardInterrupt):
            binding.run_blocking(_loop_thread_name())
        results: list[str] = []
        caller = threading.Thread(
            target=lambda: results.append(binding.run_blocking(_loop_thread_name())),
            daemon=True,
        )
        caller.start()
        caller.join(5)

        assert results == ["interrupt-test"]
    finally:
        binding.close(wait=False)


def test_loop_thread_stopped_twice_lets_tasks_finish() -> None:
    thread = LoopThread("stop-twice")
    started = threading.Event()
    cleaning = threading.Event()
    finished = threading.Event()

    async def slow_to_cancel() -> None:
        started.set()
        try:
            await asyncio.sleep(WAIT_SECONDS)
        finally:
            cleaning.set()
            await asyncio.sleep(0.2)
            finished.set()

    asyncio.run_coroutine_threadsafe(slow_to_cancel(), thread.loop)
    errors: list[BaseException | None] = []
    original_hook = threading.excepthook
    threading.excepthook = lambda args: errors.append(args.exc_value)
    try:
        assert started.wait(WAIT_SECONDS)
        thread.stop(wait=False)
        assert cleaning.wait(WAIT_SECONDS)
        # A second stop while the first one lets the tasks finish.
        second = threading.Thread(target=thread.stop)
        second.start()
        second.join(WAIT_SECONDS)
        thread.thread.join(WAIT_SECONDS)
    finally:
        threading.excepthook = original_hook

    assert errors == []
    assert finished.is_set()
    assert thread.loop.is_closed()
