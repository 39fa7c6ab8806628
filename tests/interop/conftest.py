"""Fixtures that run oslo.messaging 18.x as a peer of leveret on one broker.

Both peers share the session broker (``amqp_url``) and a control exchange of
this session's own. The oslo side is built as a service would build it: a
private ``ConfigOpts`` (with the metrics and tracing option groups that
oslo.messaging registers only on its global ``cfg.CONF``, and without which
its servers never reply) and a ``rabbit://`` URL.

Transports live for the whole session because oslo's ``cleanup()`` joins its
reply thread, which can take seconds. Servers live for one test module.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import oslo_messaging as om
import pytest
from interop_support import ALLOWED_MODULES, new_topic, rabbit_url
from oslo_config import cfg
from oslo_messaging._drivers import amqp as om_amqp
from oslo_messaging._drivers import impl_rabbit as om_rabbit
from oslo_messaging._metrics import client as om_metrics
from oslo_messaging._tracing import client as om_tracing

import leveret


@pytest.fixture(scope="session")
def control_exchange() -> str:
    """The control exchange of this session's interop tests."""
    return f"interop-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def oslo_conf(control_exchange: str) -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    conf.register_opts(
        om_metrics.oslo_messaging_metrics, group="oslo_messaging_metrics"
    )
    conf.register_opts(
        om_tracing.oslo_messaging_tracing, group="oslo_messaging_tracing"
    )
    # Registered here so that they can be set before the driver loads. The
    # driver registers the same option objects again, which oslo.config allows.
    conf.register_opts(om_rabbit.rabbit_opts, group="oslo_messaging_rabbit")
    conf.register_opts(om_amqp.amqp_opts, group="oslo_messaging_rabbit")
    # leveret declares its topic queues durable, and RabbitMQ rejects a
    # second declaration of a queue with a different durable flag.
    conf.set_override("amqp_durable_queues", True, group="oslo_messaging_rabbit")
    return conf


@pytest.fixture(scope="session")
def oslo_transport(
    oslo_conf: cfg.ConfigOpts, amqp_url: str, control_exchange: str
) -> Iterator[Any]:
    """An oslo RPC transport that re-raises ``interop_exceptions`` types."""
    url = om.TransportURL.parse(oslo_conf, rabbit_url(amqp_url))
    oslo_conf.set_override("control_exchange", control_exchange)
    transport = om.get_rpc_transport(
        oslo_conf, url=url, allowed_remote_exmods=ALLOWED_MODULES
    )
    # A cast to a topic that no server consumes makes oslo declare the control
    # exchange, durable because of amqp_durable_queues, before leveret does.
    # test_oslo_shared_topic.py explains why the order matters. The cast retries
    # 3 times, not forever as by default, so a session without a broker fails.
    client = om.get_rpc_client(transport, om.Target(topic=new_topic("declare")))
    client.prepare(retry=3).cast({}, "declare_exchange")
    yield transport
    transport.cleanup()


@pytest.fixture(scope="session")
def leveret_url(amqp_url: str, control_exchange: str) -> str:
    return f"{amqp_url}?exchange={control_exchange}"


@pytest.fixture(scope="session")
def leveret_transport(leveret_url: str, oslo_transport: Any) -> Iterator[Any]:
    """A leveret transport on the same exchange, made after oslo declared it."""
    transport = leveret.get_transport(leveret_url)
    yield transport
    transport.close()


@pytest.fixture(scope="module")
def start_oslo_server(oslo_transport: Any) -> Iterator[Callable[..., Any]]:
    """Start oslo RPC servers; all are stopped when the module ends."""
    servers: list[Any] = []

    def start(topic: str, server: str, endpoints: Sequence[object]) -> Any:
        # No executor argument: passing one raises a DeprecationWarning.
        rpc_server = om.get_rpc_server(
            oslo_transport, om.Target(topic=topic, server=server), list(endpoints)
        )
        rpc_server.start()
        servers.append(rpc_server)
        return rpc_server

    yield start
    for rpc_server in servers:
        rpc_server.stop()
    for rpc_server in servers:
        rpc_server.wait()


@pytest.fixture(scope="module")
def start_leveret_server(leveret_transport: Any) -> Iterator[Callable[..., Any]]:
    """Start leveret RPC servers; all are stopped when the module ends."""
    servers: list[leveret.RPCServer] = []

    def start(topic: str, server: str, endpoints: Sequence[object]) -> Any:
        target = leveret.Target(topic=topic, server=server)
        rpc_server = leveret.RPCServer(leveret_transport, target, endpoints)
        rpc_server.start()
        servers.append(rpc_server)
        return rpc_server

    yield start
    for rpc_server in servers:
        rpc_server.stop()
