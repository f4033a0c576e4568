"""How every ``circnode`` command refuses: one line on stderr and exit status 2.

Kept apart from node/cli.py so command modules can share it: ``python -m
node.cli`` runs that file as ``__main__``, where importing it by name would
load a second copy.
"""
import functools
import sys

import click

from node.domain import errors


def fail(message):
    """One clear line on stderr and exit status 2: the CLI's only way to refuse."""
    click.echo(f"circnode: {message}", err=True)
    sys.exit(2)


def refusals(command):
    """Turn domain refusals into one line and exit status 2."""
    @functools.wraps(command)
    def wrapped(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except errors.CircnodeError as exc:
            fail(f"{exc.message} [{exc.code}]")
    return wrapped
