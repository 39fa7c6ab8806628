"""Fixtures: a fresh in-process broker per test, and both client APIs."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from harness import Api, AsyncApi, SyncApi

import leveret


@pytest.fixture
def url() -> str:
    """A ``memory://`` URL naming a broker no other test uses."""
    return f"memory://unit-{uuid.uuid4().hex}"


@pytest.fixture
def transport(url: str) -> Iterator[leveret.Transport]:
    transport = leveret.get_transport(url)
    yield transport
    transport.close()


@pytest.fixture(params=["sync", "async"])
def api(request: pytest.FixtureRequest, url: str) -> Iterator[Api]:
    """The blocking or the asyncio API on a fresh transport; closes both at the end."""
    transport = leveret.get_transport(url)
    driver: Api = SyncApi(transport) if request.param == "sync" else AsyncApi(transport)
    yield driver
    driver.close()
