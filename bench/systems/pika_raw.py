"""Raw pika (BlockingConnection): the floor the libraries build on.

- Round trip: the client publishes the payload to queue ``bench_pika_rpc``
  with ``reply_to`` and ``correlation_id``. A server thread publishes the
  body back to the reply queue and acknowledges. Publisher confirms are off
  unless the case asks for them.
- Publish to consume: the client publishes persistent messages with the
  mandatory flag and publisher confirms, each waiting for its confirm, to
  the durable queue ``bench_pika_cast`` (leveret's casts and topic queues
  are the same); a server thread acknowledges and counts them. With
  ``transient`` the queue is ``bench_pika_cast_transient``, not durable, and
  the messages are not persistent (oslo.messaging's default topology), so
  the broker confirms without writing to disk.
- Fanout: the same, to fanout exchange ``bench_pika_fanout`` with three
  exclusive queues consumed by one server thread.

Every server thread has its own connection, because pika's BlockingConnection
must stay on the thread that uses it.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any

import pika

from .. import measure
from .common import FANOUT_SERVERS, Arrivals, UnsupportedShape
from .common import make_payload as payload_of

RPC_QUEUE = "bench_pika_rpc"
CAST_QUEUE = "bench_pika_cast"
TRANSIENT_QUEUE = "bench_pika_cast_transient"
FANOUT_EXCHANGE = "bench_pika_fanout"
PREFETCH = 64  # the same as leveret's server default
START_SECONDS = 30.0
CAST_BODY = b'{"method": "tick", "args": {}}'


class _Consumer:
    """A connection and channel that one thread consumes on."""

    def __init__(self, url: str, setup: Callable[[Any], None]) -> None:
        self._url = url
        self._setup = setup
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.connection: Any = None
        self.channel: Any = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(START_SECONDS):
            raise TimeoutError(f"pika consumer did not start in {START_SECONDS} s")
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        try:
            self.connection = pika.BlockingConnection(pika.URLParameters(self._url))
            self.channel = self.connection.channel()
            self.channel.basic_qos(prefetch_count=PREFETCH)
            self._setup(self.channel)
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.channel.start_consuming()
        self.connection.close()

    def stop(self) -> None:
        if self.connection is not None and self.connection.is_open:
            self.connection.add_callback_threadsafe(self.channel.stop_consuming)
        self._thread.join(START_SECONDS)


class Server:
    def __init__(self, url: str, arrivals: Arrivals) -> None:
        self.unavailable = {
            "notify": "raw pika is the floor for RPC and casts only",
            "stream": "raw pika is the floor for RPC and casts only",
        }
        self._arrivals = arrivals
        self._consumers = [
            _Consumer(url, self._setup_rpc),
            _Consumer(url, self._setup_cast),
            _Consumer(url, self._setup_fanout),
        ]

    def _setup_rpc(self, channel: Any) -> None:
        def on_request(channel: Any, method: Any, properties: Any, body: bytes) -> None:
            channel.basic_publish(
                exchange="",
                routing_key=properties.reply_to,
                properties=pika.BasicProperties(
                    correlation_id=properties.correlation_id
                ),
                body=body,
            )
            channel.basic_ack(method.delivery_tag)

        channel.queue_declare(RPC_QUEUE, auto_delete=True)
        channel.basic_consume(RPC_QUEUE, on_request)

    def _counter(self, name: str) -> Callable[..., None]:
        def on_message(channel: Any, method: Any, properties: Any, body: bytes) -> None:
            self._arrivals.record(name)
            channel.basic_ack(method.delivery_tag)

        return on_message

    def _setup_cast(self, channel: Any) -> None:
        channel.queue_declare(CAST_QUEUE, durable=True)
        channel.queue_purge(CAST_QUEUE)
        channel.basic_consume(CAST_QUEUE, self._counter("cast"))
        channel.queue_declare(TRANSIENT_QUEUE, auto_delete=True)
        channel.basic_consume(TRANSIENT_QUEUE, self._counter("cast"))

    def _setup_fanout(self, channel: Any) -> None:
        channel.exchange_declare(FANOUT_EXCHANGE, "fanout", auto_delete=True)
        for index in range(FANOUT_SERVERS):
            queue = channel.queue_declare("", exclusive=True).method.queue
            channel.queue_bind(queue, FANOUT_EXCHANGE)
            channel.basic_consume(queue, self._counter(f"fanout-{index}"))

    def start(self) -> None:
        for consumer in self._consumers:
            consumer.start()

    def stop(self) -> None:
        for consumer in self._consumers:
            consumer.stop()


class Client:
    def __init__(self, url: str) -> None:
        self._url = url

    def close(self) -> None:
        pass

    def run(self, shape: str, params: dict[str, Any]) -> dict[str, Any]:
        connection = pika.BlockingConnection(pika.URLParameters(self._url))
        try:
            channel = connection.channel()
            if shape == "call_latency":
                return self._round_trips(connection, channel, params)
            if shape in ("cast", "fanout"):
                if params["workers"] != 1:
                    raise UnsupportedShape("a BlockingChannel has one publisher")
                channel.confirm_delivery()
                exchange, key, mode = "", CAST_QUEUE, 2
                if params.get("transient"):
                    key, mode = TRANSIENT_QUEUE, 1
                if shape == "fanout":
                    exchange, key = FANOUT_EXCHANGE, ""
                properties = pika.BasicProperties(delivery_mode=mode)

                def publish() -> None:
                    channel.basic_publish(
                        exchange, key, CAST_BODY, properties, mandatory=True
                    )

                return measure.threads_in_flight(
                    publish, 1, params["warmup"], params["duration"]
                ).result()
            raise UnsupportedShape(shape)
        finally:
            connection.close()

    def _round_trips(
        self, connection: Any, channel: Any, params: dict[str, Any]
    ) -> dict[str, Any]:
        if params.get("confirm"):
            channel.confirm_delivery()
        reply_queue = channel.queue_declare("", exclusive=True).method.queue
        waiting: dict[str, bool] = {}

        def on_reply(channel: Any, method: Any, properties: Any, body: bytes) -> None:
            waiting.pop(properties.correlation_id, None)

        channel.basic_consume(reply_queue, on_reply, auto_ack=True)
        body = payload_of(params["payload"]).encode()
        ids = itertools.count()

        def round_trip() -> None:
            correlation_id = str(next(ids))
            waiting[correlation_id] = True
            channel.basic_publish(
                "",
                RPC_QUEUE,
                body,
                pika.BasicProperties(
                    reply_to=reply_queue, correlation_id=correlation_id
                ),
            )
            while correlation_id in waiting:
                connection.process_data_events(time_limit=None)

        for _ in range(params["warmup_calls"]):
            round_trip()
        return {"samples": measure.sequential_latency(round_trip, params["duration"])}
