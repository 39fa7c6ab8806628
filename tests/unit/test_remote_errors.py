"""Exceptions raised by endpoint methods, as the caller sees them."""

from __future__ import annotations

import pytest
import remote_exceptions
from harness import Api, wait_until

import leveret


class Failing:
    def raise_builtin(self, kind: str) -> None:
        if kind == "value":
            raise ValueError("bad value", 3)
        if kind == "key":
            raise KeyError("missing-key")
        if kind == "lookup":
            raise LookupError()
        raise RuntimeError(kind)

    async def raise_async(self) -> None:
        raise PermissionError("no entry")

    def raise_quota(self, resource: str = "cores") -> None:
        raise remote_exceptions.QuotaExceeded(resource, 8)

    def raise_text(self, message: str) -> None:
        raise ValueError(message)

    def raise_unrebuildable(self) -> None:
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")

    def raise_leveret(self, kind: str) -> None:
        if kind == "timeout":
            raise leveret.MessagingTimeout("downstream timed out")
        if kind == "no_method":
            raise leveret.NoSuchMethod("downstream_method")
        if kind == "version":
            raise leveret.UnsupportedVersion("9.9", "downstream_method")
        if kind == "too_large":
            raise leveret.MessageTooLarge(5000, 1000)
        raise leveret.RemoteError("Inner", "inner message", "inner traceback")

    def echo(self, value: object) -> object:
        return value


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("value", ValueError("bad value", 3)),
        ("key", KeyError("missing-key")),
        ("lookup", LookupError()),
        ("other", RuntimeError("other")),
    ],
)
def test_builtin_error_same_type_and_args(
    api: Api, kind: str, expected: Exception
) -> None:
    api.serve([Failing()])
    with pytest.raises(Exception) as caught:
        api.call(api.client(), "raise_builtin", kind=kind)
    assert type(caught.value) is type(expected)
    assert caught.value.args == expected.args


def test_async_method_error_same_type(api: Api) -> None:
    api.serve([Failing()])
    with pytest.raises(PermissionError, match="no entry"):
        api.call(api.client(), "raise_async")


def test_builtin_error_notes_remote_traceback(api: Api) -> None:
    api.serve([Failing()])
    with pytest.raises(ValueError) as caught:
        api.call(api.client(), "raise_builtin", kind="value")
    notes = getattr(caught.value, "__notes__", [])
    assert len(notes) == 1
    assert notes[0].startswith("Remote traceback:")
    assert "raise_builtin" in notes[0]


def test_allowed_module_error_reraised(api: Api) -> None:
    api.serve([Failing()])
    client = api.client(allowed_remote_exmods=[remote_exceptions.__name__])
    with pytest.raises(remote_exceptions.QuotaExceeded) as caught:
        api.call(client, "raise_quota")
    assert caught.value.resource == "cores"
    assert caught.value.limit == 8


def test_other_module_error_is_remote_error(api: Api) -> None:
    api.serve([Failing()])
    with pytest.raises(leveret.RemoteError) as caught:
        api.call(api.client(), "raise_quota")
    error = caught.value
    assert error.exc_type == "QuotaExceeded"
    assert error.value == "('cores', 8)"
    assert error.traceback is not None
    assert "Traceback" in error.traceback
    assert "raise_quota" in error.traceback
    assert str(error) == "remote error: QuotaExceeded: ('cores', 8)"


def test_unrebuildable_error_is_remote_error(api: Api) -> None:
    api.serve([Failing()])
    with pytest.raises(leveret.RemoteError) as caught:
        api.call(api.client(), "raise_unrebuildable")
    assert caught.value.exc_type == "UnicodeDecodeError"
    assert caught.value.value is not None
    assert "invalid start byte" in caught.value.value


@pytest.mark.parametrize("message", ["café ☕ 日本語", "line one\nline two", ""])
def test_error_message_round_trips(api: Api, message: str) -> None:
    api.serve([Failing()])
    with pytest.raises(ValueError) as caught:
        api.call(api.client(), "raise_text", message=message)
    assert caught.value.args == (message,)


def test_remote_error_non_ascii_value(api: Api) -> None:
    api.serve([Failing()])
    with pytest.raises(leveret.RemoteError) as caught:
        api.call(api.client(), "raise_quota", resource="cœurs ☕")
    assert caught.value.value == "('cœurs ☕', 8)"


@pytest.mark.parametrize(
    ("kind", "expected_type"),
    [
        ("timeout", leveret.MessagingTimeout),
        ("no_method", leveret.NoSuchMethod),
        ("version", leveret.UnsupportedVersion),
        ("too_large", leveret.MessageTooLarge),
        ("remote", leveret.RemoteError),
    ],
)
def test_leveret_error_same_type(
    api: Api, kind: str, expected_type: type[Exception]
) -> None:
    api.serve([Failing()])
    with pytest.raises(expected_type) as caught:
        api.call(api.client(), "raise_leveret", kind=kind)
    assert type(caught.value) is expected_type


def test_leveret_error_keeps_fields(api: Api) -> None:
    api.serve([Failing()])
    client = api.client()
    with pytest.raises(leveret.UnsupportedVersion) as version_error:
        api.call(client, "raise_leveret", kind="version")
    assert version_error.value.version == "9.9"
    assert version_error.value.method == "downstream_method"
    with pytest.raises(leveret.MessageTooLarge) as size_error:
        api.call(client, "raise_leveret", kind="too_large")
    assert size_error.value.size == 5000
    assert size_error.value.limit == 1000
    with pytest.raises(leveret.RemoteError) as remote_error:
        api.call(client, "raise_leveret", kind="remote")
    assert remote_error.value.exc_type == "Inner"
    assert remote_error.value.value == "inner message"


def test_wrong_arguments_raise_type_error(api: Api) -> None:
    api.serve([Failing()])
    client = api.client()
    with pytest.raises(TypeError, match="unexpected keyword argument 'other'"):
        api.call(client, "echo", value=1, other=2)
    with pytest.raises(TypeError, match="missing 1 required"):
        api.call(client, "echo")


def test_server_serves_after_errors(api: Api) -> None:
    api.serve([Failing()])
    client = api.client()
    for kind in ("value", "key", "other"):
        with pytest.raises(Exception):  # noqa: B017 - any of the three types
            api.call(client, "raise_builtin", kind=kind)
    assert api.call(client, "echo", value="still serving") == "still serving"


def test_cast_error_logged(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    api.serve([Failing()])
    with caplog.at_level("ERROR", logger="leveret.server"):
        api.cast(api.client(), "raise_builtin", kind="value")
        api.call(api.client(), "echo", value=1)
        assert wait_until(lambda: "cast.failed" in caplog.text)
    assert "raise_builtin" in caplog.text
