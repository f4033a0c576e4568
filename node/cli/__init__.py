"""The ``circnode`` command: thin wrappers over the same domain functions as the web.

``main`` holds the group and adds each module's ``COMMANDS``; ``common`` the context and the refusals;
one module per command group.  ``python -m node.cli`` (``__main__``) runs the same command.
"""
