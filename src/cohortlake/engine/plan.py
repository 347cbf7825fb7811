"""Which stored tables a built plan reads, and how often, from Spark's physical plan.

Persisted frames are followed into their cached plans once each (they are computed once
per build), so the count is the number of times each table's files are scanned.
"""

from __future__ import annotations

from collections import Counter


def _leaves(plan):
    leaves = plan.collectLeaves()
    return [leaves.apply(i) for i in range(leaves.length())]


def _scan_leaves(frame):
    """Every leaf of a DataFrame's physical plan that reads data, persisted plans followed once each."""
    seen_caches: set[int] = set()

    def visit(plan):
        for leaf in _leaves(plan):
            node = leaf.getClass().getSimpleName()
            if node == "InMemoryTableScanExec":
                relation = leaf.relation()
                key = relation.cacheBuilder().hashCode()
                if key not in seen_caches:
                    seen_caches.add(key)
                    yield from visit(relation.cachedPlan())
            elif node == "AdaptiveSparkPlanExec":  # adaptive execution wraps cached plans
                yield from visit(leaf.initialPlan())
            elif node not in ("RDDScanExec", "LocalTableScanExec"):
                yield node, leaf

    yield from visit(frame._jdf.queryExecution().sparkPlan())


def _table(leaf, root: str | None) -> str:
    return _table_of(str(leaf.relation().location().rootPaths().apply(0)), root)


def table_scans(frame, root: str | None = None) -> Counter:
    """Counter of scanned table folders (relative to ``root`` when given) for a DataFrame's plan."""
    return Counter(_table(leaf, root) if node == "FileSourceScanExec" else node for node, leaf in _scan_leaves(frame))


def columns_read(frame, root: str | None = None) -> dict[str, set[str]]:
    """The columns each scanned table folder is read for in a DataFrame's plan (persisted plans included).

    What a bare scan of the same data must read: the floor a build is measured against
    (``benchmarks/build_cohort.py``).
    """
    read: dict[str, set[str]] = {}
    for node, leaf in _scan_leaves(frame):
        if node == "FileSourceScanExec":
            read.setdefault(_table(leaf, root), set()).update(leaf.requiredSchema().fieldNames())
    return read


def _table_of(path: str, root: str | None) -> str:
    path = path.removeprefix("file:")
    if root:
        root = root.removeprefix("file:").rstrip("/")
        if path.startswith(root + "/"):
            path = path[len(root) + 1:]
    # A table's files sit in write folders (w-<time>-<id>/) or directly in the table.
    parts = [p for p in path.split("/") if p]
    while parts and (parts[-1].startswith("w-") or parts[-1].endswith(".parquet") or "=" in parts[-1]):
        parts.pop()
    return "/".join(parts)
