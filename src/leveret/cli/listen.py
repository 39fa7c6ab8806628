"""``leveret listen``: print notifications as they arrive, until SIGINT or SIGTERM."""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
import types
from collections.abc import Sequence
from typing import Any

import click

from .._context import RequestContext
from .._notification import PRIORITIES
from .._notification_dispatch import NotificationResult
from .._notification_listener import NotificationListener
from .._notifier import DEFAULT_TOPICS
from .._target import Target
from .._transport_url import get_transport
from ._options import exchange_option, redact_url, url_option
from ._stdout import StdoutClosed, echo_line
from .serve import _logging_installed, _stop_signals, wait_for_broker, wait_for_stop

__all__ = ["listen"]

logger = logging.getLogger("leveret.cli")

# Seconds a printing in progress gets to finish after SIGINT or SIGTERM.
STOP_GRACE_PERIOD = 5.0


class _Printer:
    """Print each notification as one line on stdout.

    Once the reader of stdout has gone, it sets *stdout_closed*, so that
    the command stops, and holds the notification until *released* is set.
    Then the notification goes back to its queue.
    """

    def __init__(
        self,
        as_json: bool,
        stdout_closed: threading.Event,
        released: threading.Event,
    ) -> None:
        self._as_json = as_json
        self._stdout_closed = stdout_closed
        self._released = released

    def print_notification(
        self, priority: str, *arguments: Any
    ) -> NotificationResult | None:
        """Print one notification; *arguments* are an endpoint method's."""
        if not self._stdout_closed.is_set():
            try:
                echo_line(self._line(priority, *arguments))
                return None
            except StdoutClosed:
                self._stdout_closed.set()
        # stdout now leads to /dev/null, so this one and every later one go
        # back to the queue. They wait until the listener takes no more
        # deliveries, because a quick requeue would come straight back and,
        # requeued max_redeliveries times, be dropped.
        self._released.wait(STOP_GRACE_PERIOD)
        return NotificationResult.REQUEUE

    def _line(
        self,
        priority: str,
        context: RequestContext,
        publisher_id: Any,
        event_type: Any,
        payload: Any,
        metadata: dict[str, Any],
    ) -> str:
        if self._as_json:
            record = {
                "priority": priority,
                "publisher_id": publisher_id,
                "event_type": event_type,
                "payload": payload,
                "metadata": metadata,
                "context": context.to_dict(),
            }
            return json.dumps(record, ensure_ascii=False)
        return (
            f"{metadata.get('timestamp')} {priority.upper()} {publisher_id} "
            f"{event_type} {json.dumps(payload, ensure_ascii=False)} "
            f"(message_id={metadata.get('message_id')} "
            f"request_id={context.request_id})"
        )

    def endpoint(self, priorities: Sequence[str]) -> object:
        """Return an endpoint with a method for each of *priorities* only."""
        methods = {
            priority: functools.partial(self.print_notification, priority)
            for priority in priorities
        }
        return types.SimpleNamespace(**methods)


def _stop(listener: NotificationListener, released: threading.Event) -> None:
    """Stop *listener*, releasing a held notification once it is stopping."""
    stopper = threading.Thread(target=listener.stop, name="leveret-listen-stop")
    stopper.start()
    # Once stopping, the listener requeues new deliveries without printing.
    while stopper.is_alive() and not listener._service.stopping:
        time.sleep(0.01)
    released.set()
    stopper.join()


@click.command()
@click.option(
    "--topic",
    "topics",
    multiple=True,
    default=DEFAULT_TOPICS,
    show_default=True,
    metavar="TOPIC",
    help="Topic to listen to. Repeat to listen to several topics.",
)
@click.option(
    "--pool",
    metavar="NAME",
    help=(
        "Consume the queue NAME, shared by the listeners of this pool, which "
        "gets its own copy of every notification. [default: the queues "
        "TOPIC.PRIORITY, shared with every listener without a pool, so this "
        "one takes notifications away from them]"
    ),
)
@click.option(
    "--priority",
    "priorities",
    multiple=True,
    type=click.Choice(PRIORITIES, case_sensitive=False),
    metavar="PRIORITY",
    help=(
        f"Priority to listen to, one of {', '.join(PRIORITIES)}. Repeat for "
        "several. [default: all]"
    ),
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help=(
        "Print one JSON object per notification, with the keys priority, "
        "publisher_id, event_type, payload, metadata and context."
    ),
)
@url_option()
@exchange_option
def listen(
    topics: tuple[str, ...],
    pool: str | None,
    priorities: tuple[str, ...],
    as_json: bool,
    url: str,
    exchange: str | None,
) -> None:
    """Print notifications as they arrive, one line each, until SIGINT or SIGTERM.

    Each line shows the timestamp, priority, publisher id, event type,
    payload (as JSON), message id and request id. A notification is
    acknowledged once printed. When the reader of stdout goes away (as
    ``head`` does), the notification goes back to its queue and the command
    exits with status 0.
    """
    chosen = [p for p in PRIORITIES if p in {q.lower() for q in priorities}]
    stop_requested = threading.Event()
    released = threading.Event()
    printer = _Printer(as_json, stop_requested, released)
    endpoint = printer.endpoint(chosen or PRIORITIES)
    targets = [Target(topic, exchange=exchange) for topic in topics]
    with _logging_installed("WARNING"):
        transport = get_transport(url)
        try:
            # One worker keeps the lines in the order they arrive.
            listener = NotificationListener(
                transport,
                targets,
                [endpoint],
                pool,
                max_workers=1,
                grace_period=STOP_GRACE_PERIOD,
            )
            with _stop_signals(stop_requested) as received:
                if not wait_for_broker(transport, stop_requested):
                    return
                listener.start()
                click.echo(
                    f"listening to {', '.join(topics)} on {redact_url(url)}", err=True
                )
                wait_for_stop(stop_requested)
                reason = received[0] if received else "stdout closed"
                logger.info("listen.stopping reason=%s", reason)
                _stop(listener, released)
        finally:
            transport.close()
