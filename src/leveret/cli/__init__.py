"""The ``leveret`` console command.

Each subcommand lives in its own module. To add one, import it here and
register it with ``cli.add_command``.
"""

from __future__ import annotations

from typing import Any

import click

from .._errors import LeveretError
from .bench import bench
from .call import call, cast
from .demo import demo
from .listen import listen
from .notify import notify
from .serve import serve

__all__ = ["cli", "main"]


# The exit status of a command stopped by SIGINT, as shells report one.
INTERRUPTED_STATUS = 130


class LeveretGroup(click.Group):
    """A command group that reports a :class:`~leveret.LeveretError` raised
    by a subcommand as a one-line error (exit status 1) instead of a traceback,
    and a Ctrl-C with exit status 130, so that scripts can tell it from a
    failed request.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LeveretError as exc:
            raise click.ClickException(" ".join(str(exc).split())) from exc
        except KeyboardInterrupt:
            click.echo("Aborted!", err=True)
            raise click.exceptions.Exit(INTERRUPTED_STATUS) from None


@click.group(cls=LeveretGroup)
@click.version_option(package_name="leveret")
def cli() -> None:
    """RPC and notifications over RabbitMQ, wire-compatible with oslo.messaging.

    Run `leveret demo` for a tour, `leveret serve` to serve an object's
    methods, `leveret call` or `leveret cast` to send requests, and
    `leveret notify` or `leveret listen` for notifications.
    """


cli.add_command(demo)
cli.add_command(serve)
cli.add_command(call)
cli.add_command(cast)
cli.add_command(notify)
cli.add_command(listen)
cli.add_command(bench)


def main() -> None:
    """Run the ``leveret`` command; the entry point of the console script."""
    cli.main(prog_name="leveret")
