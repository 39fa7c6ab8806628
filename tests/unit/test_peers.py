"""Replies from a peer that is not a leveret server, and known stream gaps."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

from harness import TOPIC, WAIT_SECONDS, Api

import leveret
from leveret import _envelope
from leveret.transports.base import Address, IncomingMessage, Listener


def _listen_as_old_peer(api: Api, result: Any) -> Listener:
    """Consume the topic like an older oslo.messaging server, which sends two
    replies: the result with ``ending`` false, then ``ending`` true alone."""
    tasks: set[asyncio.Task[None]] = set()

    async def reply(message: IncomingMessage) -> None:
        request = _envelope.decode_request(message.body)
        assert isinstance(request, _envelope.Request)
        assert request.msg_id is not None
        assert request.reply_q is not None
        first = _envelope.encode_reply(request.msg_id, result, ending=False)
        last = _envelope.encode_reply(request.msg_id, None, ending=True)
        await api.transport.send_reply(request.reply_q, first)
        await api.transport.send_reply(request.reply_q, last)

    def handle(message: IncomingMessage) -> None:
        task = asyncio.get_running_loop().create_task(reply(message))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    address = Address(api.transport.default_exchange, TOPIC)
    return api.run(api.transport.listen([address], handle, prefetch=1))


def test_call_keeps_result_before_ending(api: Api) -> None:
    listener = _listen_as_old_peer(api, {"answer": 42})
    try:
        assert api.call(api.client(), "anything") == {"answer": 42}
    finally:
        api.run(listener.stop())


def test_stream_from_plain_peer_one_item(api: Api) -> None:
    listener = _listen_as_old_peer(api, [1, 2])
    try:
        items, error = api.stream(api.client(), "anything")
    finally:
        api.run(listener.stop())
    assert error is None
    assert items == [[1, 2]]


class SlowStart:
    def __init__(self) -> None:
        self.closed = threading.Event()

    def echo(self, value: Any) -> Any:
        return value

    def slow_first_item(self) -> Iterator[int]:
        try:
            time.sleep(0.5)
            while True:
                yield 1
                time.sleep(0.01)
        finally:
            self.closed.set()


def test_first_item_timeout_stops_generator(api: Api) -> None:
    endpoint = SlowStart()
    api.serve([endpoint], grace_period=0.1)
    items, error = api.stream(api.client(timeout=0.2), "slow_first_item")
    assert items == []
    assert isinstance(error, leveret.MessagingTimeout)
    assert endpoint.closed.wait(2.0)


def test_timed_out_stream_then_call(api: Api) -> None:
    endpoint = SlowStart()
    api.serve([endpoint], grace_period=0.1)
    client = api.client(timeout=0.2)
    _, error = api.stream(client, "slow_first_item")
    assert isinstance(error, leveret.MessagingTimeout)
    assert endpoint.closed.wait(2.0)
    assert api.call(client.prepare(timeout=WAIT_SECONDS), "echo", value=3) == 3
