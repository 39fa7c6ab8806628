"""aio-pika's RPC pattern (``aio_pika.patterns.RPC``) and, for casts, its
Master/Worker pattern, both used as shipped: their default serializer is
pickle, where the others send JSON.

The server runs its asyncio loop in a thread of its own so that the worker's
main thread can read commands. It registers ``bench_aiopika_echo`` (RPC) and
``bench_aiopika_tick`` (a Master worker queue). aio-pika has no fanout
casts, notifications or streams in these patterns.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import aio_pika
from aio_pika.patterns import RPC, Master

from .. import measure
from .common import Arrivals, UnsupportedShape
from .common import make_payload as payload_of

ECHO = "bench_aiopika_echo"
TICK = "bench_aiopika_tick"
STOP_SECONDS = 30.0


class Server:
    def __init__(self, url: str, arrivals: Arrivals) -> None:
        self.unavailable = {
            "fanout": "aio-pika's RPC and Master patterns have no fanout",
            "notify": "aio-pika has no notifications",
            "stream": "aio-pika's RPC pattern has no streamed replies",
        }
        self._url = url
        self._arrivals = arrivals
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._connection: Any = None

    async def _start(self) -> None:
        self._connection = await aio_pika.connect(self._url)
        rpc = await RPC.create(await self._connection.channel())
        master = Master(await self._connection.channel())

        async def echo(*, payload: Any) -> Any:
            return payload

        async def tick() -> None:
            self._arrivals.record("cast")

        await rpc.register(ECHO, echo, auto_delete=True)
        await master.create_worker(TICK, tick, auto_delete=True)

    def start(self) -> None:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        future.result(STOP_SECONDS)

    def stop(self) -> None:
        if self._connection is not None:
            future = asyncio.run_coroutine_threadsafe(
                self._connection.close(), self._loop
            )
            future.result(STOP_SECONDS)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(STOP_SECONDS)


class Client:
    def __init__(self, url: str) -> None:
        self._url = url

    def close(self) -> None:
        pass

    def run(self, shape: str, params: dict[str, Any]) -> dict[str, Any]:
        return asyncio.run(self._run(shape, params))

    async def _run(self, shape: str, params: dict[str, Any]) -> dict[str, Any]:
        connection = await aio_pika.connect(self._url)
        try:
            channel = await connection.channel()
            if shape in ("call_latency", "call_throughput"):
                rpc = await RPC.create(channel)
                payload = payload_of(params["payload"])

                def call() -> Any:
                    return rpc.call(ECHO, kwargs={"payload": payload})

                if shape == "call_latency":
                    for _ in range(params["warmup_calls"]):
                        await call()
                    samples = await measure.sequential_latency_async(
                        call, params["duration"]
                    )
                    return {"samples": samples}
                window = await measure.tasks_in_flight(
                    call, params["workers"], params["warmup"], params["duration"]
                )
                return window.result()
            if shape == "cast":
                master = Master(channel)
                window = await measure.tasks_in_flight(
                    lambda: master.create_task(TICK, kwargs={}),
                    params["workers"],
                    params["warmup"],
                    params["duration"],
                )
                return window.result()
            raise UnsupportedShape(shape)
        finally:
            await connection.close()
