"""Fixtures shared by every test folder: the RabbitMQ broker.

``make test`` starts one broker for the run and passes its URL in
``LEVERET_TEST_AMQP_URL``. When pytest runs without it, the first test that
needs a broker starts one with scripts/rabbitmq-start. A test that needs the
broker fails, never skips, when the broker cannot start.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import tempfile
import urllib.parse
from collections.abc import Callable, Iterator

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
START = ROOT / "scripts" / "rabbitmq-start"
STOP = ROOT / "scripts" / "rabbitmq-stop"
START_TIMEOUT = 180  # seconds, including an apt-get install on a new machine


class Broker:
    """A broker started by scripts/rabbitmq-start, stopped by its pid."""

    def __init__(self) -> None:
        # /tmp rather than pytest's 0700 tmp_path: the broker runs as the
        # rabbitmq user and must be able to enter its state folder.
        self.state_dir = pathlib.Path(tempfile.mkdtemp(prefix="leveret-broker."))
        self.state_dir.chmod(0o755)
        self.url = ""

    def start(self, port: int | None = None, config: pathlib.Path | None = None) -> str:
        """Start the broker on *port*, or on a free port when None; return its URL.

        Pass :attr:`port` to restart a stopped broker at the same address. The
        broker starts empty either way. *config* names a rabbitmq.conf file
        with settings to add, such as a TLS listener on 127.0.0.1 (see
        LEVERET_BROKER_CONFIG in scripts/rabbitmq-start).
        """
        command = [str(START), str(self.state_dir)]
        if port is not None:
            command.append(str(port))
        environment = dict(os.environ)
        environment.pop("LEVERET_BROKER_CONFIG", None)
        if config is not None:
            environment["LEVERET_BROKER_CONFIG"] = str(config)
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT,
            check=False,
            env=environment,
        )
        if result.returncode != 0:
            pytest.fail(f"RabbitMQ broker failed to start:\n{result.stderr}")
        self.url = result.stdout.strip()
        return self.url

    @property
    def port(self) -> int:
        """The AMQP port of the last start."""
        port = urllib.parse.urlsplit(self.url).port
        assert port is not None, f"no port in broker URL {self.url!r}"
        return port

    def stop(self) -> None:
        subprocess.run([str(STOP), str(self.state_dir)], check=False, timeout=60)

    def remove(self) -> None:
        """Stop the broker and delete its state folder."""
        self.stop()
        shutil.rmtree(self.state_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    """URL of the suite's shared broker."""
    url = os.environ.get("LEVERET_TEST_AMQP_URL")
    if url:
        yield url
        return
    broker = Broker()
    try:
        yield broker.start()
    finally:
        broker.remove()


@pytest.fixture(scope="module")
def make_broker() -> Iterator[Callable[[], Broker]]:
    """A factory of unstarted brokers, each removed when the test module ends.

    The caller may write files into :attr:`Broker.state_dir`, which the broker
    can read, before it calls :meth:`Broker.start`.
    """
    brokers: list[Broker] = []

    def make() -> Broker:
        broker = Broker()
        brokers.append(broker)
        return broker

    try:
        yield make
    finally:
        for broker in brokers:
            broker.remove()


@pytest.fixture
def own_broker() -> Iterator[Broker]:
    """A broker of this test's own, which the test may stop and start again."""
    broker = Broker()
    broker.start()
    try:
        yield broker
    finally:
        broker.remove()
