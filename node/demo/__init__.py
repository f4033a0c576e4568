"""The demo network and its identity providers: for trying circnode and for the tests.

Nothing a library runs in service imports this package (``.importlinter``): ``circnode demo`` and
``./quickstart demo`` run ``network.run_demo``, and each demo IdP is a ``python -m node.demo.idp`` process.
"""
