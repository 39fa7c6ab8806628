"""Heartbeats keep flowing while a sync endpoint method runs for a long time."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from typing import Any

from broker_api import new_topic

import leveret

HEARTBEAT_SECONDS = 2
# Longer than two heartbeat intervals, so a blocked event loop would miss
# enough heartbeats for one side to drop the connection.
HANDLER_SECONDS = 6


class Sleeper:
    def sleep(self, seconds: float) -> str:
        time.sleep(seconds)
        return "rested"


def _connections_opened(transport: leveret.Transport) -> int:
    return int(transport._supervisor.connections_opened)  # type: ignore[attr-defined]


def test_long_sync_method_keeps_connection(
    amqp_url: str, make_transport: Callable[[str], leveret.Transport]
) -> None:
    url = f"{amqp_url}?heartbeat={HEARTBEAT_SECONDS}"
    server_transport = make_transport(url)
    client_transport = make_transport(url)
    topic = new_topic()
    target = leveret.Target(topic, server="server-1")

    with leveret.RPCServer(server_transport, target, [Sleeper()]):
        client = leveret.RPCClient(client_transport, leveret.Target(topic), timeout=30)
        result = client.call("sleep", seconds=HANDLER_SECONDS)
        # One more call shows that both connections still carry requests.
        after = client.call("sleep", seconds=0)

    assert result == "rested"
    assert after == "rested"
    assert _connections_opened(server_transport) == 1
    assert _connections_opened(client_transport) == 1


def test_long_sync_methods_in_parallel(
    amqp_url: str, make_transport: Callable[[str], leveret.Transport]
) -> None:
    url = f"{amqp_url}?heartbeat={HEARTBEAT_SECONDS}"
    transport = make_transport(url)
    topic = new_topic()
    target = leveret.Target(topic, server="server-1")

    # Fewer worker threads than requests: some wait in the pool's queue.
    with leveret.RPCServer(transport, target, [Sleeper()], max_workers=2):
        client = leveret.AsyncRPCClient(transport, leveret.Target(topic), timeout=30)

        async def call_four() -> list[str]:
            return await asyncio.gather(
                *(client.call("sleep", seconds=HANDLER_SECONDS / 2) for _ in range(4))
            )

        results = asyncio.run(call_four())

    assert results == ["rested"] * 4
    assert _connections_opened(transport) == 1


def _connected(transport: leveret.Transport) -> bool:
    return transport._supervisor.connection is not None  # type: ignore[attr-defined]


def test_silent_broker_noticed(
    own_broker: Any, make_transport: Callable[[str], leveret.Transport]
) -> None:
    transport = make_transport(f"{own_broker.url}?heartbeat={HEARTBEAT_SECONDS}")
    transport.connect(timeout=30)
    broker_pid = int((own_broker.state_dir / "pid").read_text())

    # A stopped broker keeps its sockets open but sends nothing: the case
    # only heartbeats reveal.
    os.kill(broker_pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        while _connected(transport) and time.monotonic() - started < 30:
            time.sleep(0.1)
        noticed_after = time.monotonic() - started
    finally:
        os.kill(broker_pid, signal.SIGCONT)

    assert not _connected(transport)
    # Two heartbeat intervals, plus aiormq's one-second check step and the
    # second it adds to the interval.
    assert noticed_after < 2 * HEARTBEAT_SECONDS + 2
