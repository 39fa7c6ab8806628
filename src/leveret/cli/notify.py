"""``leveret notify``: send one notification from the shell."""

from __future__ import annotations

import socket
from typing import Any

import click

from .._notification import PRIORITIES
from .._notifier import DEFAULT_TOPICS, Notifier
from .._publish_retry import DEFAULT_SEND_TIMEOUT
from .._transport_url import get_transport
from ._options import SECONDS, url_option
from ._values import parse_arguments

__all__ = ["notify"]

_PAYLOAD_HELP = """
Each KEY=VALUE sets the key KEY of the payload object. VALUE is parsed as JSON
when it is valid JSON (42, true, null, [1, 2], {"a": 1}) and taken as text
otherwise, so name=web-1 sends the text "web-1" while size=1 sends the number
1. Quote the JSON for the shell to send numbers as text: size='"1"'.
"""


def _parse_payload_callback(
    ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
) -> dict[str, Any]:
    return parse_arguments(value)


def _default_publisher_id() -> str:
    return f"leveret-cli.{socket.gethostname()}"


@click.command(epilog=_PAYLOAD_HELP)
@click.argument("event_type")
@click.argument(
    "payload",
    nargs=-1,
    metavar="[KEY=VALUE]...",
    callback=_parse_payload_callback,
)
@click.option(
    "--priority",
    type=click.Choice([*PRIORITIES, "warning"], case_sensitive=False),
    default="info",
    show_default=True,
    help="Priority of the notification; warning is the same as warn.",
)
@click.option(
    "--publisher-id",
    metavar="ID",
    default=_default_publisher_id,
    show_default="leveret-cli.HOSTNAME",
    help="Who sends the notification, by convention SERVICE.HOST.",
)
@click.option(
    "--topic",
    "topics",
    multiple=True,
    default=DEFAULT_TOPICS,
    show_default=True,
    metavar="TOPIC",
    help=(
        "Topic to send to: the routing key and queue are TOPIC.PRIORITY. "
        "Repeat to send to several topics."
    ),
)
@click.option(
    "--timeout",
    type=SECONDS,
    default=DEFAULT_SEND_TIMEOUT,
    show_default=True,
    help="Seconds to keep trying to reach the broker before giving up.",
)
@url_option()
def notify(
    event_type: str,
    payload: dict[str, Any],
    priority: str,
    publisher_id: str,
    topics: tuple[str, ...],
    timeout: float,
    url: str,
) -> None:
    """Send one notification EVENT_TYPE with a payload built from KEY=VALUE.

    The notification goes to the transport's control exchange and is kept in
    the queue TOPIC.PRIORITY until a listener takes it. The exit status is 0
    once it is sent.
    """
    transport = get_transport(url)
    try:
        notifier = Notifier(transport, publisher_id, topics, timeout=timeout)
        method = "warn" if priority.lower() == "warning" else priority.lower()
        getattr(notifier, method)(event_type, payload)
    finally:
        transport.close()
