"""Running coroutines on a transport's loop from other threads and loops."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

import leveret
from leveret._loop import LoopBinding


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
