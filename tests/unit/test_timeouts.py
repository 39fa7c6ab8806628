"""Call deadlines, late replies and many calls in flight at once."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from harness import WAIT_SECONDS, Api, wait_until

import leveret


class Slow:
    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

    def wait_for_release(self) -> str:
        self.started.set()
        self.release.wait(WAIT_SECONDS)
        return "late"

    def echo(self, value: object) -> object:
        return value

    async def echo_async(self, value: object) -> object:
        await asyncio.sleep(0.001)
        return value

    def raise_timeout(self) -> None:
        raise TimeoutError("remote deadline")


def test_call_timeout_raises_messaging_timeout(api: Api) -> None:
    slow = Slow()
    api.serve([slow])
    client = api.client(timeout=0.3)
    started = time.monotonic()
    try:
        with pytest.raises(leveret.MessagingTimeout) as caught:
            api.call(client, "wait_for_release")
        elapsed = time.monotonic() - started
        assert not slow.release.is_set()  # raised while the method still ran
    finally:
        slow.release.set()
    assert isinstance(caught.value, TimeoutError)
    assert elapsed >= 0.3
    assert "wait_for_release" in str(caught.value)
    assert "0.3 s" in str(caught.value)


def test_late_reply_dropped(api: Api) -> None:
    slow = Slow()
    api.serve([slow])
    client = api.client(timeout=0.3)
    with pytest.raises(leveret.MessagingTimeout):
        api.call(client, "wait_for_release")
    dropped_before = api.transport.replies.dropped_replies
    slow.release.set()
    assert wait_until(lambda: api.transport.replies.dropped_replies > dropped_before)
    assert api.call(client, "echo", value="own") == "own"
    assert len(api.transport.replies) == 0


def test_late_reply_not_taken_by_next_call(api: Api) -> None:
    slow = Slow()
    api.serve([slow], max_workers=4)
    client = api.client(timeout=0.3)
    with pytest.raises(leveret.MessagingTimeout):
        api.call(client, "wait_for_release")
    slow.release.set()
    # The late reply arrives before or during these calls and must be dropped.
    results = [
        api.call(client.prepare(timeout=WAIT_SECONDS), "echo", value=i)
        for i in range(5)
    ]
    assert results == list(range(5))


def test_remote_timeout_error_not_messaging_timeout(api: Api) -> None:
    api.serve([Slow()])
    with pytest.raises(TimeoutError, match="remote deadline") as caught:
        api.call(api.client(), "raise_timeout")
    assert not isinstance(caught.value, leveret.MessagingTimeout)


@pytest.mark.parametrize("method", ["echo", "echo_async"])
def test_concurrent_calls_get_own_results(api: Api, method: str) -> None:
    api.serve([Slow()], max_workers=8)
    calls = [(None, {"value": i}) for i in range(50)]
    results = api.call_concurrently(api.client(), method, calls)
    assert results == list(range(50))
    assert len(api.transport.replies) == 0
