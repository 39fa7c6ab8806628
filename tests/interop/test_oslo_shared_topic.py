"""A leveret server and an oslo.messaging 18.x server sharing one topic.

This is how a service moves from oslo to leveret one server at a time. Both
servers consume the topic's one queue, so both peers declare it, and RabbitMQ
rejects a declaration whose durable flag differs from the queue's. leveret
declares the queue durable, so the oslo side runs with
``amqp_durable_queues = true``.

The control exchange must be durable too, because an oslo server that finds a
non-durable exchange declares its queues non-durable. The session's oslo
transport declares the exchange before leveret does, which makes it durable.
"""

from __future__ import annotations

from typing import Any

import oslo_messaging as om
import pytest
from interop_support import CALL_TIMEOUT, new_topic

import leveret

pytestmark = pytest.mark.broker

# Calls per client. RabbitMQ delivers a queue's messages to its consumers in
# turn, so each server gets about half of them.
CALLS = 6


class LeveretEndpoint:
    def whoami(self) -> str:
        return "leveret"


class OsloEndpoint:
    def whoami(self, ctxt: dict[str, Any]) -> str:
        return "oslo"


@pytest.fixture(scope="module")
def topic(start_leveret_server: Any, start_oslo_server: Any) -> str:
    """A topic served by leveret (which declares the queue) and then by oslo."""
    topic = new_topic("shared")
    start_leveret_server(topic, "leveret-1", [LeveretEndpoint()])
    start_oslo_server(topic, "oslo-1", [OsloEndpoint()])
    return topic


def test_leveret_client_reaches_both(leveret_transport: Any, topic: str) -> None:
    client = leveret.RPCClient(
        leveret_transport, leveret.Target(topic=topic), timeout=CALL_TIMEOUT
    )
    answers = {client.call("whoami") for _ in range(CALLS)}
    assert answers == {"leveret", "oslo"}


def test_oslo_client_reaches_both(oslo_transport: Any, topic: str) -> None:
    client = om.get_rpc_client(
        oslo_transport, om.Target(topic=topic), timeout=CALL_TIMEOUT
    )
    answers = {client.call({}, "whoami") for _ in range(CALLS)}
    assert answers == {"leveret", "oslo"}
