"""``leveret call`` and ``leveret cast``: send one request from the shell."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click

from .._client import DEFAULT_TIMEOUT, RPCClient
from .._errors import NoServerError, RemoteError
from .._target import Target
from .._transport_url import get_transport
from ._options import SECONDS, exchange_option, server_option, url_option
from ._stdout import StdoutClosed, echo_line
from ._values import parse_arguments

__all__ = ["call", "cast"]

F = TypeVar("F", bound=Callable[..., Any])

_ARGUMENTS_HELP = """
Each KEY=VALUE sets the keyword argument KEY of METHOD. VALUE is parsed as
JSON when it is valid JSON (42, true, null, [1, 2], {"a": 1}) and taken as
text otherwise, so name=web-1 sends the text "web-1" while size=1 sends the
number 1. Quote the JSON for the shell to send numbers as text: size='"1"'.
"""


def _parse_arguments_callback(
    ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
) -> dict[str, Any]:
    return parse_arguments(value)


def _request_options(function: F) -> F:
    """Add the arguments and options that ``call`` and ``cast`` share."""
    decorators = [
        click.argument("topic"),
        click.argument("method"),
        click.argument(
            "arguments",
            nargs=-1,
            metavar="[KEY=VALUE]...",
            callback=_parse_arguments_callback,
        ),
        url_option(),
        exchange_option,
        click.option(
            "--namespace",
            metavar="NS",
            help="Endpoint namespace the method belongs to. [default: none]",
        ),
        click.option(
            "--version",
            metavar="MAJOR.MINOR",
            help=(
                "API version the request needs; a server endpoint of the same "
                "major and an equal or higher minor version serves it. "
                "[default: 1.0]"
            ),
        ),
    ]
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


def _raise_failure(
    operation: str, topic: str, method: str, exc: Exception, url: str
) -> NoReturn:
    """Raise a one-line ClickException for an exception of the request."""
    message = " ".join(str(exc).split())
    if not isinstance(exc, RemoteError):  # its text already names the type
        message = f"{type(exc).__name__}: {message}"
    if isinstance(exc, NoServerError) and url.startswith("memory:"):
        message += (
            f" (the URL is {url}, which reaches only servers in this process; "
            "give --url or set LEVERET_URL)"
        )
    raise click.ClickException(f"{operation} of {topic}.{method} failed: {message}")


def _echo_json(value: Any) -> None:
    echo_line(json.dumps(value, ensure_ascii=False))


@click.command(epilog=_ARGUMENTS_HELP)
@_request_options
@server_option("Send the call to this one server of TOPIC. [default: any one server]")
@click.option(
    "--timeout",
    type=SECONDS,
    default=DEFAULT_TIMEOUT,
    show_default=True,
    help="Seconds to wait for the reply (with --stream: for each item).",
)
@click.option(
    "--stream",
    is_flag=True,
    help=(
        "Print each item a generator METHOD yields, one JSON line each, as it "
        "arrives. Without it, a generator's last item is the result."
    ),
)
def call(
    topic: str,
    method: str,
    arguments: dict[str, Any],
    url: str,
    exchange: str | None,
    namespace: str | None,
    version: str | None,
    server: str | None,
    timeout: float,
    stream: bool,
) -> None:
    """Call METHOD on a server of TOPIC and print the result as JSON.

    An exception raised by the remote method is printed as one line on
    stderr, with exit status 1. When the reader of stdout goes away (as
    ``head`` does), a stream is closed and the command exits with status 0.
    """
    target = Target(
        topic, server=server, exchange=exchange, namespace=namespace, version=version
    )
    transport = get_transport(url)
    try:
        client = RPCClient(transport, target, timeout)
        try:
            if stream:
                with client.stream(method, **arguments) as items:
                    for item in items:
                        _echo_json(item)
            else:
                _echo_json(client.call(method, **arguments))
        except StdoutClosed:
            return
        except Exception as exc:  # a remote exception, or e.g. NoServerError
            _raise_failure("call", topic, method, exc, url)
    finally:
        transport.close()


@click.command(epilog=_ARGUMENTS_HELP)
@_request_options
@server_option("Send the cast to this one server of TOPIC. [default: any one server]")
@click.option("--fanout", is_flag=True, help="Send the cast to every server of TOPIC.")
@click.option(
    "--timeout",
    type=SECONDS,
    default=DEFAULT_TIMEOUT,
    show_default=True,
    help="Seconds to wait for the broker to accept the cast.",
)
def cast(
    topic: str,
    method: str,
    arguments: dict[str, Any],
    url: str,
    exchange: str | None,
    namespace: str | None,
    version: str | None,
    server: str | None,
    fanout: bool,
    timeout: float,
) -> None:
    """Send METHOD to TOPIC without waiting for a result; print nothing.

    The exit status is 0 once the request is sent. The server logs a failure
    of the method, since no caller waits for it.
    """
    if fanout and server is not None:
        raise click.UsageError("--fanout sends to every server; leave out --server")
    target = Target(
        topic,
        server=server,
        fanout=fanout,
        exchange=exchange,
        namespace=namespace,
        version=version,
    )
    transport = get_transport(url)
    try:
        try:
            RPCClient(transport, target, timeout).cast(method, **arguments)
        except Exception as exc:  # e.g. NoServerError or MessagingTimeout
            _raise_failure("cast", topic, method, exc, url)
    finally:
        transport.close()
