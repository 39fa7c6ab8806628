"""``leveret serve``: serve an object's methods until SIGINT or SIGTERM."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType

import click

from .._context import ContextLogFilter
from .._errors import ConnectionLost
from .._server import DEFAULT_GRACE_PERIOD, DEFAULT_MAX_WORKERS, RPCServer
from .._target import Target
from .._transport_url import get_transport
from ..transports.base import Transport
from ._endpoints import load_endpoint
from ._options import exchange_option, redact_url, server_option, url_option

__all__ = ["LOG_FORMAT", "serve"]

logger = logging.getLogger("leveret.cli")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
CONNECT_STEP_SECONDS = 1.0  # how often a wait for the broker checks for a stop
SIGNAL_CHECK_SECONDS = 0.2  # how often a running service checks for a stop


@contextlib.contextmanager
def _logging_installed(level: str) -> Iterator[None]:
    """Print log records of *level* and above on stderr, with request ids."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(ContextLogFilter())
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(level.upper())
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)


@contextlib.contextmanager
def _stop_signals(stop_requested: threading.Event) -> Iterator[list[str]]:
    """Set *stop_requested* on the first SIGINT or SIGTERM; exit on the second.

    Yields the list that receives the names of the signals caught. Must run
    in the main thread, the only one Python lets install signal handlers.
    """
    received: list[str] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if received:
            # The operator gave up on the grace period. os._exit skips joining
            # the threads of requests in progress, which a normal exit waits for.
            sys.stderr.write(f"second {name}: exiting without waiting\n")
            sys.stderr.flush()
            os._exit(128 + signum)
        received.append(name)
        # Not Event.set() here: the signal may have interrupted the main
        # thread inside that event's own lock (in wait), and setting it from
        # the handler would then deadlock. A thread sets it once that lock
        # is free.
        threading.Thread(target=stop_requested.set, daemon=True).start()

    previous = {signum: signal.signal(signum, on_signal) for signum in STOP_SIGNALS}
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def wait_for_stop(stop_requested: threading.Event) -> None:
    """Block until a stop signal arrives.

    In short steps: a signal that the kernel delivers to another thread
    interrupts no wait of the main thread, and Python runs signal handlers
    only in the main thread, between two steps.
    """
    while not stop_requested.wait(SIGNAL_CHECK_SECONDS):
        pass


def wait_for_broker(transport: Transport, stop_requested: threading.Event) -> bool:
    """Wait until *transport* is connected; False if a stop signal came first.

    The transport retries by itself and logs each failed attempt; waiting in
    short steps lets SIGINT and SIGTERM end the wait. A broker that rejects
    the login raises :class:`~leveret.AccessRefused`, which ends the command.
    """
    while not stop_requested.is_set():
        try:
            transport.connect(CONNECT_STEP_SECONDS)
        except ConnectionLost:
            continue
        return True
    return False


@click.command()
@click.argument("endpoint_specs", nargs=-1, required=True, metavar="MODULE:ATTR...")
@click.option(
    "--topic", required=True, help="Topic to serve: clients send requests to it."
)
@server_option(
    "Name of this server within the topic, for requests sent to one server. "
    "[default: the host name]"
)
@url_option()
@exchange_option
@click.option(
    "--max-workers",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_WORKERS,
    show_default=True,
    help="Threads that run sync methods: the maximum number running at once.",
)
@click.option(
    "--grace-period",
    type=click.FloatRange(min=0),
    default=DEFAULT_GRACE_PERIOD,
    show_default=True,
    help=(
        "Seconds that requests in progress get to finish after SIGINT or "
        "SIGTERM before they are cancelled."
    ),
)
@click.option(
    "--access-policy",
    type=click.Choice(["public", "exposed"]),
    default="public",
    show_default=True,
    help=(
        "Which methods are callable: 'public' (every name not starting with "
        "'_') or 'exposed' (only those decorated with @leveret.expose)."
    ),
)
@click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default="INFO",
    show_default=True,
    help="Lowest level of the log records printed on stderr.",
)
@click.option(
    "--app-dir",
    type=click.Path(exists=True, file_okay=False),
    default=".",
    show_default=True,
    help="Directory put first on the module search path, to import MODULE from.",
)
def serve(
    endpoint_specs: tuple[str, ...],
    topic: str,
    server: str | None,
    url: str,
    exchange: str | None,
    max_workers: int,
    grace_period: float,
    access_policy: str,
    log_level: str,
    app_dir: str,
) -> None:
    """Serve the methods of MODULE:ATTR on TOPIC until SIGINT or SIGTERM.

    MODULE:ATTR names the endpoint: a class or a function is called without
    arguments to build it, and any other object is served as it is. With
    several endpoints, the first one that has a requested method (in the
    request's namespace and version) serves it.

    On the first SIGINT or SIGTERM the server takes no new requests, lets
    those in progress finish (see --grace-period) and exits with status 0. A
    second signal exits at once.
    """
    app_path = os.path.abspath(app_dir)
    if app_path not in sys.path:
        sys.path.insert(0, app_path)
    endpoints = [load_endpoint(spec) for spec in endpoint_specs]
    target = Target(topic, server=server, exchange=exchange)
    with _logging_installed(log_level):
        transport = get_transport(url)
        try:
            rpc_server = RPCServer(
                transport,
                target,
                endpoints,
                max_workers=max_workers,
                access_policy="exposed" if access_policy == "exposed" else "public",
                grace_period=grace_period,
            )
            stop_requested = threading.Event()
            with _stop_signals(stop_requested) as received:
                if not wait_for_broker(transport, stop_requested):
                    return
                rpc_server.start()
                click.echo(
                    f"serving {topic} as server {rpc_server.server_name} "
                    f"on {redact_url(url)}",
                    err=True,
                )
                wait_for_stop(stop_requested)
                logger.info(
                    "serve.stopping signal=%s grace_period=%g s",
                    received[0],
                    grace_period,
                )
                rpc_server.stop()
        finally:
            transport.close()
