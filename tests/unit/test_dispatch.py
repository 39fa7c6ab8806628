"""Which endpoint method a request reaches: access, namespace and version."""

from __future__ import annotations

import time

import pytest
from harness import Api, wait_until

import leveret


class Public:
    target = leveret.Target(version="1.0")

    def __init__(self) -> None:
        self.secret_calls = 0

    def hello(self) -> str:
        return "hello"

    def _secret(self) -> str:
        self.secret_calls += 1
        return "secret"

    def __private(self) -> str:
        return "mangled"

    @leveret.expose
    def marked(self) -> str:
        return "marked"

    not_callable = "just text"
    nested_type = ValueError


class Versioned:
    """Namespace "ns" at version 1.3."""

    target = leveret.Target(namespace="ns", version="1.3")

    def which(self) -> str:
        return "ns-1.3"


class VersionTwo:
    target = leveret.Target(version="2.0")

    def which(self) -> str:
        return "default-2.0"


class NoTarget:
    def which(self) -> str:
        return "default-1.0"

    def only_here(self) -> str:
        return "no-target"


@pytest.mark.parametrize(
    "method",
    ["_secret", "__private", "_Public__private", "__init__", "__class__", "target"],
)
def test_private_method_not_callable(api: Api, method: str) -> None:
    endpoint = Public()
    api.serve([endpoint])
    with pytest.raises(leveret.NoSuchMethod) as caught:
        api.call(api.client(), method)
    assert caught.value.method == method
    assert endpoint.secret_calls == 0


@pytest.mark.parametrize("method", ["not_callable", "nested_type", "missing"])
def test_non_method_attribute_not_callable(api: Api, method: str) -> None:
    api.serve([Public()])
    with pytest.raises(leveret.NoSuchMethod):
        api.call(api.client(), method)


def test_public_policy_serves_public(api: Api) -> None:
    api.serve([Public()])
    client = api.client()
    assert api.call(client, "hello") == "hello"
    assert api.call(client, "marked") == "marked"


def test_exposed_policy_serves_marked_only(api: Api) -> None:
    api.serve([Public()], access_policy="exposed")
    client = api.client()
    assert api.call(client, "marked") == "marked"
    with pytest.raises(leveret.NoSuchMethod):
        api.call(client, "hello")


def test_unknown_access_policy_rejected(transport: leveret.Transport) -> None:
    with pytest.raises(leveret.ConfigurationError, match="access_policy"):
        leveret.RPCServer(
            transport,
            leveret.Target(topic="a"),
            [Public()],
            access_policy="everything",  # type: ignore[arg-type]
        )


@pytest.mark.parametrize(
    ("namespace", "version", "expected"),
    [
        ("ns", "1.0", "ns-1.3"),
        ("ns", "1.3", "ns-1.3"),
        (None, None, "default-1.0"),
        (None, "1.0", "default-1.0"),
        (None, "2.0", "default-2.0"),
    ],
)
def test_version_selects_endpoint(
    api: Api, namespace: str | None, version: str | None, expected: str
) -> None:
    api.serve([Versioned(), VersionTwo(), NoTarget()])
    client = api.client().prepare(namespace=namespace, version=version)
    assert api.call(client, "which") == expected


@pytest.mark.parametrize(
    ("namespace", "version"),
    [("ns", "1.4"), ("ns", "2.0"), ("ns", "0.1"), (None, "2.1"), (None, "3.0")],
)
def test_unsupported_version_raised_promptly(
    api: Api, namespace: str | None, version: str
) -> None:
    api.serve([Versioned(), VersionTwo(), NoTarget()])
    client = api.client(timeout=30).prepare(namespace=namespace, version=version)
    started = time.monotonic()
    with pytest.raises(leveret.UnsupportedVersion) as caught:
        api.call(client, "which")
    assert time.monotonic() - started < 15  # the server replied before the timeout
    assert caught.value.version == version
    assert caught.value.method == "which"


def test_no_such_method_raised_promptly(api: Api) -> None:
    api.serve([Versioned(), NoTarget()])
    client = api.client(timeout=30)
    started = time.monotonic()
    with pytest.raises(leveret.NoSuchMethod) as caught:
        api.call(client, "missing")
    assert time.monotonic() - started < 15  # the server replied before the timeout
    assert caught.value.method == "missing"
    assert isinstance(caught.value, AttributeError)
    assert str(caught.value) == "endpoint does not support RPC method missing"


class Revised:
    """Namespace "rev" at version 1.3.2."""

    target = leveret.Target(namespace="rev", version="1.3.2")

    def which(self) -> str:
        return "rev-1.3.2"


@pytest.mark.parametrize(
    ("version", "served"),
    [("1.3.2", True), ("1.3.1", True), ("1.2.9", True), ("1.3", True),
     ("1.3.3", False), ("1.4", False), ("2.0", False)],
)  # fmt: skip
def test_revision_compatibility(api: Api, version: str, served: bool) -> None:
    api.serve([Revised()])
    client = api.client().prepare(namespace="rev", version=version)
    if served:
        assert api.call(client, "which") == "rev-1.3.2"
    else:
        with pytest.raises(leveret.UnsupportedVersion):
            api.call(client, "which")


def test_unknown_namespace_is_unsupported_version(api: Api) -> None:
    api.serve([Versioned(), NoTarget()])
    client = api.client().prepare(namespace="other")
    with pytest.raises(leveret.UnsupportedVersion):
        api.call(client, "which")


def test_method_only_in_later_endpoint(api: Api) -> None:
    api.serve([VersionTwo(), NoTarget()])
    assert api.call(api.client(), "only_here") == "no-target"


def test_no_such_method_for_cast_logged(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    api.serve([NoTarget()])
    client = api.client()
    with caplog.at_level("INFO", logger="leveret.server"):
        api.cast(client, "missing")
        assert wait_until(lambda: "request.rejected" in caplog.text)
    assert api.call(client, "which") == "default-1.0"
    assert "method=missing" in caplog.text


def test_endpoint_bad_version_rejected(transport: leveret.Transport) -> None:
    class BadVersion:
        target = type("T", (), {"namespace": None, "version": "1"})()

    with pytest.raises(leveret.InvalidTarget, match="invalid version"):
        leveret.RPCServer(transport, leveret.Target(topic="a"), [BadVersion()])
