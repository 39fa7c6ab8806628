"""leveret on the broker: RPCClient with threads, AsyncRPCClient with tasks.

The server process serves two topics on one transport (one connection).
The blocking client calls ``bench_leveret_sync``, whose plain methods run in
the server's thread pool. The asyncio client calls ``bench_leveret_async``,
whose ``async def`` methods run on the event loop. Three more servers of
``bench_leveret_fanout`` take the fanout casts, and a NotificationListener
takes notifications of ``bench_leveret_notify``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import leveret

from .. import measure
from .common import CALL_TIMEOUT, FANOUT_SERVERS, Arrivals, UnsupportedShape
from .common import make_payload as payload_of

SYNC_TOPIC = "bench_leveret_sync"
ASYNC_TOPIC = "bench_leveret_async"
FANOUT_TOPIC = "bench_leveret_fanout"
NOTIFY_TOPIC = "bench_leveret_notify"

logger = logging.getLogger("bench.leveret")


class SyncEndpoint:
    def __init__(self, arrivals: Arrivals, name: str = "cast") -> None:
        self._arrivals = arrivals
        self._name = name

    def echo(self, payload: Any) -> Any:
        return payload

    def tick(self) -> None:
        self._arrivals.record(self._name)

    def numbers(self, count: int) -> Iterator[int]:
        yield from range(count)


class AsyncEndpoint:
    def __init__(self, arrivals: Arrivals) -> None:
        self._arrivals = arrivals

    async def echo(self, payload: Any) -> Any:
        return payload

    async def tick(self) -> None:
        self._arrivals.record("cast")

    async def numbers(self, count: int) -> AsyncIterator[int]:
        for number in range(count):
            yield number


class NotifyEndpoint:
    def __init__(self, arrivals: Arrivals) -> None:
        self._arrivals = arrivals

    def info(
        self,
        context: Any,
        publisher_id: str,
        event_type: str,
        payload: Any,
        metadata: Any,
    ) -> None:
        self._arrivals.record("notify")


class Server:
    def __init__(self, url: str, arrivals: Arrivals) -> None:
        self.unavailable: dict[str, str] = {}
        self._transport = leveret.get_transport(url)
        self._servers = [
            leveret.RPCServer(
                self._transport,
                leveret.Target(topic=SYNC_TOPIC, server="s1"),
                [SyncEndpoint(arrivals)],
            ),
            leveret.RPCServer(
                self._transport,
                leveret.Target(topic=ASYNC_TOPIC, server="s1"),
                [AsyncEndpoint(arrivals)],
            ),
        ]
        for index in range(FANOUT_SERVERS):
            self._servers.append(
                leveret.RPCServer(
                    self._transport,
                    leveret.Target(topic=FANOUT_TOPIC, server=f"f{index}"),
                    [SyncEndpoint(arrivals, f"fanout-{index}")],
                )
            )
        self._listener: Any = None
        listener_class = getattr(leveret, "NotificationListener", None)
        if listener_class is None:
            self.unavailable["notify"] = "leveret.NotificationListener is missing"
        else:
            self._listener = listener_class(
                self._transport,
                [leveret.Target(topic=NOTIFY_TOPIC)],
                [NotifyEndpoint(arrivals)],
                pool=None,
            )

    def start(self) -> None:
        for server in self._servers:
            server.start()
        if self._listener is not None:
            try:
                self._listener.start()
            except Exception as exc:
                logger.exception("notification listener failed to start")
                self.unavailable["notify"] = f"listener failed: {exc!r}"
                self._listener = None

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.stop()
        for server in self._servers:
            server.stop()
        self._transport.close()


class Client:
    def __init__(self, url: str) -> None:
        self._url = url
        self._transport = leveret.get_transport(url)

    def close(self) -> None:
        self._transport.close()

    def run(self, shape: str, params: dict[str, Any]) -> dict[str, Any]:
        if params["api"] == "async":
            return asyncio.run(self._run_async(shape, params))
        return self._run_sync(shape, params)

    def _client(self, topic: str, **prepare: Any) -> leveret.RPCClient:
        client = leveret.RPCClient(
            self._transport, leveret.Target(topic=topic), timeout=CALL_TIMEOUT
        )
        return client.prepare(**prepare) if prepare else client

    def _run_sync(self, shape: str, params: dict[str, Any]) -> dict[str, Any]:
        client = self._client(SYNC_TOPIC)
        if shape == "call_latency":
            payload = payload_of(params["payload"])
            for _ in range(params["warmup_calls"]):
                client.call("echo", payload=payload)
            samples = measure.sequential_latency(
                lambda: client.call("echo", payload=payload), params["duration"]
            )
            return {"samples": samples}
        if shape == "call_throughput":
            payload = payload_of(params["payload"])
            window = measure.threads_in_flight(
                lambda: client.call("echo", payload=payload),
                params["workers"],
                params["warmup"],
                params["duration"],
            )
            return window.result()
        if shape == "cast":
            return measure.threads_in_flight(
                lambda: client.cast("tick"),
                params["workers"],
                params["warmup"],
                params["duration"],
            ).result()
        if shape == "fanout":
            fanout = self._client(FANOUT_TOPIC, fanout=True)
            return measure.threads_in_flight(
                lambda: fanout.cast("tick"), 1, params["warmup"], params["duration"]
            ).result()
        if shape == "stream":
            count = params["items"]

            def take_stream() -> int:
                with client.stream("numbers", count=count) as stream:
                    return sum(1 for _ in stream)

            take_stream()
            samples = measure.sequential_latency(
                take_stream, params["duration"], min_count=1
            )
            return {"items": count * len(samples), "elapsed": sum(samples)}
        if shape == "notify":
            return self._notify(params)
        raise UnsupportedShape(shape)

    def _notify(self, params: dict[str, Any]) -> dict[str, Any]:
        notifier_class = getattr(leveret, "Notifier", None)
        if notifier_class is None:
            raise UnsupportedShape("leveret.Notifier is missing")
        notifier = notifier_class(
            self._transport, "bench.client", topics=(NOTIFY_TOPIC,)
        )
        payload = {"size": 100, "text": payload_of(100)}
        return measure.threads_in_flight(
            lambda: notifier.info("bench.event", payload),
            params["workers"],
            params["warmup"],
            params["duration"],
        ).result()

    async def _run_async(self, shape: str, params: dict[str, Any]) -> dict[str, Any]:
        # Each asyncio.run gets a transport of its own: with own_loop=false
        # it binds to that run's loop.
        url = self._url
        if not params.get("own_loop", True):
            url += ("&" if "?" in url else "?") + "own_loop=false"
        transport = leveret.get_transport(url)
        try:
            return await self._measure_async(transport, shape, params)
        finally:
            await transport.aclose()

    async def _measure_async(
        self, transport: leveret.Transport, shape: str, params: dict[str, Any]
    ) -> dict[str, Any]:
        client = leveret.AsyncRPCClient(
            transport, leveret.Target(topic=ASYNC_TOPIC), timeout=CALL_TIMEOUT
        )
        if shape == "call_latency":
            payload = payload_of(params["payload"])
            for _ in range(params["warmup_calls"]):
                await client.call("echo", payload=payload)
            samples = await measure.sequential_latency_async(
                lambda: client.call("echo", payload=payload), params["duration"]
            )
            return {"samples": samples}
        if shape == "call_throughput":
            payload = payload_of(params["payload"])
            window = await measure.tasks_in_flight(
                lambda: client.call("echo", payload=payload),
                params["workers"],
                params["warmup"],
                params["duration"],
            )
            return window.result()
        if shape == "cast":
            window = await measure.tasks_in_flight(
                lambda: client.cast("tick"),
                params["workers"],
                params["warmup"],
                params["duration"],
            )
            return window.result()
        if shape == "fanout":
            fanout = leveret.AsyncRPCClient(
                transport, leveret.Target(topic=FANOUT_TOPIC, fanout=True)
            )
            window = await measure.tasks_in_flight(
                lambda: fanout.cast("tick"), 1, params["warmup"], params["duration"]
            )
            return window.result()
        if shape == "stream":
            count = params["items"]

            async def take_stream() -> int:
                taken = 0
                async with client.stream("numbers", count=count) as stream:
                    async for _ in stream:
                        taken += 1
                return taken

            await take_stream()
            samples = await measure.sequential_latency_async(
                take_stream, params["duration"], min_count=1
            )
            return {"items": count * len(samples), "elapsed": sum(samples)}
        raise UnsupportedShape(shape)
