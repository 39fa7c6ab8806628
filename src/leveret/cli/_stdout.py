"""Lines on stdout, whose reader (``head``, a closed terminal) may go away."""

from __future__ import annotations

import os
import sys

import click

__all__ = ["StdoutClosed", "echo_line"]


class StdoutClosed(Exception):
    """The reader of stdout closed its end of the pipe."""


def echo_line(text: str) -> None:
    """Print *text* and a newline on stdout at once.

    Raises StdoutClosed when the reader is gone. stdout then points at
    /dev/null, so that later writes and the flush at exit raise nothing.
    """
    try:
        click.echo(text)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        raise StdoutClosed from None
