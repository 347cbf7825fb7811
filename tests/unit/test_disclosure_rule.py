"""The small-cell rule lives in one module (cohortlake.cells): its behaviour at the
boundaries 0, 1, 10 and 11, the same answer from every producer (report, quality page, KM
plot) and from the release checker, and a guard that no other module of the package
compares a count with the threshold on its own. No Spark."""

from __future__ import annotations

import ast
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

import cohortlake
from cohortlake import cells as rule
from cohortlake.cells import (
    HIDDEN, SMALL, SMALL_CELL_MAX, SMALLEST_SHOWN, Cells, Status, count_text, is_small, reader_bounds, small_cell,
    suppress,
)

PACKAGE = Path(cohortlake.__file__).parent
RULE_MODULE = Path(rule.__file__)
BOUNDARIES = (0, 1, 10, 11)

# --------------------------------------------------------------------------- the rule at its boundaries


def test_threshold_and_how_a_suppressed_cell_is_shown():
    assert SMALL_CELL_MAX == 10 and SMALLEST_SHOWN == 11
    assert SMALL == "<11" and HIDDEN == "*"
    assert "1-10" in rule.RULE and "<11" in rule.RULE
    assert rule.AUDIENCES == ("analyst", "release")
    assert "cells under 11 (counts of 1-10 persons)" in rule.NOT_FOR_RELEASE
    assert "counts of 1-10 shown as <11, complementary cells as *" in rule.RELEASE_NOTE


def test_is_small_at_the_boundaries():
    assert [is_small(n) for n in BOUNDARIES] == [False, True, True, False]
    assert not is_small(None)


def test_small_cell_at_the_boundaries():
    assert [small_cell(n) for n in BOUNDARIES] == ["0", "<11", "<11", "11"]
    assert [small_cell(n, rule=False) for n in BOUNDARIES] == ["0", "1", "10", "11"]
    assert small_cell(1234) == "1,234"
    # whole=True prints int(count) (the report's tables); whole=False the count as given (the KM plot)
    assert small_cell(12.0) == "12" and small_cell(12.0, whole=False) == "12.0"


def test_suppression_statuses_at_the_boundaries():
    status = suppress({n: n for n in BOUNDARIES}, [])
    assert [status[n] for n in BOUNDARIES] == [Status.shown, Status.small, Status.small, Status.shown]
    assert [count_text(n, status[n]) for n in BOUNDARIES] == ["0", "<11", "<11", "11"]
    unpublished = suppress({n: n for n in BOUNDARIES}, [], unpublished=BOUNDARIES)
    assert [unpublished[n] for n in BOUNDARIES] == [Status.unpublished, Status.unpublished_small,
                                                    Status.unpublished_small, Status.unpublished]


def test_what_a_reader_knows_of_a_suppressed_cell():
    assert reader_bounds(Status.small) == (1, 10)
    assert reader_bounds(Status.hidden) == (11, math.inf)
    assert reader_bounds(Status.unpublished) == (0, math.inf)


def test_cells_apply_the_rule_only_to_the_release_audience():
    release, analyst = Cells(rule=True), Cells(rule=False)
    for cells in (release, analyst):
        for n in BOUNDARIES:
            cells.add(n, n)
    assert [release.text(n) for n in BOUNDARIES] == ["0", "<11", "<11", "11"]
    assert [analyst.text(n) for n in BOUNDARIES] == ["0", "1", "10", "11"]


# --------------------------------------------------------------------------- producers and checker agree


def test_every_former_copy_uses_the_rule_module():
    from cohortlake.quality import page
    from cohortlake import cells as report_cells
    from cohortlake.report import disclosure, html
    from cohortlake.survival import plot

    for name in ("SMALL_CELL_MAX", "SMALL", "HIDDEN", "RULE", "Cells", "Status", "is_small", "small_cell",
                 "suppress", "reader_bounds", "linear_ranges", "count_text"):
        assert getattr(report_cells, name) is getattr(rule, name), name
    for name in ("ANALYST", "RELEASE", "AUDIENCES", "NOT_FOR_RELEASE", "RELEASE_NOTE", "RULE", "Cells", "is_small"):
        assert getattr(page, name) is getattr(rule, name), name
    for name in ("ANALYST", "RELEASE", "AUDIENCES", "NOT_FOR_RELEASE", "RELEASE_NOTE", "SMALL", "HIDDEN", "Cells"):
        assert getattr(html, name) is getattr(rule, name), name
    for name in ("SMALL", "HIDDEN", "is_small", "reader_bounds", "linear_ranges"):
        assert getattr(disclosure, name) is getattr(rule, name), name
    assert not hasattr(plot, "SMALL_CELL_MAX")
    assert plot.UNSUPPRESSED_NOTICE == "NOT FOR RELEASE: numbers at risk include counts under 11"


def test_the_km_plot_shows_the_boundaries_as_the_report_does():
    from cohortlake.survival.plot import small_cell as plot_small_cell

    assert [plot_small_cell(n) for n in BOUNDARIES] == [small_cell(n) for n in BOUNDARIES]
    assert [plot_small_cell(n, suppress=False) for n in BOUNDARIES] == ["0", "1", "10", "11"]


def _release_set(folder: Path, remaining: str) -> Path:
    folder.mkdir()
    (folder / "study.json").write_text(json.dumps({"audience": "release"}), encoding="utf-8")
    (folder / "attrition.csv").write_text(f"step,criterion,persons_remaining,persons_excluded\n1,All,{remaining},\n",
                                          encoding="utf-8")
    return folder


@pytest.mark.parametrize("printed", ["0", "1", "10", "11", "<11", "*"])
def test_the_checker_flags_exactly_what_the_rule_suppresses(tmp_path, printed):
    from cohortlake.report.disclosure import check_release

    leaks = check_release(_release_set(tmp_path / "set", printed))
    flagged = printed.isdigit() and is_small(int(printed))
    assert [leak.detail for leak in leaks] == ([f"prints {printed}, a count of 1-10"] if flagged else [])


@pytest.mark.parametrize("value", BOUNDARIES)
def test_the_checker_counts_a_pinned_cell_as_small_by_the_rule(value):
    from cohortlake.report.disclosure import Reader

    pinned = Reader({}, {"cell": (value, value)}).small_pinned(["cell"])
    assert pinned == ({"cell": value} if is_small(value) else {})


# --------------------------------------------------------------------------- layering

def _imports(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
    return modules


def test_the_rule_module_imports_nothing_of_the_layers_that_use_it():
    assert not [m for m in _imports(RULE_MODULE) if m.split(".")[0] in ("cohortlake", "pyspark", "delta")]


def test_the_rule_module_is_spark_free():
    code = f"import sys, cohortlake.cells; sys.exit('pyspark' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


@pytest.mark.parametrize("layer", ["quality", "survival"])
def test_lower_layers_do_not_import_the_report(layer):
    upward = {str(path.relative_to(PACKAGE)): sorted(m for m in _imports(path) if m.startswith("cohortlake.report"))
              for path in sorted((PACKAGE / layer).rglob("*.py"))}
    assert {path: modules for path, modules in upward.items() if modules} == {}


# --------------------------------------------------------------------------- drift guard

THRESHOLDS = {SMALL_CELL_MAX, SMALLEST_SHOWN}
RULE_NAMES = {"SMALL_CELL_MAX", "SMALLEST_SHOWN"}
ORDERINGS = (ast.Lt, ast.LtE, ast.Gt, ast.GtE)
OWN_THRESHOLD = ("SMALL_CELL", "MIN_CELL", "CELL_SIZE", "CELL_MAX", "CELL_MIN")
NOT_THE_RULE = {
    ("synth/__init__.py", "0 < hr <= 10"): "a synthetic hazard ratio's plausible range, not a count",
}
"""Comparisons with 10 or 11 that are not the small-cell rule: (path in the package, the comparison
as ast.unparse prints it) and why. Add one here only when it is not a count of persons."""


def _is_threshold(node: ast.AST) -> bool:
    """10 or 11 as a literal, the rule's constant by name, or either plus or minus something."""
    if isinstance(node, ast.Constant):
        return type(node.value) in (int, float) and node.value in THRESHOLDS
    if isinstance(node, (ast.Name, ast.Attribute)):
        return (node.id if isinstance(node, ast.Name) else node.attr) in RULE_NAMES
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
        return _is_threshold(node.left) or _is_threshold(node.right)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("float", "int"):
        return any(_is_threshold(arg) for arg in node.args)
    return False


def _is_range(node: ast.AST) -> bool:
    """A (low, high) pair or a range() with the threshold in it."""
    if isinstance(node, (ast.Tuple, ast.List)):
        return any(map(_is_threshold, node.elts))
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range" \
        and any(map(_is_threshold, node.args))


def small_cell_copies(source: str, path: str = "<source>") -> list[str]:
    """Every place in ``source`` that applies the small-cell threshold on its own: an ordering
    comparison with 10, 11 or the rule's constant (a bare ``== 10`` is not: widths, lengths),
    any comparison with a (low, high) pair or a ``range()`` holding one, a ``between`` with one,
    a constant of its own for the threshold, or the mask ``<11`` written out."""
    found = []
    for node in ast.walk(ast.parse(source)):
        where = f"{path}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            ordering = any(isinstance(op, ORDERINGS) for op in node.ops) and any(map(_is_threshold, operands))
            if (ordering or any(map(_is_range, operands))) and (path, ast.unparse(node)) not in NOT_THE_RULE:
                found.append(f"{where}: {ast.unparse(node)}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "between" \
                and any(map(_is_threshold, node.args)):
            found.append(f"{where}: {ast.unparse(node)}")
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name) and target.id.isupper() and any(w in target.id for w in OWN_THRESHOLD):
                    found.append(f"{where}: {target.id} defined outside the rule module")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.strip() == SMALL:
            found.append(f"{where}: the mask {node.value!r} written out")
        elif isinstance(node, ast.JoinedStr) and len(node.values) >= 2 and isinstance(node.values[0], ast.Constant) \
                and node.values[0].value == "<" and isinstance(node.values[1], ast.FormattedValue) \
                and _is_threshold(node.values[1].value):
            found.append(f"{where}: the mask built as {ast.unparse(node)}")
    return found


def test_the_guard_finds_the_copies_the_rule_module_replaced():
    former = '''
SMALL_CELL_MAX = 10
def small_cell(count, suppress=True):
    if suppress and 1 <= count <= SMALL_CELL_MAX:
        return f"<{SMALL_CELL_MAX + 1}"
    return f"{count:,}"
def leaks(value, rows):
    a = 1 <= value <= 10
    b = value < 11
    c = value in range(1, 11)
    d = (low, high) == (1.0, 10.0) or low >= float(SMALL_CELL_MAX + 1)
    e = rows.filter(F.col("n").between(1, 10))
    return "<11"
'''
    copies = small_cell_copies(former)
    assert len(copies) == 10, copies
    assert small_cell_copies("x = width == 10\ny = top < 2 ** 10\nz = 'shown as <11 here'\nsmall_cells = []\n") == []


def test_no_module_but_the_rule_applies_the_threshold_on_its_own():
    copies = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == RULE_MODULE:
            continue
        copies += small_cell_copies(path.read_text(encoding="utf-8"), str(path.relative_to(PACKAGE)))
    assert copies == [], ("the small-cell threshold is applied outside cohortlake.cells; use is_small, "
                          "small_cell or Cells from there (or, if it is not a count of persons, "
                          "list it in NOT_THE_RULE):\n" + "\n".join(copies))
