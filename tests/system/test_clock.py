"""Time is a parameter below the web and CLI layers: the wall clock is read only at the edges listed here."""
import ast
from tests.helpers import ROOT

# Below the web and CLI layers: the domain, the store, the protocol, and the identity modules.
SCANNED = ["node/domain", "node/store", "sync", "node/identity", "node/keys.py"]
# (owner, attribute) of the calls that read the clock: datetime.now(), date.today(), time.time(), ...
CLOCK_READS = {("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today"), ("date", "today"),
               ("time", "time"), ("time", "time_ns")}

# The edges: (module, function) -> why the wall clock is read there and not passed in.
EDGES = {
    ("sync/receive.py", "*"): "the protocol's HTTP views: a peer's request is an edge, as the desk's is",
    ("sync/client.py", "peer_request"): "a signature's created time and the answer's skew check need the real "
                                        "clock, not the business 'now' a caller passes for its loan",
    ("node/domain/jobs.py", "run_daily"): "started_at and finished_at measure the step's run; as_of is its now",
    ("node/domain/jobs.py", "run_daily_safely"): "the scheduler's daily job: the edge that reads the clock once",
    ("node/store/models.py", "new_uuid"): "an id's time part orders ids in the index; it is no business time",
    ("node/store/migrations.py", "migrate"): "when a schema step ran: bookkeeping of the file, at startup",
    ("node/identity/saml_keys.py", "make_self_signed"): "a certificate is valid from when its key is made (circnode init)",
}


def _sources():
    for pattern in SCANNED:
        paths = ROOT.glob(pattern) if "*" in pattern else [ROOT / pattern]
        for path in sorted(paths):
            yield from sorted(path.rglob("*.py")) if path.is_dir() else [path]


def clock_reads(tree):
    """(function, line, what) of each wall-clock read in TREE: a call such as datetime.now() or any use of utcnow."""
    found = []

    def visit(node, function):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and function == "<module>":
            function = node.name
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and isinstance(node.func.value, (ast.Name, ast.Attribute)):
            owner = node.func.value.id if isinstance(node.func.value, ast.Name) else node.func.value.attr
            if (owner, node.func.attr) in CLOCK_READS:
                found.append((function, node.lineno, ast.unparse(node.func)))
        elif isinstance(node, ast.Name) and node.id == "utcnow":
            found.append((function, node.lineno, "utcnow"))
        elif isinstance(node, ast.ImportFrom) and node.module == "node.clock":
            found.append((function, node.lineno, "import of node.clock"))
        for child in ast.iter_child_nodes(node):
            visit(child, function)

    visit(tree, "<module>")
    return found


def test_no_wall_clock_read_below_the_web_and_cli_outside_the_listed_edges():
    offending = []
    for path in _sources():
        module = path.relative_to(ROOT).as_posix()
        for function, line, what in clock_reads(ast.parse(path.read_text())):
            edge = (module, function) in EDGES or (module, "*") in EDGES
            if what == "import of node.clock":  # fine where an edge uses it
                edge = any(listed == module for listed, _ in EDGES)
            if not edge:
                offending.append(f"{module}:{line} {what} in {function}()")
    assert not offending, "pass 'now' in instead of reading the clock:\n" + "\n".join(offending)


def test_the_scan_finds_the_reads_it_forbids():
    tree = ast.parse("import datetime, time\nfrom node.clock import utcnow\n"
                     "def f(now=None):\n    return now or datetime.datetime.now(datetime.timezone.utc)\n"
                     "def g():\n    return time.time(), datetime.date.today(), datetime.time(23, 59)\n"
                     "class M:\n    at = Field(default=utcnow)\n")
    assert [(function, what) for function, _, what in clock_reads(tree)] == [
        ("<module>", "import of node.clock"), ("f", "datetime.datetime.now"), ("g", "time.time"),
        ("g", "datetime.date.today"), ("<module>", "utcnow")]


def test_every_listed_edge_still_exists():
    modules = {path.relative_to(ROOT).as_posix(): path for path in _sources()}
    for module, function in EDGES:
        assert module in modules, module
        names = {node.name for node in ast.walk(ast.parse(modules[module].read_text()))
                 if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
        assert function == "*" or function in names, (module, function)
