"""oslo.messaging's in-process ``fake://`` driver: client and server in one
process, the server on its default threading executor."""

from __future__ import annotations

from typing import Any

from .. import measure
from ._oslo_setup import make_conf, om
from .common import CALL_TIMEOUT, UnsupportedShape
from .common import make_payload as payload_of

TOPIC = "bench_fake"


class Endpoint:
    def echo(self, ctxt: Any, payload: Any) -> Any:
        return payload


class Client:
    def __init__(self, url: str) -> None:
        conf, parsed = make_conf("fake://")
        self._transport = om.get_rpc_transport(conf, url=parsed)
        self._server = om.get_rpc_server(
            self._transport, om.Target(topic=TOPIC, server="s1"), [Endpoint()]
        )
        self._server.start()
        self._client = om.get_rpc_client(
            self._transport, om.Target(topic=TOPIC), timeout=CALL_TIMEOUT
        )

    def close(self) -> None:
        self._server.stop()
        self._server.wait()
        self._transport.cleanup()

    def run(self, shape: str, params: dict[str, Any]) -> dict[str, Any]:
        payload = payload_of(params["payload"])

        def call() -> Any:
            return self._client.call({}, "echo", payload=payload)

        if shape == "call_latency":
            for _ in range(params["warmup_calls"]):
                call()
            return {"samples": measure.sequential_latency(call, params["duration"])}
        if shape == "call_throughput":
            return measure.threads_in_flight(
                call, params["workers"], params["warmup"], params["duration"]
            ).result()
        raise UnsupportedShape(shape)
