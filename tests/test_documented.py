"""Every CLI command and every API endpoint is documented (README.md or docs/)."""
import pathlib
import re

import click

ROOT = pathlib.Path(__file__).resolve().parents[1]


def documentation():
    texts = [ROOT.joinpath("README.md").read_text()]
    texts += [path.read_text() for path in sorted(ROOT.joinpath("docs").glob("*.md"))]
    return "\n".join(texts)


def command_paths(group, prefix="circnode"):
    for name, command in group.commands.items():
        path = f"{prefix} {name}"
        yield path
        if isinstance(command, click.Group):
            yield from command_paths(command, path)


def test_every_cli_command_is_documented():
    from node.cli.main import main
    docs = documentation()
    missing = [path for path in command_paths(main) if path not in docs]
    assert not missing, f"undocumented commands: {missing}"


def test_every_api_endpoint_is_documented(app):
    docs = re.sub(r"<[^>]+>", "<>", documentation())
    missing = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        path = re.sub(r"<[^>]+>", "<>", rule.rule)
        if path not in docs:
            missing.append(rule.rule)
    assert not missing, f"undocumented endpoints: {missing}"
