"""oslo.messaging's rabbit driver with its default threading executor.

The URL scheme ``amqp://`` is rewritten to ``rabbit://``, the rabbit
driver's. The server process serves ``bench_oslo`` (echo and tick), three
servers of ``bench_oslo_fanout`` and a notification listener of
``bench_oslo_notify``, all on one RPC and one notification transport.
"""

from __future__ import annotations

from typing import Any

from .. import measure
from ._oslo_setup import make_conf, om
from .common import CALL_TIMEOUT, FANOUT_SERVERS, Arrivals, UnsupportedShape
from .common import make_payload as payload_of

TOPIC = "bench_oslo"
FANOUT_TOPIC = "bench_oslo_fanout"
NOTIFY_TOPIC = "bench_oslo_notify"


def rabbit_url(url: str) -> str:
    scheme, rest = url.split("://", 1)
    if scheme not in ("amqp", "rabbit"):
        raise ValueError(f"unsupported broker URL {url!r}: expected amqp://")
    return f"rabbit://{rest}"


class Endpoint:
    def __init__(self, arrivals: Arrivals, name: str = "cast") -> None:
        self._arrivals = arrivals
        self._name = name

    def echo(self, ctxt: Any, payload: Any) -> Any:
        return payload

    def tick(self, ctxt: Any) -> None:
        self._arrivals.record(self._name)


class NotifyEndpoint:
    def __init__(self, arrivals: Arrivals) -> None:
        self._arrivals = arrivals

    def info(
        self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, metadata: Any
    ) -> None:
        self._arrivals.record("notify")


class Server:
    def __init__(self, url: str, arrivals: Arrivals) -> None:
        self.unavailable: dict[str, str] = {"stream": "oslo.messaging has no streams"}
        conf, parsed = make_conf(rabbit_url(url))
        self._rpc = om.get_rpc_transport(conf, url=parsed)
        self._notification = om.get_notification_transport(conf, url=parsed)
        self._servers = [
            om.get_rpc_server(
                self._rpc, om.Target(topic=TOPIC, server="s1"), [Endpoint(arrivals)]
            )
        ]
        for index in range(FANOUT_SERVERS):
            self._servers.append(
                om.get_rpc_server(
                    self._rpc,
                    om.Target(topic=FANOUT_TOPIC, server=f"f{index}"),
                    [Endpoint(arrivals, f"fanout-{index}")],
                )
            )
        self._listener = om.get_notification_listener(
            self._notification,
            [om.Target(topic=NOTIFY_TOPIC)],
            [NotifyEndpoint(arrivals)],
            pool=None,
            allow_requeue=False,
        )

    def start(self) -> None:
        for server in self._servers:
            server.start()
        self._listener.start()

    def stop(self) -> None:
        self._listener.stop()
        self._listener.wait()
        for server in self._servers:
            server.stop()
        for server in self._servers:
            server.wait()
        self._rpc.cleanup()
        self._notification.cleanup()


class Client:
    def __init__(self, url: str) -> None:
        conf, parsed = make_conf(rabbit_url(url))
        self._rpc = om.get_rpc_transport(conf, url=parsed)
        self._notification = om.get_notification_transport(conf, url=parsed)
        self._client = om.get_rpc_client(
            self._rpc, om.Target(topic=TOPIC), timeout=CALL_TIMEOUT
        )

    def close(self) -> None:
        self._rpc.cleanup()
        self._notification.cleanup()

    def run(self, shape: str, params: dict[str, Any]) -> dict[str, Any]:
        client = self._client
        if shape == "call_latency":
            payload = payload_of(params["payload"])
            for _ in range(params["warmup_calls"]):
                client.call({}, "echo", payload=payload)
            samples = measure.sequential_latency(
                lambda: client.call({}, "echo", payload=payload), params["duration"]
            )
            return {"samples": samples}
        if shape == "call_throughput":
            payload = payload_of(params["payload"])
            return measure.threads_in_flight(
                lambda: client.call({}, "echo", payload=payload),
                params["workers"],
                params["warmup"],
                params["duration"],
            ).result()
        if shape == "cast":
            return measure.threads_in_flight(
                lambda: client.cast({}, "tick"),
                params["workers"],
                params["warmup"],
                params["duration"],
            ).result()
        if shape == "fanout":
            fanout = om.get_rpc_client(
                self._rpc, om.Target(topic=FANOUT_TOPIC, fanout=True)
            )
            return measure.threads_in_flight(
                lambda: fanout.cast({}, "tick"), 1, params["warmup"], params["duration"]
            ).result()
        if shape == "notify":
            notifier = om.Notifier(
                self._notification,
                publisher_id="bench.client",
                driver="messagingv2",
                topics=[NOTIFY_TOPIC],
            )
            payload = {"size": 100, "text": payload_of(100)}
            return measure.threads_in_flight(
                lambda: notifier.info({}, "bench.event", payload),
                params["workers"],
                params["warmup"],
                params["duration"],
            ).result()
        raise UnsupportedShape(shape)
