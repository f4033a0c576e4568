"""What every ``circnode`` command shares: the node's context, and one way to refuse.

A refusal is one line on standard error and exit status 2: ``fail`` for the command's own checks,
``refusals`` for the domain's named exceptions (node/domain/errors.py).
"""
import functools
import os
import sys

import click

from node import config as config_module
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


class Context:
    def __init__(self, config_path):
        self.config_path = config_path
        self._cfg = None

    @property
    def cfg(self):
        if self._cfg is None:
            try:
                self._cfg = config_module.load(self.config_path)
            except config_module.ConfigError as exc:
                fail(str(exc))
        return self._cfg

    def open(self):
        """Load the config and open (and migrate) the database."""
        from node.store.db import open_database
        cfg = self.cfg
        try:
            open_database(cfg.database_path)
        except Exception as exc:  # a locked, unreadable or corrupt file: say which
            fail(f"{cfg.database_path}: cannot open the database ({exc})")
        return cfg


pass_ctx = click.make_pass_decorator(Context)


def cli_actor():
    """Who ran the command, for the audit log: cli:USER."""
    import getpass
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry (some containers)
        return f"cli:{os.getuid()}"


def local(value, cfg):
    """VALUE (UTC) in the library's local time to the minute, or 'never'."""
    return value.astimezone(cfg.tz).strftime("%Y-%m-%d %H:%M") if value else "never"


def read_password(password_stdin):
    """The password from one line of stdin, or from a prompt asked twice."""
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")  # empty: the domain refuses it, naming why
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)
