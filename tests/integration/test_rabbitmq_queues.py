"""The queues leveret declares, as the broker reports them (``rabbitmqctl``).

Each test uses a broker of its own, because rabbitmqctl needs the broker's
state folder, which only ``own_broker`` gives.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pika
from broker_api import WAIT_SECONDS, new_topic, rabbitmqctl, wait_until

import leveret
from leveret.transports.base import NotificationAddress

QUEUE_COLUMNS = ("name", "durable", "exclusive", "auto_delete", "arguments", "type")
RECONNECT_SECONDS = 60.0


class Service:
    def __init__(self) -> None:
        self.received: list[Any] = []

    def ping(self) -> str:
        return "pong"

    def record(self, value: Any) -> None:
        self.received.append(value)


def _queues(broker: Any) -> dict[str, dict[str, Any]]:
    rows = rabbitmqctl(broker.state_dir, "list_queues", *QUEUE_COLUMNS)
    return {row["name"]: row for row in rows}


def _call_until_answered(client: leveret.RPCClient) -> Any:
    deadline = time.monotonic() + RECONNECT_SECONDS
    while True:
        try:
            return client.call("ping")
        except (
            leveret.MessagingTimeout,
            leveret.ConnectionLost,
            leveret.NoServerError,
        ):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_no_queue_transient_and_shared(
    own_broker: Any, make_transport: Callable[[str], leveret.Transport]
) -> None:
    transport = make_transport(own_broker.url)
    topic = new_topic()
    target = leveret.Target(topic, server="server-1")

    with leveret.RPCServer(transport, target, [Service()]):
        client = leveret.RPCClient(transport, leveret.Target(topic), timeout=10)
        assert client.call("ping") == "pong"
        # Notification queues, with and without a pool.
        address = NotificationAddress("openstack", f"{topic}-notify", "info")
        binding = transport.binding
        listeners = [
            binding.run_blocking(
                transport.listen_notifications(
                    [address], lambda message: None, pool=pool, prefetch=10
                )
            )
            for pool in (None, f"{topic}-pool")
        ]
        binding.run_blocking(transport.send_notification(address, b"{}", retry=None))
        queues = _queues(own_broker)
        for listener in listeners:
            binding.run_blocking(listener.close())

    names = set(queues)
    assert topic in names
    assert f"{topic}.server-1" in names
    assert any(name.startswith(f"{topic}_fanout_") for name in names), names
    assert any(name.startswith("reply_") for name in names), names
    assert f"{topic}-notify.info" in names
    assert f"{topic}-pool" in names
    for name, queue in queues.items():
        assert queue["durable"] or queue["exclusive"], (
            f"queue {name} is neither durable nor exclusive: {queue}"
        )


def test_fanout_queue_kept_after_restart(
    own_broker: Any, make_transport: Callable[[str], leveret.Transport]
) -> None:
    transport = make_transport(own_broker.url)
    topic = new_topic()
    service = Service()
    target = leveret.Target(topic, server="server-1")

    with leveret.RPCServer(transport, target, [service]):
        before = {n for n in _queues(own_broker) if n.startswith(f"{topic}_fanout_")}
        port = own_broker.port
        own_broker.stop()
        own_broker.start(port=port)
        client = leveret.RPCClient(transport, leveret.Target(topic), timeout=2)
        assert _call_until_answered(client) == "pong"
        after = {n for n in _queues(own_broker) if n.startswith(f"{topic}_fanout_")}
        client.prepare(fanout=True).cast("record", value="after restart")
        assert wait_until(lambda: service.received == ["after restart"])

    assert len(before) == 1
    assert after == before


def test_quorum_option_declares_quorum(
    own_broker: Any, make_transport: Callable[[str], leveret.Transport]
) -> None:
    transport = make_transport(f"{own_broker.url}?quorum_queues=true")
    topic = new_topic()
    target = leveret.Target(topic, server="server-1")

    with leveret.RPCServer(transport, target, [Service()]):
        client = leveret.RPCClient(transport, leveret.Target(topic), timeout=10)
        assert client.call("ping") == "pong"
        queues = _queues(own_broker)

    assert queues[topic]["type"] == "quorum"
    assert queues[f"{topic}.server-1"]["type"] == "quorum"
    assert queues[topic]["durable"] is True


def test_prefetch_option_reaches_broker(
    own_broker: Any, make_transport: Callable[[str], leveret.Transport]
) -> None:
    transport = make_transport(f"{own_broker.url}?prefetch=3")
    topic = new_topic()
    target = leveret.Target(topic, server="server-1")

    # A server given no prefetch of its own takes the URL's.
    with leveret.RPCServer(transport, target, [Service()]):
        assert wait_until(
            lambda: len(rabbitmqctl(own_broker.state_dir, "list_consumers")) >= 3,
            WAIT_SECONDS,
        )
        rows = rabbitmqctl(
            own_broker.state_dir, "list_consumers", "queue_name", "prefetch_count"
        )

    prefetches = {row["queue_name"]: row["prefetch_count"] for row in rows}
    assert prefetches[topic] == 3
    assert prefetches[f"{topic}.server-1"] == 3


def test_server_consumes_again_after_its_queue_is_deleted(
    own_broker: Any, make_transport: Callable[[str], leveret.Transport]
) -> None:
    server_transport = make_transport(own_broker.url)
    client_transport = make_transport(own_broker.url)
    topic = new_topic("deleted")
    target = leveret.Target(topic, server="server-1")

    with leveret.RPCServer(server_transport, target, [Service()]):
        client = leveret.RPCClient(
            client_transport, leveret.Target(topic), timeout=WAIT_SECONDS
        )
        assert client.call("ping") == "pong"
        # An operator deletes the topic's queue: the broker cancels the
        # server's consumer, and the server declares and consumes it again.
        with pika.BlockingConnection(pika.URLParameters(own_broker.url)) as admin:
            admin.channel().queue_delete(topic)

        assert _call_until_answered(client.prepare(timeout=2)) == "pong"
        assert topic in _queues(own_broker)
    assert server_transport._supervisor.connections_opened == 1  # type: ignore[attr-defined]
