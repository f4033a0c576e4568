"""The lifecycle table is whole, and nothing writes an item's or a loan's status outside it."""
import ast
import re

import pytest

from node.domain import errors, lifecycle
from tests.helpers import ROOT

STATES = {"item": set(lifecycle.ITEM_STATES), "loan": set(lifecycle.LOAN_STATES)}


def test_every_move_goes_between_declared_states_and_names_known_actors():
    for move in lifecycle.MOVES.values():
        assert move.transitions and move.actors and move.doc, move.name
        assert move.actors <= set(lifecycle.ACTORS), move.name
        for source, target in move.transitions.items():
            assert source is lifecycle.NEW or source in STATES[move.of], (move.name, source)
            assert target in STATES[move.of], (move.name, target)


@pytest.mark.parametrize("kind, initial", [("item", lifecycle.ITEM_INITIAL), ("loan", lifecycle.NEW)])
def test_every_state_is_reachable_and_every_state_has_a_way_out_or_is_final(kind, initial):
    moves = [m for m in lifecycle.MOVES.values() if m.of == kind]
    reached, frontier = {initial}, [initial]
    while frontier:
        state = frontier.pop()
        for move in moves:
            target = move.transitions.get(state)
            if target is not None and target not in reached:
                reached.add(target)
                frontier.append(target)
    assert STATES[kind] <= reached


def test_a_move_from_a_state_it_does_not_start_from_is_refused():
    assert lifecycle.move("checkout", "available", lifecycle.DESK) == "on_loan"
    with pytest.raises(errors.ItemNotAvailable):
        lifecycle.move("checkout", "missing", lifecycle.DESK)
    with pytest.raises(errors.LoanClosed):
        lifecycle.move("renew", "closed", lifecycle.DESK)


def test_a_move_by_an_actor_the_table_does_not_name_is_a_bug():
    with pytest.raises(ValueError):
        lifecycle.move("declare_missing", "available", lifecycle.PEER)
    with pytest.raises(ValueError):
        lifecycle.move("peer_lent", lifecycle.NEW, lifecycle.DESK)


# --- nothing assigns a status outside the table ----------------------------------------

# Attributes that are the lifecycle's: an item's or a loan's state and a loan's flags.
_STATE_ATTRIBUTES = {"status", "lost_at", "disputed", "dispute_reason", "provisional", "returned_at"}
_SQL_WRITE = re.compile(r"\b(UPDATE\s+(item|loan)\s+SET\b[^;]*\b(status|lost_at|disputed|provisional)\s*=)",
                        re.IGNORECASE | re.DOTALL)
# A fee's status (open, paid, waived) is the ledger's; an error's or a response's is HTTP's.
_OTHER_STATUSES = {"fee", "refusal", "response", "exc", "error"}
_MODEL_WRITES = {"add", "create", "insert", "insert_many", "update", "replace"}
# errors.py: an error's HTTP status (HttpError keeps the web server's), not an item's or a loan's.
_ALLOWED_MODULES = {"node/domain/lifecycle.py", "node/domain/errors.py"}


def _sources():
    for folder in ("node", "sync"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if relative not in _ALLOWED_MODULES:
                yield relative, ast.parse(path.read_text(), relative)


def _from_lifecycle(value):
    """True when VALUE takes its state from the lifecycle module (a move, a target or a constant of it)."""
    names = {node.id for node in ast.walk(value) if isinstance(node, ast.Name)}
    return "lifecycle" in names or any(name.startswith("_") and name.isupper() for name in names)


def _assignments(tree):
    """(line, attribute, object, value) of each assignment to an attribute, tuples unpacked.

    The other attributes of a statement that sets a status from the table
    (``loan.status, loan.returned_at = CLOSED, at``) belong to that move.
    """
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Assign, ast.AugAssign)):
            continue
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target]):
            pairs = [(target, node.value)]
            if isinstance(target, ast.Tuple):
                values = node.value.elts if isinstance(node.value, ast.Tuple) else [node.value] * len(target.elts)
                pairs = list(zip(target.elts, values))
            moved = any(isinstance(each, ast.Attribute) and each.attr == "status" and _from_lifecycle(value)
                        for each, value in pairs)
            for each, value in pairs:
                if isinstance(each, ast.Attribute) and not moved:
                    owner = each.value.id if isinstance(each.value, ast.Name) else ""
                    yield node.lineno, each.attr, owner, value


def test_no_status_is_assigned_outside_the_lifecycle_table():
    found = []
    for path, tree in _sources():
        for line, attribute, owner, value in _assignments(tree):
            if attribute not in _STATE_ATTRIBUTES or owner in _OTHER_STATUSES:
                continue
            found.append(f"{path}:{line}: {owner}.{attribute} = ...")
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in _MODEL_WRITES):
                for keyword in node.keywords:
                    if keyword.arg in _STATE_ATTRIBUTES - {"provisional"} and not _from_lifecycle(keyword.value):
                        found.append(f"{path}:{node.lineno}: {node.func.attr}({keyword.arg}=...)")
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and _SQL_WRITE.search(node.value):
                found.append(f"{path}:{node.lineno}: SQL {node.value[:60]!r}")
    assert found == [], "status written outside node/domain/lifecycle.py:\n" + "\n".join(found)


def test_the_scan_catches_a_status_written_by_hand():
    tree = ast.parse('item.status = "lost"\nloan.disputed = True\nItem.add(status="on_loan")\n'
                     'SQL = "UPDATE item SET status = ? WHERE id = ?"\n'
                     'loan.status, loan.returned_at = lifecycle.LOAN_CLOSED, now\n')
    attributes = [attribute for _, attribute, _, _ in _assignments(tree)]
    assert attributes == ["status", "disputed"]
    assert any(_SQL_WRITE.search(node.value) for node in ast.walk(tree)
               if isinstance(node, ast.Constant) and isinstance(node.value, str))


def test_architecture_page_holds_the_lifecycle_table_as_declared():
    import re

    from node.domain import lifecycle
    path = ROOT / "docs" / "architecture.md"
    with open(path, encoding="utf-8") as handle:
        found = re.search(r"<!-- lifecycle -->\n(.*?)\n<!-- /lifecycle -->", handle.read(), re.DOTALL)
    assert found and found.group(1) == lifecycle.markdown_table(), "run: python -m node.domain.lifecycle"
