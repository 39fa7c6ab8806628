"""Fixtures for tests against a real RabbitMQ broker.

``amqp_url`` and ``own_broker`` come from tests/conftest.py. Every transport
made here is closed at teardown, after the servers on it are stopped.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import pytest
from broker_api import Api, AsyncApi, SyncApi

import leveret


@pytest.fixture
def make_transport() -> Iterator[Callable[[str], leveret.Transport]]:
    """A factory of transports, each closed at teardown."""
    transports: list[leveret.Transport] = []

    def make(url: str) -> leveret.Transport:
        transport = leveret.get_transport(url)
        transports.append(transport)
        return transport

    yield make
    for transport in transports:
        transport.close()


@pytest.fixture
def transport(
    amqp_url: str, make_transport: Callable[[str], leveret.Transport]
) -> leveret.Transport:
    """A transport on the session broker."""
    return make_transport(amqp_url)


@pytest.fixture(params=["sync", "async"])
def api(request: pytest.FixtureRequest, transport: leveret.Transport) -> Iterator[Api]:
    """The blocking or the asyncio API on ``transport``; stops its servers after."""
    driver: Api = SyncApi(transport) if request.param == "sync" else AsyncApi(transport)
    yield driver
    driver.close()


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
