"""Options and helpers shared by the subcommands."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

import click

__all__ = [
    "SECONDS",
    "URL_ENVVAR",
    "exchange_option",
    "redact_url",
    "server_option",
    "url_option",
]

URL_ENVVAR = "LEVERET_URL"
DEFAULT_URL = "memory://"

F = TypeVar("F", bound=Callable[..., Any])


class _Seconds(click.FloatRange):
    """A finite number of seconds above 0; nan and inf are usage errors."""

    name = "seconds"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> Any:
        seconds = super().convert(value, param, ctx)
        if not math.isfinite(seconds):
            self.fail(f"{value!r} is not a finite number of seconds.", param, ctx)
        return seconds


SECONDS = _Seconds(min=0, min_open=True)


def url_option(
    default: str = DEFAULT_URL, help_text: str | None = None
) -> Callable[[F], F]:
    """Return the ``--url`` option, read from $LEVERET_URL when not given."""
    if help_text is None:
        help_text = (
            "Transport URL: amqp://USER:PASSWORD@HOST:PORT/VHOST for RabbitMQ, "
            "or memory://NAME for the in-process broker, which reaches only "
            "servers in this same process (so it is useful only in tests)."
        )
    return click.option(
        "--url",
        envvar=URL_ENVVAR,
        default=default,
        show_default=True,
        show_envvar=True,
        metavar="URL",
        help=help_text,
    )


def exchange_option(function: F) -> F:
    return click.option(
        "--exchange",
        metavar="NAME",
        help=(
            "Control exchange of the topic. "
            "[default: the transport's default exchange, normally 'openstack']"
        ),
    )(function)


def server_option(help_text: str) -> Callable[[F], F]:
    return click.option("--server", metavar="NAME", help=help_text)


def redact_url(url: str) -> str:
    """Return *url* with the password of each host replaced by ``***``.

    Handles the comma-separated host list of oslo.messaging URLs
    (``amqp://u:p@host1,u:p@host2/``). Passwords must be percent-encoded, as
    URLs require, because a raw ``/`` in one ends the host part early.
    """
    scheme, separator, rest = url.partition("://")
    if not separator:
        return url
    netloc, slash, path = rest.partition("/")
    hosts = []
    for host in netloc.split(","):
        userinfo, at, address = host.rpartition("@")
        if at and ":" in userinfo:
            user = userinfo.partition(":")[0]
            host = f"{user}:***@{address}"
        hosts.append(host)
    return f"{scheme}://{','.join(hosts)}{slash}{path}"
