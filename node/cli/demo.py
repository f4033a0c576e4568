"""``circnode demo``: run the demo network, and stop or start one of its nodes from another terminal."""
import os
import sys
import time

import click

from node.cli.common import fail

_DIR_HELP = "Where the demo nodes keep their configs, databases and logs."


def _dir_option(default):
    return click.option("--dir", "base_dir", default=default, show_default=default is not None,
                        type=click.Path(file_okay=False), help=_DIR_HELP)


@click.group(invoke_without_command=True)
@_dir_option("./demo-data")  # node/demo/supervisor.py DEFAULT_DIR: its hints leave --dir out only for this
@click.option("--port-base", default=8101, show_default=True, type=click.IntRange(1024, 65000),
              help="The first node listens here, the next on the port after, ...")
@click.pass_context
def demo(ctx, base_dir, port_base):
    """Start a demo network (NORTH, SOUTH, EAST) on loopback with sample data; Ctrl-C stops it.

    While it runs, 'circnode demo stop SOUTH' in another terminal stops SOUTH alone (the others keep
    running) and 'circnode demo start SOUTH' starts it again.
    """
    ctx.obj = os.path.abspath(base_dir)
    if ctx.invoked_subcommand is None:
        from node.demo.network import run_demo
        sys.exit(run_demo(ctx.obj, port_base, echo=click.echo))


def _running_node(ctx, base_dir, code):
    """The node CODE of the demo running from the folder, or a refusal (exit status 2)."""
    from node.demo.network import load_network
    from node.demo.supervisor import supervisor_pid
    folder = os.path.abspath(base_dir) if base_dir else ctx.obj
    infos = load_network(folder)
    if infos is None or supervisor_pid(folder) is None:
        fail(f"no demo is running from {folder}; start one with 'circnode demo' (or name its folder with --dir)")
    by_code = {info.code: info for info in infos}
    if code.upper() not in by_code:
        fail(f"no node {code} in the demo in {folder}; its nodes: {', '.join(by_code)}")
    return by_code[code.upper()], infos


@demo.command("stop")
@click.argument("code")
@_dir_option(None)
@click.pass_context
def stop(ctx, code, base_dir):
    """Stop node CODE of the running demo (the others keep running), e.g. to lend offline."""
    from node.demo.supervisor import demo_command, port_is_free, request_stop
    info, infos = _running_node(ctx, base_dir, code)
    request_stop(info.folder)
    deadline = time.monotonic() + 30
    while not port_is_free(info.port):
        if time.monotonic() > deadline:
            fail(f"{info.code} still answers on {info.url} after 30 s; see the demo's terminal")
        time.sleep(0.2)
    others = ", ".join(other.code for other in infos if other is not info)
    click.echo(f"{info.code} stopped; {others} keep running. "
               f"Start it again: {demo_command(os.path.dirname(info.folder), 'start', info.code)}")


@demo.command("start")
@click.argument("code")
@_dir_option(None)
@click.pass_context
def start(ctx, code, base_dir):
    """Start node CODE of the running demo again after 'circnode demo stop CODE'."""
    from node.demo.supervisor import DemoError, answers_as, request_start
    info, _ = _running_node(ctx, base_dir, code)
    request_start(info.folder)
    try:
        answers_as(info.url, info.code, info.token, 60, None)
    except DemoError as exc:
        fail(f"{exc.message}; see its log: {os.path.join(info.folder, 'node.log')}")
    click.echo(f"{info.code} is running on {info.url}")


@demo.command("status")
@_dir_option(None)
@click.pass_context
def status(ctx, base_dir):
    """Which nodes of the running demo answer, and which are stopped on request."""
    from node.demo.network import load_network
    from node.demo.supervisor import port_is_free, stop_requested, supervisor_pid
    folder = os.path.abspath(base_dir) if base_dir else ctx.obj
    infos = load_network(folder)
    if infos is None:
        fail(f"no demo in {folder}; start one with 'circnode demo'")
    pid = supervisor_pid(folder)
    click.echo(f"demo in {folder}: " + (f"running (pid {pid})" if pid else "not running"))
    for info in infos:
        state = "stopped on request" if stop_requested(info.folder) else (
            "down" if port_is_free(info.port) else "up")
        click.echo(f"  {info.code:6} {info.url:24} {state}")


COMMANDS = [demo]
