"""Staff management (issue 12, point 8): circnode staff list, passwd, disable, enable, tokens, revoke.

The commands run as real subprocesses on the node's SQLite file; the desk and
the JSON API run in this process on the same file, so a test can show that
disabling or revoking ends a session or token at once.
"""
import datetime

import pytest

from node.domain import errors
from node.domain.accounts import add_staff, check_login, new_token
from node.store.models import ApiToken, AuditLog, LoginFailure, Staff, StaffSession
from node.domain.staff import revoke_token, set_password
from tests.helpers.cli import circnode, ok, refused
from tests.helpers.desk import post_form, sign_in

UTC = datetime.timezone.utc
PASSWORD = "desk-password-1"
NEW_PASSWORD = "a-new-desk-password"


@pytest.fixture
def node(ini):
    """The node's app on the CLI's config and database, with desk1 (a token) and boss (admin)."""
    from node.web.app import create_app
    from node.store.db import database
    app = create_app(ini, {"TESTING": True})
    now = datetime.datetime.now(UTC)
    add_staff("desk1", "desk", PASSWORD, now)
    add_staff("boss", "admin", "admin-password-1", now)
    app.desk1_token = new_token("desk1", now)
    yield app
    database.close()


def run(node, *args, input=None):
    return circnode("--config", node.extensions["circnode"].path, "staff", *args, input=input)


def api_works(node, token):
    response = node.test_client().get("/api/v1/loans", headers={"Authorization": f"Bearer {token}"})
    return response.status_code == 200


def desk_works(client):
    return client.get("/loans").status_code == 200


def signed_in(node, name="desk1", password=PASSWORD):
    client = node.test_client()
    assert sign_in(client, name, password).status_code == 302
    return client


def audit_lines(action):
    return [(row.target, row.detail, row.staff) for row in AuditLog.select().where(AuditLog.action == action)]


# --- list ---

def test_list_shows_each_account_without_its_password_hash(node):
    signed_in(node)
    ok(run(node, "disable", "boss"))
    out = ok(run(node, "list")).stdout
    lines = out.strip().splitlines()
    assert lines[0].split()[:4] == ["name", "role", "state", "created"]
    boss = next(line for line in lines if line.startswith("boss "))
    desk1 = next(line for line in lines if line.startswith("desk1 "))
    assert boss.split()[1:3] == ["admin", "disabled"] and boss.split()[-2:] == ["never", "0"]  # never signed in
    assert desk1.split()[1:3] == ["desk", "active"] and desk1.split()[-1] == "1"  # one token
    assert "never" not in desk1  # signed in at the desk just now
    assert lines[-1] == "2 staff"
    assert "scrypt" not in out and Staff.get(name="desk1").password_hash not in out


# --- passwd ---

def test_passwd_from_stdin_sets_the_password_ends_desk_sessions_and_is_audited(node):
    desk = signed_in(node)
    done = ok(run(node, "passwd", "desk1", "--password-stdin", input=NEW_PASSWORD + "\n"))
    assert "1 desk sessions ended" in done.stdout
    assert not desk_works(desk)
    assert api_works(node, node.desk1_token)  # tokens stay; revoke or disable ends them
    now = datetime.datetime.now(UTC)
    with pytest.raises(errors.Unauthorized):
        check_login("desk1", PASSWORD, "10.0.0.1", now)
    assert check_login("desk1", NEW_PASSWORD, "10.0.0.1", now).name == "desk1"
    [(target, detail, actor)] = audit_lines("staff_password_set")
    assert target == "desk1" and "1 desk sessions" in detail and actor.startswith("cli:")
    assert NEW_PASSWORD not in detail


def test_passwd_prompts_twice_without_password_stdin(node):
    ok(run(node, "passwd", "desk1", input=f"{NEW_PASSWORD}\n{NEW_PASSWORD}\n"))
    assert check_login("desk1", NEW_PASSWORD, "10.0.0.1", datetime.datetime.now(UTC)).name == "desk1"


def test_passwd_lifts_the_sign_in_lock_of_that_name(node):
    now = datetime.datetime.now(UTC)
    for _ in range(5):
        with pytest.raises(errors.Unauthorized):
            check_login("desk1", "typo-typo", "10.0.0.1", now)
    with pytest.raises(errors.TooManyAttempts):
        check_login("desk1", PASSWORD, "10.0.0.1", now)
    set_password("desk1", NEW_PASSWORD, now, "cli:test")
    assert check_login("desk1", NEW_PASSWORD, "10.0.0.1", now).name == "desk1"
    assert LoginFailure.select().where(LoginFailure.key == "addr:10.0.0.1").count() == 5  # the address still counts


@pytest.mark.parametrize("args, stdin, fragments", [
    (["passwd", "nobody", "--password-stdin"], NEW_PASSWORD + "\n", ["'nobody'", "staff_not_found"]),
    (["passwd", "desk1", "--password-stdin"], "\n", ["empty", "weak_password"]),
    (["passwd", "desk1", "--password-stdin"], "", ["empty", "weak_password"]),
    (["passwd", "desk1", "--password-stdin"], "short\n", ["at least 8", "weak_password"]),
    (["passwd", "desk1", "--password-stdin"], "password123\n", ["common", "weak_password"]),
    (["passwd", "desk1", "--password-stdin"], "desk1-is-me-really\n", ["staff name", "weak_password"]),
    (["disable", "nobody"], None, ["'nobody'", "staff_not_found"]),
    (["enable", "nobody"], None, ["'nobody'", "staff_not_found"]),
    (["tokens", "nobody"], None, ["'nobody'", "staff_not_found"]),
    (["token", "nobody"], None, ["'nobody'", "staff_not_found"]),
    (["revoke", "999"], None, ["'999'", "token_not_found"]),
    (["revoke", "abc"], None, ["'abc'", "token_not_found"]),
    (["revoke", "0"], None, ["'0'", "token_not_found"]),
    (["revoke", "--", "-1"], None, ["'-1'", "token_not_found"]),
    (["revoke", "99999999999999999999999"], None, ["token_not_found"]),
])
def test_bad_input_is_one_line_with_exit_status_2_and_changes_nothing(node, args, stdin, fragments):
    before = ([(s.name, s.password_hash, s.active) for s in Staff.select().order_by(Staff.id)],
              ApiToken.select().count(), AuditLog.select().count())
    refused(run(node, *args, input=stdin), *fragments)
    after = ([(s.name, s.password_hash, s.active) for s in Staff.select().order_by(Staff.id)],
             ApiToken.select().count(), AuditLog.select().count())
    assert after == before
    assert api_works(node, node.desk1_token)


# --- disable, enable ---

def test_disable_ends_an_open_desk_session_and_every_token_at_once_and_is_audited(node):
    desk = signed_in(node)
    second = new_token("desk1", datetime.datetime.now(UTC))
    boss = signed_in(node, "boss", "admin-password-1")
    assert desk_works(desk) and api_works(node, node.desk1_token) and api_works(node, second)
    done = ok(run(node, "disable", "desk1"))
    assert "1 desk sessions and 2 API tokens ended" in done.stdout
    assert not desk_works(desk)
    assert not api_works(node, node.desk1_token) and not api_works(node, second)
    assert desk_works(boss)  # another member's session goes on
    assert StaffSession.select().join(Staff).where(Staff.name == "desk1").count() == 0
    response = sign_in(node.test_client())
    assert response.status_code == 401  # the right password; told only "wrong name or password"
    [(target, detail, actor)] = audit_lines("staff_disabled")
    assert target == "desk1" and detail == "1 desk sessions and 2 API tokens ended" and actor.startswith("cli:")


def test_disabling_twice_changes_nothing_the_second_time(node):
    ok(run(node, "disable", "desk1"))
    ok(run(node, "disable", "desk1"))
    assert len(audit_lines("staff_disabled")) == 1


def test_enable_lets_a_disabled_member_sign_in_again_without_reviving_old_tokens(node):
    ok(run(node, "disable", "desk1"))
    assert "enabled" in ok(run(node, "enable", "desk1")).stdout
    assert desk_works(signed_in(node))
    assert not api_works(node, node.desk1_token)
    assert "was enabled already" in ok(run(node, "enable", "desk1")).stdout
    assert [line[0] for line in audit_lines("staff_enabled")] == ["desk1"]


# --- tokens, revoke ---

def test_tokens_lists_ids_and_times_never_the_token(node):
    api_works(node, node.desk1_token)  # marks it used
    second = new_token("desk1", datetime.datetime.now(UTC))
    out = ok(run(node, "tokens", "desk1")).stdout
    ids = [row.id for row in ApiToken.select().order_by(ApiToken.id)]
    lines = out.strip().splitlines()
    assert [int(line.split()[0]) for line in lines[1:-1]] == ids
    assert "never" not in lines[1] and lines[2].endswith("never")  # the first was used, the second not
    assert lines[-1] == "2 tokens of desk1"
    assert node.desk1_token not in out and second not in out
    assert "0 tokens of boss" in ok(run(node, "tokens", "boss")).stdout


def test_revoke_ends_that_token_only_and_is_audited(node):
    second = new_token("desk1", datetime.datetime.now(UTC))
    first_id = ApiToken.select().order_by(ApiToken.id).first().id
    desk = signed_in(node)
    done = ok(run(node, "revoke", str(first_id)))
    assert f"token {first_id} of desk1 revoked" in done.stdout
    assert not api_works(node, node.desk1_token)
    assert api_works(node, second) and desk_works(desk)
    assert audit_lines("token_revoked")[0][:2] == ("desk1", f"token {first_id}")
    refused(run(node, "revoke", str(first_id)), "token_not_found")  # gone, not revoked twice


def test_revoke_is_the_same_function_in_process(node):
    token_id = ApiToken.get().id
    assert revoke_token(token_id, datetime.datetime.now(UTC), "cli:test") == "desk1"
    with pytest.raises(errors.TokenNotFound):
        revoke_token(token_id, datetime.datetime.now(UTC), "cli:test")


def test_adding_staff_and_issuing_tokens_are_audited(node):
    ok(run(node, "add", "carla", "--role", "desk", "--password-stdin", input="circulate-all-day\n"))
    token = ok(run(node, "token", "carla")).stdout.strip().splitlines()[-1]
    assert audit_lines("staff_added")[-1][:2] == ("carla", "desk")
    issued = audit_lines("token_issued")[-1]
    assert issued[0] == "carla" and issued[1] == f"token {ApiToken.select().order_by(ApiToken.id.desc()).get().id}"
    assert token not in issued[1] and issued[2].startswith("cli:")


def test_a_desk_session_after_sign_out_stays_ended_when_disabled(node):
    desk = signed_in(node)
    post_form(desk, "/logout", {}, from_page="/loans")
    assert "0 desk sessions" in ok(run(node, "disable", "desk1")).stdout
