"""Thread-hop floors: what crossing threads alone costs on this machine.

These use no messaging library. They bound what a blocking in-process call
can reach when it crosses threads the way leveret's RPCClient does on the
memory transport.

- ``queue_pingpong``: two threads, one queue.SimpleQueue each way; one
  sample is a round trip (two thread switches).
- ``loop_roundtrip``: ``run_coroutine_threadsafe`` of an empty coroutine on
  an event loop running in another thread, then ``result()``: caller ->
  loop thread -> caller.
- ``loop_pool_roundtrip``: the coroutine also awaits ``run_in_executor`` of
  an empty function on a ThreadPoolExecutor: caller -> loop thread -> pool
  thread -> loop thread -> caller, leveret's path without leveret.
- ``future_hop`` (throughput): N asyncio tasks, each awaiting a future that
  ``call_soon`` resolves; the loop's own cost per hop, no threads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
from collections.abc import Callable
from typing import Any

from .. import measure
from .common import UnsupportedShape


def _noop() -> None:
    return None


async def _noop_async() -> None:
    return None


class Client:
    def __init__(self, url: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._pool = concurrent.futures.ThreadPoolExecutor(4)

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._pool.shutdown()

    def run(self, shape: str, params: dict[str, Any]) -> dict[str, Any]:
        if shape == "call_latency":
            operation, cleanup = self._operation(params["hop"])
            try:
                for _ in range(params["warmup_calls"]):
                    operation()
                samples = measure.sequential_latency(operation, params["duration"])
            finally:
                cleanup()
            return {"samples": samples}
        if shape == "call_throughput" and params["hop"] == "future_hop":
            return asyncio.run(self._future_hops(params))
        raise UnsupportedShape(f"{shape}/{params.get('hop')}")

    def _operation(self, hop: str) -> tuple[Callable[[], Any], Callable[[], None]]:
        """Return the operation to time and what to call when done."""
        if hop == "queue_pingpong":
            return self._pingpong()
        if hop == "loop_roundtrip":
            return (
                lambda: asyncio.run_coroutine_threadsafe(
                    _noop_async(), self._loop
                ).result(),
                _noop,
            )
        if hop == "loop_pool_roundtrip":

            async def through_pool() -> None:
                await asyncio.get_running_loop().run_in_executor(self._pool, _noop)

            return (
                lambda: asyncio.run_coroutine_threadsafe(
                    through_pool(), self._loop
                ).result(),
                _noop,
            )
        raise UnsupportedShape(hop)

    def _pingpong(self) -> tuple[Callable[[], None], Callable[[], None]]:
        requests: queue.SimpleQueue[object] = queue.SimpleQueue()
        replies: queue.SimpleQueue[object] = queue.SimpleQueue()

        def answer() -> None:
            while True:
                item = requests.get()
                replies.put(item)
                if item is None:
                    return

        threading.Thread(target=answer, daemon=True).start()

        def round_trip() -> None:
            requests.put(1)
            replies.get()

        return round_trip, lambda: requests.put(None)

    async def _future_hops(self, params: dict[str, Any]) -> dict[str, Any]:
        loop = asyncio.get_running_loop()

        async def hop() -> None:
            future = loop.create_future()
            loop.call_soon(future.set_result, None)
            await future

        window = await measure.tasks_in_flight(
            hop, params["workers"], params["warmup"], params["duration"]
        )
        return window.result()
