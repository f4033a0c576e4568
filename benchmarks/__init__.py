"""circnode benchmarks: the node measured against the machine's own limits, in the same run.

``python -m benchmarks [--quick] [--json PATH]`` from the repository root.
Every figure is a ratio: the node's rate over a raw limit (a trivial
endpoint, a bare SQLite transaction, a bare batched POST) measured in the
same run, interleaved with the node, over several rounds, so a noisy shared
machine moves both sides together.  See docs/benchmarks.md.
"""
