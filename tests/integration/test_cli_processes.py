"""``leveret serve`` and ``leveret call`` as two processes on a real broker."""

from __future__ import annotations

import concurrent.futures
import json
import pathlib
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from broker_api import WAIT_SECONDS, new_topic, wait_until

import leveret

HERE = pathlib.Path(__file__).resolve().parent
LEVERET = pathlib.Path(sys.executable).parent / "leveret"
# Seconds the serve process gets to stop after SIGTERM; its grace period is 10 s.
STOP_SECONDS = 30


class ServeProcess:
    """A ``leveret serve`` subprocess whose stderr lines are read in a thread."""

    def __init__(self, topic: str, url: str) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        self.process = subprocess.Popen(
            [
                str(LEVERET),
                "serve",
                "cli_service:Service",
                "--topic",
                topic,
                "--server",
                "cli-server",
                "--url",
                url,
                "--app-dir",
                str(HERE),
                "--grace-period",
                "10",
                "--log-level",
                "DEBUG",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.put(line)

    def wait_for_line(self, text: str, seconds: float = WAIT_SECONDS) -> bool:
        """Wait until a stderr line contains *text*; False on timeout or exit."""
        while True:
            try:
                line = self.lines.get(timeout=seconds)
            except queue.Empty:
                return False
            self.output.append(line)
            if text in line:
                return True

    def stop(self) -> int | None:
        """Send SIGTERM; return the exit status, or None if it still runs."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            return None

    def pending_output(self) -> str:
        """Return the stderr lines read so far, for a failure message."""
        while not self.lines.empty():
            self.output.append(self.lines.get_nowait())
        return "".join(self.output[-40:])

    def close(self) -> None:
        """Kill the process if it still runs, and close its stderr pipe."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(STOP_SECONDS)
        self._reader.join(STOP_SECONDS)
        assert self.process.stderr is not None
        self.process.stderr.close()


def run_leveret(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LEVERET), *arguments],
        capture_output=True,
        text=True,
        timeout=WAIT_SECONDS * 3,
        check=False,
    )


@pytest.fixture
def served(amqp_url: str) -> Iterator[tuple[str, ServeProcess]]:
    """A topic and the ``leveret serve`` process that serves it."""
    topic = new_topic("cli")
    serve = ServeProcess(topic, amqp_url)
    try:
        assert serve.wait_for_line(f"serving {topic}"), "".join(serve.output)
        yield topic, serve
    finally:
        serve.close()


def test_call_prints_json_result(
    amqp_url: str, served: tuple[str, ServeProcess]
) -> None:
    topic, _ = served

    result = run_leveret("call", topic, "add", "a=2", "b=40", "--url", amqp_url)

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == 42


def test_targeted_call_prints_result(
    amqp_url: str, served: tuple[str, ServeProcess]
) -> None:
    topic, _ = served

    result = run_leveret(
        "call", topic, "add", "a=1", "b=1", "--server", "cli-server", "--url", amqp_url
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == 2


def test_remote_error_one_line_exit_1(
    amqp_url: str, served: tuple[str, ServeProcess]
) -> None:
    topic, _ = served

    result = run_leveret(
        "call", topic, "fail", "reason=out of stock", "--url", amqp_url
    )

    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "ValueError" in lines[0]
    assert "out of stock" in lines[0]


def test_call_timeout_exits_1(amqp_url: str, served: tuple[str, ServeProcess]) -> None:
    topic, _ = served

    result = run_leveret(
        "call", topic, "slow", "seconds=5", "--url", amqp_url, "--timeout", "1"
    )

    assert result.returncode == 1
    assert "MessagingTimeout" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_sigterm_stops_serve_gracefully(
    amqp_url: str, served: tuple[str, ServeProcess]
) -> None:
    topic, serve = served
    call = subprocess.Popen(
        [str(LEVERET), "call", topic, "slow", "seconds=2", "--url", amqp_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert serve.wait_for_line("method=slow"), "".join(serve.output)

        exit_code = serve.stop()
        stdout, stderr = call.communicate(timeout=WAIT_SECONDS)
    finally:
        if call.poll() is None:
            call.kill()

    assert exit_code == 0, serve.pending_output()
    # The call in progress when SIGTERM arrived still got its result.
    assert call.returncode == 0, stderr
    assert json.loads(stdout) == "finished"


def test_serve_with_rejected_login_exits(amqp_url: str) -> None:
    wrong = amqp_url.replace("guest:guest@", "guest:not-the-password@")
    assert wrong != amqp_url

    result = run_leveret(
        "serve",
        "cli_service:Service",
        "--topic",
        new_topic("cli"),
        "--url",
        wrong,
        "--app-dir",
        str(HERE),
    )

    assert result.returncode != 0
    assert "Error: the broker rejected the login" in result.stderr
    assert "not-the-password" not in result.stderr


def test_call_with_rejected_login_exits_1(amqp_url: str) -> None:
    wrong = amqp_url.replace("guest:guest@", "guest:not-the-password@")

    result = run_leveret("call", new_topic("cli"), "ping", "--url", wrong)

    assert result.returncode == 1
    assert "AccessRefused" in result.stderr
    assert "not-the-password" not in result.stderr


def test_stream_closed_pipe_stops_generator(
    amqp_url: str, served: tuple[str, ServeProcess]
) -> None:
    topic, serve = served
    command = [str(LEVERET), "call", topic, "count", "start=1", "--stream"]
    with subprocess.Popen(
        [*command, "--url", amqp_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as call:
        try:
            assert call.stdout is not None and call.stderr is not None
            assert call.stdout.readline() == "1\n"
            call.stdout.close()
            assert call.wait(WAIT_SECONDS) == 0, call.stderr.read()
            assert call.stderr.read() == ""
        finally:
            call.kill()
    assert serve.wait_for_line("stream.cancelled method=count"), "".join(serve.output)


class Recorder:
    def __init__(self) -> None:
        self.received: list[Any] = []

    def info(
        self,
        context: Any,
        publisher_id: Any,
        event_type: str,
        payload: Any,
        metadata: Any,
    ) -> None:
        self.received.append(payload["n"])


def test_listen_closed_pipe_requeues_rest(amqp_url: str) -> None:
    topic = new_topic()
    later = list(range(2, 41))
    transport = leveret.get_transport(amqp_url)
    try:
        notifier = leveret.Notifier(transport, "cli-test", topics=[topic])
        with subprocess.Popen(
            [str(LEVERET), "listen", "--topic", topic, "--json", "--url", amqp_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as listen:
            try:
                assert listen.stdout is not None and listen.stderr is not None
                assert "listening to" in listen.stderr.readline()
                notifier.info("first", {"n": 1})
                assert json.loads(listen.stdout.readline())["payload"] == {"n": 1}
                # As `head -1` does: the reader goes away after one line.
                listen.stdout.close()
                # Sent at once, so that some wait in the listener behind the
                # first it fails to print.
                with concurrent.futures.ThreadPoolExecutor(8) as senders:
                    for number in later:
                        senders.submit(notifier.info, "later", {"n": number})
                assert listen.wait(WAIT_SECONDS) == 0, listen.stderr.read()
            finally:
                listen.kill()

        # What it could not print waits for the next listener, each once.
        recorder = Recorder()
        with leveret.NotificationListener(
            transport, [leveret.Target(topic)], [recorder]
        ):
            assert wait_until(lambda: sorted(recorder.received) == later)
        assert sorted(recorder.received) == later
    finally:
        transport.close()
