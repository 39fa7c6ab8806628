"""Request context: building it, sending it and binding it in handlers."""

from __future__ import annotations

import asyncio
import logging
import queue
import random
import re
import time
from typing import Any

import pytest
from harness import TOPIC, WAIT_SECONDS, Api

import leveret
from leveret.transports.base import Address


class ContextReader:
    def __init__(self) -> None:
        self.logger = logging.getLogger("tests.unit.handler")
        self.noted: queue.Queue[dict[str, Any]] = queue.Queue()
        self.last_request_id = ""

    def context(self) -> dict[str, Any] | None:
        context = leveret.get_context()
        return None if context is None else context.to_dict()

    async def context_async(self) -> dict[str, Any] | None:
        await asyncio.sleep(0)
        context = leveret.get_context()
        return None if context is None else context.to_dict()

    def user_after_pause(self) -> str | None:
        before = leveret.get_context()
        time.sleep(random.uniform(0, 0.02))
        after = leveret.get_context()
        assert before is after
        return None if after is None else after.user_id

    async def user_after_pause_async(self) -> str | None:
        before = leveret.get_context()
        await asyncio.sleep(random.uniform(0, 0.02))
        after = leveret.get_context()
        assert before is after
        return None if after is None else after.user_id

    def note_context(self) -> None:
        context = leveret.get_context()
        assert context is not None
        self.last_request_id = context.request_id
        self.noted.put(context.to_dict())

    def log_something(self) -> None:
        self.logger.warning("inside handler")

    async def log_something_async(self) -> None:
        self.logger.warning("inside async handler")


class RecordList(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


# RequestContext


def test_request_id_generated() -> None:
    first = leveret.RequestContext()
    second = leveret.RequestContext()
    assert re.fullmatch(r"req-[0-9a-f-]{36}", first.request_id)
    assert first.request_id != second.request_id


def test_request_id_kept_when_given() -> None:
    assert leveret.RequestContext(request_id="req-1").request_id == "req-1"


def test_context_dict_round_trip() -> None:
    context = leveret.RequestContext(
        "alice", "project-a", "req-7", roles=["admin"], is_admin=True
    )
    values = context.to_dict()
    assert values == {
        "user": "alice",
        "user_id": "alice",
        "project_id": "project-a",
        "request_id": "req-7",
        "roles": ["admin"],
        "is_admin": True,
    }
    rebuilt = leveret.RequestContext.from_dict(values)
    assert rebuilt == context
    assert rebuilt.extra == {"roles": ["admin"], "is_admin": True}


def test_context_from_oslo_keys() -> None:
    context = leveret.RequestContext.from_dict(
        {"user": "bob", "tenant": "project-b", "request_id": "req-9"}
    )
    assert context.user_id == "bob"
    assert context.project_id == "project-b"
    assert context.request_id == "req-9"


def test_context_from_dict_odd_keys() -> None:
    context = leveret.RequestContext.from_dict({"self": 1, "cls": 2, "extra": 3})
    assert context.extra == {"self": 1, "cls": 2, "extra": 3}
    assert context.user_id is None


def test_received_context_odd_keys_served(api: Api) -> None:
    reader = ContextReader()
    api.serve([reader])
    address = Address(api.transport.default_exchange, TOPIC)
    body = (
        b'{"method": "note_context", "args": {}, '
        b'"_context_self": 1, "_context_user_id": "odd"}'
    )
    api.run(api.transport.send(address, body))
    assert reader.noted.get(timeout=WAIT_SECONDS) == {
        "self": 1,
        "user": "odd",
        "user_id": "odd",
        "project_id": None,
        "request_id": reader.last_request_id,
    }


def test_context_unhashable() -> None:
    with pytest.raises(TypeError):
        hash(leveret.RequestContext())


def test_bind_context_resets_after_block() -> None:
    context = leveret.RequestContext(user_id="carol")
    assert leveret.get_context() is None
    with leveret.bind_context(context) as bound:
        assert bound is context
        assert leveret.get_context() is context
    assert leveret.get_context() is None


# sent with requests


@pytest.mark.parametrize("method", ["context", "context_async"])
def test_prepared_context_sent(api: Api, method: str) -> None:
    api.serve([ContextReader()])
    context = leveret.RequestContext("alice", "project-a", extra_key=[1, "two"])
    client = api.client().prepare(context=context)
    assert api.call(client, method) == context.to_dict()


@pytest.mark.parametrize("method", ["context", "context_async"])
def test_bound_context_sent(api: Api, method: str) -> None:
    api.serve([ContextReader()])
    context = leveret.RequestContext("bob", "project-b")
    assert api.call_bound(context, api.client(), method) == context.to_dict()


def test_client_context_sent(api: Api) -> None:
    api.serve([ContextReader()])
    context = leveret.RequestContext("dave")
    assert api.call(api.client(context=context), "context") == context.to_dict()


def test_dict_context_sent(api: Api) -> None:
    api.serve([ContextReader()])
    client = api.client().prepare(context={"user": "erin", "tenant": "project-e"})
    sent = api.call(client, "context")
    assert sent["user_id"] == "erin"
    assert sent["project_id"] == "project-e"


@pytest.mark.parametrize("context", [5, "erin", ["erin"], {1: 2}])
def test_bad_context_rejected(api: Api, context: object) -> None:
    with pytest.raises(leveret.ConfigurationError, match="invalid context"):
        api.client().prepare(context=context)  # type: ignore[arg-type]


def test_prepared_context_wins_over_bound(api: Api) -> None:
    api.serve([ContextReader()])
    prepared = leveret.RequestContext("prepared")
    bound = leveret.RequestContext("bound")
    client = api.client().prepare(context=prepared)
    assert api.call_bound(bound, client, "context") == prepared.to_dict()


def test_no_context_gives_fresh_one(api: Api) -> None:
    api.serve([ContextReader()])
    client = api.client()
    first = api.call(client, "context")
    second = api.call(client, "context")
    assert first is not None
    assert second is not None
    assert first["user_id"] is None
    assert first["request_id"] != second["request_id"]


def test_unserializable_context_not_sent(api: Api) -> None:
    api.serve([ContextReader()])
    context = leveret.RequestContext("eve", token=object())
    with pytest.raises(leveret.SerializationError):
        api.call(api.client().prepare(context=context), "context")


@pytest.mark.parametrize("method", ["user_after_pause", "user_after_pause_async"])
def test_concurrent_requests_keep_own_context(api: Api, method: str) -> None:
    api.serve([ContextReader()], max_workers=8)
    calls = [(leveret.RequestContext(f"user-{i}"), {}) for i in range(40)]
    results = api.call_concurrently(api.client(), method, calls)
    assert results == [f"user-{i}" for i in range(40)]


def test_handler_context_not_leaked_to_caller(api: Api) -> None:
    api.serve([ContextReader()])
    api.call(api.client().prepare(context=leveret.RequestContext("x")), "context")
    assert leveret.get_context() is None


# logging


@pytest.mark.parametrize("method", ["log_something", "log_something_async"])
def test_log_filter_adds_context_ids(api: Api, method: str) -> None:
    records = RecordList()
    records.addFilter(leveret.ContextLogFilter())
    handler_logger = logging.getLogger("tests.unit.handler")
    handler_logger.addHandler(records)
    try:
        api.serve([ContextReader()])
        context = leveret.RequestContext("alice", "project-a", "req-log")
        api.call_bound(context, api.client(), method)
    finally:
        handler_logger.removeHandler(records)
    assert len(records.records) == 1
    record = records.records[0]
    assert record.__dict__["request_id"] == "req-log"
    assert record.__dict__["user_id"] == "alice"
    assert record.__dict__["project_id"] == "project-a"


def test_log_filter_without_context() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "message", (), None)
    assert leveret.ContextLogFilter().filter(record)
    assert record.__dict__["request_id"] == "-"
    assert record.__dict__["user_id"] == "-"
    assert record.__dict__["project_id"] == "-"


def test_log_filter_formats_record() -> None:
    records = RecordList()
    records.addFilter(leveret.ContextLogFilter())
    records.setFormatter(logging.Formatter("%(request_id)s %(user_id)s %(message)s"))
    local_logger = logging.getLogger("tests.unit.format")
    local_logger.addHandler(records)
    try:
        with leveret.bind_context(leveret.RequestContext(None, None, "req-f")):
            local_logger.warning("hi")
    finally:
        local_logger.removeHandler(records)
    assert records.format(records.records[0]) == "req-f - hi"
