"""``leveret notify`` and ``leveret listen`` on the in-process transport."""

from __future__ import annotations

import importlib
import json
import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from harness import WAIT_SECONDS, wait_until

import leveret
from leveret.cli import cli
from leveret.cli.listen import _Printer, listen
from leveret.cli.notify import notify

TOPIC = "cli-notifications"


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, Any, Any]] = []

    def _record(self, priority: str, args: tuple[Any, ...]) -> None:
        _, publisher_id, event_type, payload, _ = args
        self.calls.append((priority, publisher_id, event_type, payload))

    def info(self, *args: Any) -> None:
        self._record("info", args)

    def warn(self, *args: Any) -> None:
        self._record("warn", args)


@pytest.fixture
def keeper(url: str) -> Iterator[leveret.Transport]:
    """A transport that keeps the in-process broker alive between commands."""
    transport = leveret.get_transport(url)
    yield transport
    transport.close()


def test_notify_sends(url: str, keeper: leveret.Transport) -> None:
    recorder = Recorder()
    arguments = ["demo.event", "k=1", "name=web-1", "--priority", "warning"]
    arguments += ["--topic", TOPIC, "--url", url]
    result = CliRunner().invoke(notify, arguments)
    assert result.exit_code == 0, result.output
    listener = leveret.NotificationListener(keeper, [leveret.Target(TOPIC)], [recorder])
    with listener:
        assert wait_until(lambda: len(recorder.calls) == 1)
    priority, publisher_id, event_type, payload = recorder.calls[0]
    assert priority == "warn"
    assert publisher_id.startswith("leveret-cli.")
    assert event_type == "demo.event"
    assert payload == {"k": 1, "name": "web-1"}


def test_notify_publisher_id(url: str, keeper: leveret.Transport) -> None:
    recorder = Recorder()
    arguments = ["e", "--publisher-id", "svc.h1", "--topic", TOPIC, "--url", url]
    assert CliRunner().invoke(notify, arguments).exit_code == 0
    listener = leveret.NotificationListener(keeper, [leveret.Target(TOPIC)], [recorder])
    with listener:
        assert wait_until(lambda: len(recorder.calls) == 1)
    assert recorder.calls[0][1] == "svc.h1"
    assert recorder.calls[0][3] == {}


def test_notify_missing_equals(url: str) -> None:
    result = CliRunner().invoke(notify, ["e", "novalue", "--url", url])
    assert result.exit_code == 2
    assert "missing '='" in result.output


def test_notify_unknown_priority(url: str) -> None:
    result = CliRunner().invoke(notify, ["e", "--priority", "loud", "--url", url])
    assert result.exit_code == 2


def run_listen(
    monkeypatch: pytest.MonkeyPatch, arguments: list[str], expected_lines: int
) -> Any:
    """Run ``listen`` until it printed *expected_lines*, then send it SIGINT."""
    printed = threading.Semaphore(0)
    original = _Printer.print_notification

    def counting(self: _Printer, *args: Any) -> None:
        original(self, *args)
        printed.release()

    monkeypatch.setattr(_Printer, "print_notification", counting)

    returned = threading.Event()

    def interrupt() -> None:
        for _ in range(expected_lines):
            printed.acquire(timeout=WAIT_SECONDS)
        # A SIGINT after listen returned would stop the whole test run.
        if not returned.is_set():
            os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=interrupt, daemon=True)
    thread.start()
    try:
        return CliRunner().invoke(listen, arguments)
    finally:
        returned.set()
        thread.join(WAIT_SECONDS)


def test_listen_prints_json(
    url: str, keeper: leveret.Transport, monkeypatch: pytest.MonkeyPatch
) -> None:
    context = leveret.RequestContext("u1", request_id="req-cli")
    notifier = leveret.Notifier(keeper, "pub.cli", [TOPIC], context=context)
    notifier.info("one", {"n": 1})
    result = run_listen(monkeypatch, ["--topic", TOPIC, "--json", "--url", url], 1)
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout.splitlines()[0])
    assert record["priority"] == "info"
    assert record["publisher_id"] == "pub.cli"
    assert record["event_type"] == "one"
    assert record["payload"] == {"n": 1}
    assert sorted(record["metadata"]) == ["message_id", "timestamp"]
    assert record["context"]["request_id"] == "req-cli"


def test_listen_prints_line(
    url: str, keeper: leveret.Transport, monkeypatch: pytest.MonkeyPatch
) -> None:
    leveret.Notifier(keeper, "pub.cli", [TOPIC]).error("broke", {"disk": "sda"})
    arguments = ["--topic", TOPIC, "--priority", "error", "--url", url]
    result = run_listen(monkeypatch, arguments, 1)
    assert result.exit_code == 0, result.output
    line = result.stdout.splitlines()[0]
    assert " ERROR pub.cli broke " in line
    assert '{"disk": "sda"}' in line


def test_listen_only_priorities(
    url: str, keeper: leveret.Transport, monkeypatch: pytest.MonkeyPatch
) -> None:
    notifier = leveret.Notifier(keeper, "pub.cli", [TOPIC])
    notifier.info("skipped", {})
    notifier.warn("printed", {})
    arguments = ["--topic", TOPIC, "--priority", "warn", "--json", "--url", url]
    result = run_listen(monkeypatch, arguments, 1)
    events = [json.loads(line)["event_type"] for line in result.stdout.splitlines()]
    assert events == ["printed"]


def test_commands_registered() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert "notify" in result.output
    assert "listen" in result.output


def test_printer_requeues_all_after_closed_stdout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    printed: list[str] = []

    def closed_after_first(text: str) -> None:
        # As echo_line does: one StdoutClosed, then writes to /dev/null.
        printed.append(text)
        if len(printed) == 2:
            raise listen_module.StdoutClosed

    listen_module = importlib.import_module("leveret.cli.listen")
    monkeypatch.setattr(listen_module, "echo_line", closed_after_first)
    stdout_closed = threading.Event()
    released = threading.Event()
    released.set()  # as once the listener is stopping
    printer = _Printer(False, stdout_closed, released)
    arguments = (leveret.RequestContext(), "test", "event", {}, {})

    assert printer.print_notification("info", *arguments) is None
    assert printer.print_notification("info", *arguments) == "requeue"
    # stdout now leads nowhere: later ones go back too, unwritten.
    assert printer.print_notification("info", *arguments) == "requeue"
    assert len(printed) == 2
    assert stdout_closed.is_set()
