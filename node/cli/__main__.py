"""``python -m node.cli``: the ``circnode`` command (the tests and the demo start nodes this way)."""
from node.cli.main import entry

if __name__ == "__main__":
    entry()
