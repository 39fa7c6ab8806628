"""leveret on its in-process transport (``memory://``): client and server in
one process, no broker.

The blocking client calls a plain method, which runs in the server's thread
pool, so one call crosses threads four times: caller -> transport loop thread
-> pool worker -> loop thread -> caller. The asyncio client calls an
``async def`` method on its own event loop, with no thread crossing.
"""

from __future__ import annotations

import asyncio
from typing import Any

import leveret

from .. import measure
from .common import CALL_TIMEOUT, UnsupportedShape
from .common import make_payload as payload_of

TOPIC = "bench_memory"


class SyncEndpoint:
    def echo(self, payload: Any) -> Any:
        return payload


class AsyncEndpoint:
    async def echo(self, payload: Any) -> Any:
        return payload


class Client:
    def __init__(self, url: str) -> None:
        self._transport = leveret.get_transport("memory://bench-sync")
        self._server = leveret.RPCServer(
            self._transport, leveret.Target(topic=TOPIC, server="s1"), [SyncEndpoint()]
        )
        self._server.start()
        self._client = leveret.RPCClient(
            self._transport, leveret.Target(topic=TOPIC), timeout=CALL_TIMEOUT
        )

    def close(self) -> None:
        self._server.stop()
        self._transport.close()

    def run(self, shape: str, params: dict[str, Any]) -> dict[str, Any]:
        if params["api"] == "async":
            return asyncio.run(self._run_async(shape, params))
        payload = payload_of(params["payload"])

        def call() -> Any:
            return self._client.call("echo", payload=payload)

        if shape == "call_latency":
            for _ in range(params["warmup_calls"]):
                call()
            return {"samples": measure.sequential_latency(call, params["duration"])}
        if shape == "call_throughput":
            return measure.threads_in_flight(
                call, params["workers"], params["warmup"], params["duration"]
            ).result()
        raise UnsupportedShape(shape)

    async def _run_async(self, shape: str, params: dict[str, Any]) -> dict[str, Any]:
        transport = leveret.get_transport("memory://bench-async")
        server = leveret.AsyncRPCServer(
            transport, leveret.Target(topic=TOPIC, server="s1"), [AsyncEndpoint()]
        )
        await server.start()
        client = leveret.AsyncRPCClient(
            transport, leveret.Target(topic=TOPIC), timeout=CALL_TIMEOUT
        )
        payload = payload_of(params["payload"])

        def call() -> Any:
            return client.call("echo", payload=payload)

        try:
            if shape == "call_latency":
                for _ in range(params["warmup_calls"]):
                    await call()
                samples = await measure.sequential_latency_async(
                    call, params["duration"]
                )
                return {"samples": samples}
            if shape == "call_throughput":
                window = await measure.tasks_in_flight(
                    call, params["workers"], params["warmup"], params["duration"]
                )
                return window.result()
            raise UnsupportedShape(shape)
        finally:
            await server.stop()
            await transport.aclose()
