"""Every CLI command and every API endpoint is documented (README.md or docs/)."""
import re

import click
from tests.helpers import ROOT



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


SIGN_IN_CODES = ("saml_", "federation_", "pass_", "link_", "sign_in_", "key_rollover_")


def test_every_refusal_code_is_documented():
    from node.domain import errors
    api = ROOT.joinpath("docs/api.md").read_text() + ROOT.joinpath("docs/protocol.md").read_text()
    identity = ROOT.joinpath("docs/identity.md").read_text()
    missing = [f"{code} ({cls.__name__})" for code, cls in errors.CATALOGUE.items()
               if f"`{code}`" not in (identity if code.startswith(SIGN_IN_CODES) else api)]
    assert not missing, f"refusal codes missing from docs/api.md, docs/protocol.md or docs/identity.md: {missing}"


def test_every_event_rejection_reason_is_documented():
    from sync.catalogue import REASONS
    protocol = ROOT.joinpath("docs/protocol.md").read_text()
    assert not [reason for reason in REASONS if f"| `{reason}` |" not in protocol]


def test_every_refusal_class_states_its_own_code_and_status():
    from node.domain import errors
    classes = [value for value in vars(errors).values()
               if isinstance(value, type) and issubclass(value, errors.CircnodeError) and value is not errors.CircnodeError]
    assert sorted(cls.code for cls in classes) == sorted(errors.CATALOGUE)
    for cls in classes:
        assert "code" in vars(cls) and "status" in vars(cls), cls.__name__
        assert 400 <= cls.status < 600, cls.__name__
