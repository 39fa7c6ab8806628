"""Public names, get_transport and Target."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from harness import TOPIC, Api

import leveret
from leveret._replies import ReplyRouter
from leveret.transports.memory import MemoryTransport


def test_all_pins_exported_names() -> None:
    assert sorted(leveret.__all__) == [
        "AccessRefused",
        "AsyncBatchNotificationListener",
        "AsyncNotificationListener",
        "AsyncNotifier",
        "AsyncRPCClient",
        "AsyncRPCServer",
        "AsyncReplyStream",
        "BatchNotificationListener",
        "ConfigurationError",
        "ConnectionLost",
        "ContextLogFilter",
        "InvalidTarget",
        "LeveretError",
        "MessageTooLarge",
        "MessagingTimeout",
        "NoServerError",
        "NoSuchMethod",
        "NotificationFilter",
        "NotificationListener",
        "NotificationResult",
        "Notifier",
        "RPCClient",
        "RPCServer",
        "RemoteError",
        "ReplyStream",
        "RequestContext",
        "SerializationError",
        "Target",
        "Transport",
        "TransportClosed",
        "TransportError",
        "UnsupportedVersion",
        "bind_context",
        "expose",
        "get_context",
        "get_transport",
    ]


def test_all_names_resolve() -> None:
    for name in leveret.__all__:
        assert hasattr(leveret, name), name


def test_errors_derive_from_leveret_error() -> None:
    for name in leveret.__all__:
        value = getattr(leveret, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, leveret.LeveretError), name


# get_transport


@pytest.mark.parametrize("url", ["memory://", "memory://orders"])
def test_get_transport_memory_urls(url: str) -> None:
    transport = leveret.get_transport(url)
    try:
        assert isinstance(transport, MemoryTransport)
    finally:
        transport.close()


def test_get_transport_same_name_shares_broker(url: str) -> None:
    first = leveret.get_transport(url)
    second = leveret.get_transport(url)
    try:
        assert first is not second
        assert first.broker is second.broker
        with leveret.RPCServer(first, leveret.Target(topic=TOPIC), [Echo()]):
            client = leveret.RPCClient(second, leveret.Target(topic=TOPIC), timeout=20)
            assert client.call("echo", value=7) == 7
    finally:
        second.close()
        first.close()


def test_get_transport_other_name_is_separate(url: str) -> None:
    first = leveret.get_transport(url)
    second = leveret.get_transport(url + "-other")
    try:
        assert first.broker is not second.broker
        with leveret.RPCServer(first, leveret.Target(topic=TOPIC), [Echo()]):
            client = leveret.RPCClient(second, leveret.Target(topic=TOPIC), timeout=20)
            with pytest.raises(leveret.NoServerError):
                client.call("echo", value=7)
    finally:
        second.close()
        first.close()


def test_get_transport_unknown_scheme_rejected() -> None:
    with pytest.raises(leveret.ConfigurationError) as caught:
        leveret.get_transport("kafka://localhost")
    message = str(caught.value)
    assert "'kafka'" in message
    assert "memory" in message
    assert "amqp" in message
    assert "amqps" in message


@pytest.mark.parametrize("url", ["", "memory", "localhost:5672"])
def test_get_transport_url_without_scheme(url: str) -> None:
    with pytest.raises(leveret.ConfigurationError, match="memory, amqp, amqps"):
        leveret.get_transport(url)


def test_closed_transport_rejects_calls(api: Api) -> None:
    api.serve([Echo()])
    client = api.client()
    api.close_transport()
    with pytest.raises(leveret.TransportClosed):
        api.call(client, "echo", value=1)


# Target


def test_target_is_immutable() -> None:
    target = leveret.Target(topic="a")
    with pytest.raises(dataclasses.FrozenInstanceError):
        target.topic = "b"  # type: ignore[misc]
    assert target.topic == "a"


def test_target_replace_returns_copy() -> None:
    target = leveret.Target(topic="a", version="1.0")
    changed = target.replace(server="s1", version="1.2")
    assert changed == leveret.Target(topic="a", server="s1", version="1.2")
    assert target == leveret.Target(topic="a", version="1.0")


def test_target_is_hashable() -> None:
    assert hash(leveret.Target(topic="a")) == hash(leveret.Target(topic="a"))


@pytest.mark.parametrize(
    "version",
    ["1", "1.", ".1", "v1.0", "1.2.3.4", "1.2.", "1.x", "", " 1.0", "1.0\n", "١.٠"],
)
def test_target_bad_version_rejected(version: str) -> None:
    with pytest.raises(leveret.InvalidTarget, match="invalid version"):
        leveret.Target(topic="a", version=version)


@pytest.mark.parametrize("version", [1.0, 1, ("1", "0")])
def test_target_version_not_text_rejected(version: object) -> None:
    with pytest.raises(leveret.InvalidTarget, match="invalid version"):
        leveret.Target(topic="a", version=version)  # type: ignore[arg-type]


def test_target_replace_validates_version() -> None:
    with pytest.raises(leveret.InvalidTarget):
        leveret.Target(topic="a").replace(version="one")


@pytest.mark.parametrize("field", ["topic", "server", "exchange", "namespace"])
@pytest.mark.parametrize("value", ["", 5])
def test_target_bad_text_field_rejected(field: str, value: object) -> None:
    with pytest.raises(leveret.InvalidTarget, match=f"invalid {field}"):
        leveret.Target(**{field: value})  # type: ignore[arg-type]


def test_invalid_target_is_value_error() -> None:
    assert issubclass(leveret.InvalidTarget, leveret.ConfigurationError)
    assert issubclass(leveret.InvalidTarget, ValueError)


def test_client_target_needs_topic(transport: leveret.Transport) -> None:
    with pytest.raises(leveret.InvalidTarget, match="topic"):
        leveret.RPCClient(transport, leveret.Target(server="s1"))


@pytest.mark.parametrize(
    "timeout", [0, -1.0, True, "5", float("inf"), float("nan"), 10**400]
)
def test_client_bad_timeout_rejected(
    transport: leveret.Transport, timeout: object
) -> None:
    with pytest.raises(leveret.ConfigurationError, match="invalid timeout"):
        leveret.RPCClient(transport, leveret.Target(topic="a"), timeout=timeout)  # type: ignore[arg-type]


@pytest.mark.parametrize("timeout", [0, float("nan"), float("inf"), "3"])
def test_connect_bad_timeout_rejected(
    transport: leveret.Transport, timeout: object
) -> None:
    with pytest.raises(leveret.ConfigurationError, match="invalid timeout"):
        transport.connect(timeout)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "options",
    [
        {"max_message_bytes": 0},
        {"max_message_bytes": 1.5},
        {"allowed_remote_exmods": "my.errors"},
        {"allowed_remote_exmods": None},
        {"allowed_remote_exmods": [5]},
    ],
)
def test_client_bad_options_rejected(
    transport: leveret.Transport, options: dict[str, object]
) -> None:
    with pytest.raises(leveret.ConfigurationError, match=next(iter(options))):
        leveret.RPCClient(transport, leveret.Target(topic="a"), **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("fanout", ["yes", 0, None])
def test_target_fanout_not_bool_rejected(fanout: object) -> None:
    with pytest.raises(leveret.InvalidTarget, match="fanout"):
        leveret.Target(topic="a", fanout=fanout)  # type: ignore[arg-type]


def test_server_target_needs_topic(transport: leveret.Transport) -> None:
    with pytest.raises(leveret.InvalidTarget, match="topic"):
        leveret.RPCServer(transport, leveret.Target(server="s1"), [Echo()])


def test_server_fanout_target_rejected(transport: leveret.Transport) -> None:
    with pytest.raises(leveret.InvalidTarget, match="fanout"):
        leveret.RPCServer(transport, leveret.Target(topic="a", fanout=True), [Echo()])


def test_server_without_endpoints_rejected(transport: leveret.Transport) -> None:
    with pytest.raises(leveret.ConfigurationError, match="endpoint"):
        leveret.RPCServer(transport, leveret.Target(topic="a"), [])


def test_prepare_leaves_original_client(transport: leveret.Transport) -> None:
    client = leveret.RPCClient(transport, leveret.Target(topic="a"), timeout=5)
    prepared = client.prepare(server="s1", version="1.1", timeout=2)
    assert prepared.target == leveret.Target(topic="a", server="s1", version="1.1")
    assert prepared.timeout == 2.0
    assert client.target == leveret.Target(topic="a")
    assert client.timeout == 5.0


class Echo:
    def echo(self, value: object) -> object:
        return value


def test_memory_connect_returns(transport: leveret.Transport) -> None:
    transport.connect(timeout=1)
    assert not transport.closed


def test_close_after_aclose_on_bound_loop_does_nothing() -> None:
    async def scenario() -> None:
        transport = leveret.get_transport("memory://close-twice")
        await transport.aconnect()  # binds the transport to this loop
        await transport.aclose()
        transport.close()  # already closed: no blocking call to refuse
        assert transport.closed

    asyncio.run(scenario())


def test_reply_router_fails_waiters_added_after_close() -> None:
    router = ReplyRouter()
    seen: list[object] = []
    router.register("before-close", seen.append)
    error = leveret.TransportClosed("closed")

    router.fail_all(error)

    assert seen == [error]
    with pytest.raises(leveret.TransportClosed):
        router.register("after-close", seen.append)
