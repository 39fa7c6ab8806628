"""``leveret demo``: a scheduler and three workers talking in one process."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import click

from .._client import RPCClient
from .._context import RequestContext, get_context
from .._errors import RemoteError
from .._server import RPCServer
from .._target import Target
from .._transport_url import get_transport
from ._options import redact_url, url_option

__all__ = ["QuotaExceeded", "Worker", "demo"]

# Not "compute": on a shared RabbitMQ that topic may belong to OpenStack Nova,
# and a server of a topic consumes the queue named after it on any exchange.
TOPIC = "demo-compute"
WORKER_NAMES = ("worker-1", "worker-2", "worker-3")
FREE_CORES = 16
# Seconds the demo waits to learn which workers handled a request, which for
# a cast is also the wait for the cast to take effect.
HANDLED_WAIT_SECONDS = 5.0
# Seconds between the items of the streamed countdown, so they arrive apart.
STREAM_ITEM_DELAY = 0.05
# Seconds a stopping worker lets a request in progress finish.
STOP_GRACE_PERIOD = 1.0
CONNECT_TIMEOUT = 10.0  # seconds to reach the broker before giving up


class QuotaExceeded(Exception):
    """Raised by a worker for a reservation above its free cores.

    The scheduler lists this module in ``allowed_remote_exmods``, so it gets
    this exception as itself rather than as a RemoteError.
    """


class HandledLog:
    """The workers that handled each request, by request id.

    The demo's own bookkeeping: it shows which worker took a request.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._workers: dict[str, list[str]] = {}

    def record(self, worker: str) -> None:
        """Note that *worker* handles the request whose context is bound."""
        context = get_context()
        if context is None:
            return
        with self._changed:
            self._workers.setdefault(context.request_id, []).append(worker)
            self._changed.notify_all()

    def wait_for(self, request_id: str, count: int, timeout: float) -> list[str]:
        """Return the workers of *request_id* once *count* have handled it,
        or those seen after *timeout* seconds."""
        with self._changed:
            self._changed.wait_for(
                lambda: len(self._workers.get(request_id, ())) >= count, timeout
            )
            return sorted(self._workers.get(request_id, ()))


class Worker:
    """The endpoint each demo worker serves.

    *store* is shared by all workers, as a database would be, so a value one
    worker stores is seen by the others. ``config_version`` is per worker.
    """

    def __init__(self, name: str, log: HandledLog, store: dict[str, Any]) -> None:
        self.name = name
        self.config_version = 1
        self._log = log
        self._store = store

    def add(self, a: float, b: float) -> float:
        self._log.record(self.name)
        return a + b

    def remember(self, key: str, value: Any) -> None:
        self._log.record(self.name)
        self._store[key] = value

    def recall(self, key: str) -> Any:
        self._log.record(self.name)
        return self._store.get(key)

    def reload(self, config_version: int) -> None:
        self._log.record(self.name)
        self.config_version = config_version

    def status(self) -> dict[str, Any]:
        self._log.record(self.name)
        return {"worker": self.name, "config_version": self.config_version}

    def countdown(self, start: int) -> Iterator[int]:
        self._log.record(self.name)
        for number in range(start, 0, -1):
            if number != start:
                time.sleep(STREAM_ITEM_DELAY)
            yield number

    def reserve(self, cores: int) -> None:
        self._log.record(self.name)
        raise QuotaExceeded(f"{cores} cores requested, {FREE_CORES} free")

    def parse(self, text: str) -> Any:
        self._log.record(self.name)
        return json.loads(text)


def _format_request(method: str, arguments: dict[str, Any]) -> str:
    text = ", ".join(f"{key}={value!r}" for key, value in arguments.items())
    return f"{TOPIC}.{method}({text})"


def _format_workers(workers: list[str]) -> str:
    return ", ".join(workers) if workers else "no demo worker"


def _echo_step(kind: str, text: str) -> None:
    click.echo(f"{kind:<7}{text}")


class _Scheduler:
    """The demo's client: sends each step's request and prints its line."""

    def __init__(self, client: RPCClient, log: HandledLog) -> None:
        self._client = client
        self._log = log

    def _prepared(self, **changes: Any) -> tuple[RPCClient, str]:
        context = RequestContext(user_id="scheduler")
        return self._client.prepare(context=context, **changes), context.request_id

    def call(self, method: str, server: str | None = None, **arguments: Any) -> None:
        client, request_id = self._prepared(server=server)
        started = time.perf_counter()
        result = client.call(method, **arguments)
        elapsed = time.perf_counter() - started
        workers = self._log.wait_for(request_id, 1, HANDLED_WAIT_SECONDS)
        where = "" if server is None else f" on server {server}"
        _echo_step(
            "call",
            f"{_format_request(method, arguments)}{where} -> {result!r}"
            f"  [{_format_workers(workers)}, {elapsed * 1000:.1f} ms]",
        )

    def cast(self, method: str, *, fanout: bool = False, **arguments: Any) -> None:
        client, request_id = self._prepared(fanout=fanout)
        client.cast(method, **arguments)
        expected = len(WORKER_NAMES) if fanout else 1
        workers = self._log.wait_for(request_id, expected, HANDLED_WAIT_SECONDS)
        outcome = "reached" if fanout else "taken by"
        if len(workers) < expected:
            outcome = (
                f"after {HANDLED_WAIT_SECONDS:g} s, {expected} expected, {outcome}"
            )
        _echo_step(
            "fanout" if fanout else "cast",
            f"{_format_request(method, arguments)}"
            f"  [{outcome} {_format_workers(workers)}]",
        )

    def stream(self, method: str, **arguments: Any) -> None:
        client, request_id = self._prepared()
        click.echo(f"{'stream':<7}{_format_request(method, arguments)} ->", nl=False)
        started = time.perf_counter()
        with client.stream(method, **arguments) as items:
            for item in items:
                click.echo(f" {item!r}", nl=False)
        elapsed = time.perf_counter() - started
        workers = self._log.wait_for(request_id, 1, HANDLED_WAIT_SECONDS)
        click.echo(f"  [{_format_workers(workers)}, {elapsed * 1000:.1f} ms]")

    def call_raising(self, method: str, **arguments: Any) -> None:
        client, _ = self._prepared()
        request = _format_request(method, arguments)
        try:
            result = client.call(method, **arguments)
        except QuotaExceeded as exc:
            _echo_step(
                "call",
                f"{request} -> raised QuotaExceeded: {exc}"
                "  [allowed module: re-raised as itself]",
            )
        except RemoteError as exc:
            _echo_step(
                "call",
                f"{request} -> raised RemoteError: {exc.exc_type}: {exc.value}"
                "  [module not allowed]",
            )
        else:
            _echo_step("call", f"{request} -> {result!r}")


def run_demo(url: str) -> None:
    """Start the workers on *url*, print the transcript, and stop them."""
    log = HandledLog()
    store: dict[str, Any] = {}
    click.echo(
        f"scheduler and {len(WORKER_NAMES)} workers on topic {TOPIC!r} "
        f"over {redact_url(url)}"
    )
    with contextlib.ExitStack() as cleanup:
        for name in WORKER_NAMES:
            worker_transport = get_transport(url)
            cleanup.callback(worker_transport.close)
            # Fail with one line when the broker cannot be reached, rather
            # than waiting for it as a long-running service would.
            worker_transport.connect(CONNECT_TIMEOUT)
            server = RPCServer(
                worker_transport,
                Target(TOPIC, server=name),
                [Worker(name, log, store)],
                grace_period=STOP_GRACE_PERIOD,
            )
            server.start()
            cleanup.callback(server.stop)
        transport = get_transport(url)
        cleanup.callback(transport.close)
        client = RPCClient(
            transport, Target(TOPIC), timeout=10, allowed_remote_exmods=[__name__]
        )
        scheduler = _Scheduler(client, log)

        scheduler.call("add", a=2, b=3)
        scheduler.cast("remember", key="colour", value="green")
        scheduler.call("recall", key="colour")
        scheduler.cast("reload", fanout=True, config_version=2)
        scheduler.call("status", server="worker-2")
        scheduler.stream("countdown", start=3)
        scheduler.call_raising("reserve", cores=64)
        scheduler.call_raising("parse", text="{oops")
    click.echo(f"stopped {len(WORKER_NAMES)} workers and closed the transports")


@click.command(short_help="Show requests between a scheduler and three workers.")
@url_option(
    default="memory://demo",
    help_text=(
        "Transport URL for the scheduler and the workers, e.g. "
        "amqp://USER:PASSWORD@HOST:PORT/VHOST for RabbitMQ."
    ),
)
def demo(url: str) -> None:
    """Run a scheduler and three workers in this process and print what they do.

    Each line is one request: a call, a cast and its effect, a fanout cast to
    every worker, a call to one named worker, a streamed reply, and two
    remote errors, one re-raised as itself and one as RemoteError.
    """
    run_demo(url)
