"""nameko 2 RPC: a service run by ServiceRunner, called through the
standalone ClusterRpcProxy.

nameko runs on eventlet: bench.worker monkey-patches the process before
anything else is imported. The standalone proxy is not safe to share
between (green) threads, so requests in flight are kept by one thread with
``call_async`` (a window of N outstanding requests) instead of N threads.
The service keeps nameko's default of 10 concurrent workers. nameko's RPC
always replies, so it has no cast to compare; fanout, notifications and
streams are not benchmarked either.
"""

from __future__ import annotations

from typing import Any

from nameko.rpc import rpc
from nameko.runners import ServiceRunner
from nameko.standalone.rpc import ClusterRpcProxy

from .. import measure
from .common import CALL_TIMEOUT, Arrivals, UnsupportedShape
from .common import make_payload as payload_of

SERVICE = "bench_nameko"


class BenchService:
    name = SERVICE

    @rpc
    def echo(self, payload: Any) -> Any:
        return payload


class Server:
    def __init__(self, url: str, arrivals: Arrivals) -> None:
        reason = "nameko's RPC has no fire-and-forget cast"
        self.unavailable = {
            "cast": reason,
            "fanout": reason,
            "notify": "nameko events are not oslo-style notifications",
            "stream": "nameko has no streamed replies",
        }
        self._runner = ServiceRunner({"AMQP_URI": url})
        self._runner.add_service(BenchService)

    def start(self) -> None:
        self._runner.start()

    def stop(self) -> None:
        self._runner.stop()


class Client:
    def __init__(self, url: str) -> None:
        self._cluster = ClusterRpcProxy({"AMQP_URI": url}, timeout=CALL_TIMEOUT)
        self._proxy = self._cluster.start()

    def close(self) -> None:
        self._cluster.stop()

    def run(self, shape: str, params: dict[str, Any]) -> dict[str, Any]:
        service = getattr(self._proxy, SERVICE)
        if shape == "call_latency":
            payload = payload_of(params["payload"])
            for _ in range(params["warmup_calls"]):
                service.echo(payload)
            samples = measure.sequential_latency(
                lambda: service.echo(payload), params["duration"]
            )
            return {"samples": samples}
        if shape == "call_throughput":
            payload = payload_of(params["payload"])
            return measure.window_in_flight(
                lambda: service.echo.call_async(payload),
                lambda reply: reply.result(),
                params["workers"],
                params["warmup"],
                params["duration"],
            ).result()
        raise UnsupportedShape(shape)
