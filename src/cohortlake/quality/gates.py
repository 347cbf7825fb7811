"""The pipeline's quality gates: which suites validate which lake tables at each stage.

``bronze`` (raw tables as delivered, per layout) runs inside ingest before any typing,
so a bad delivery never reaches silver; ``silver`` runs after the canonical tables are
written; ``cohort`` after a build (with the definition's parameters and its own
expectations); ``matched`` after a match. A critical failure raises ``QualityGateError``;
warnings are reported. :func:`gated` is how a step that writes tables runs its gate.
"""

from __future__ import annotations

from contextlib import contextmanager

from cohortlake.errors import UserError
from cohortlake.lake import layout
from cohortlake.lake.manifest import RunManifest, ingested_layout
from cohortlake.quality.run import GateReport, QualityRunner, Target
from cohortlake.quality.suites import (
    SuiteFile, check_names, cohort_parameters, definition_expectations, load_suites, select,
)

PERSON_VIEW = {"silver_person": layout.silver("person")}
# What `validate` needs to run a step's gate again later, under these keys of the ``extra``
# of the step's manifest: the build records cohort_quality(definition), the match step its
# matching settings (their smd_threshold). The steps write them with these names.
COHORT_GATE_INPUTS = "quality"
MATCHED_GATE_INPUTS = "matching"


def _runner(lake, runner, progress) -> QualityRunner:
    return runner or QualityRunner(lake, progress)


def bronze_targets(lake, layout: str, suites: dict[str, SuiteFile], names=None) -> list[Target]:
    chosen = select(suites, "bronze", layout, names)
    return [Target(s, s.table) for s in chosen if lake.exists(s.table)]


def silver_targets(lake, suites: dict[str, SuiteFile], names=None) -> list[Target]:
    return [Target(s, s.table, views=dict(PERSON_VIEW)) for s in select(suites, "silver", None, names) if lake.exists(s.table)]


def cohort_targets(lake, cohort: str, quality: dict, suites: dict[str, SuiteFile], names=None) -> list[Target]:
    """Targets for one built cohort; ``quality`` holds its parameters and the definition's expectations.

    A cohort's suites are named ``cohorts.<cohort>.<part>``; ``names`` may give either
    that or the file's name (``cohort.cohort``).
    """
    targets = []
    for suite in select(suites, "cohort", None, None):
        table = suite.table.format(cohort=cohort)
        part = table.rsplit("/", 1)[-1]
        if names and suite.name not in names and f"cohorts.{cohort}.{part}" not in names:
            continue
        if not lake.exists(table):
            continue
        extra = quality.get("expectations", []) if part == "cohort" else []
        bound = suite.for_table(table, name=f"cohorts.{cohort}.{part}", extra=extra)
        targets.append(Target(bound, table, parameters=quality.get("parameters", {}),
                              views={"cohort_rows": layout.cohort_table(cohort, "cohort")}))
    return targets


def cohort_quality(definition) -> dict:
    """What the cohort gate needs from a definition, kept in the build manifest for `validate`."""
    return {"parameters": cohort_parameters(definition), "expectations": definition_expectations(definition)}


def gate_bronze(lake, layout: str, progress=None, runner=None, raise_on_critical: bool = True) -> GateReport:
    targets = bronze_targets(lake, layout, load_suites())
    return _runner(lake, runner, progress).validate("bronze", targets, gate=raise_on_critical)


def gate_silver(lake, progress=None, runner=None, raise_on_critical: bool = True) -> GateReport:
    return _runner(lake, runner, progress).validate("silver", silver_targets(lake, load_suites()), gate=raise_on_critical)


def gate_cohort(lake, definition, progress=None, runner=None, raise_on_critical: bool = True) -> GateReport:
    targets = cohort_targets(lake, definition.cohort, cohort_quality(definition), load_suites())
    return _runner(lake, runner, progress).validate("cohort", targets, gate=raise_on_critical)


def matched_targets(lake, cohort: str, smd_threshold: float, suites: dict[str, SuiteFile], names=None) -> list[Target]:
    """Targets for one cohort's matched dataset and balance table (suites named ``matched.<cohort>.<part>``)."""
    targets = []
    parameters = {"smd_low": -float(smd_threshold), "smd_high": float(smd_threshold)}
    for suite in select(suites, "matched", None, None):
        table = suite.table.format(cohort=cohort)
        part = table.rsplit("/", 1)[-1]
        if names and suite.name not in names and f"matched.{cohort}.{part}" not in names:
            continue
        if lake.exists(table):
            targets.append(Target(suite.for_table(table, name=f"matched.{cohort}.{part}"), table, parameters=parameters))
    return targets


def gate_matched(lake, cohort: str, smd_threshold: float, progress=None, runner=None,
                 raise_on_critical: bool = True) -> GateReport:
    targets = matched_targets(lake, cohort, smd_threshold, load_suites())
    return _runner(lake, runner, progress).validate("matched", targets, gate=raise_on_critical)


class Gated:
    """What ``with gated(...)`` hands its block: the tables' versions before the step, and
    the gate's report once :meth:`run` has run it."""

    def __init__(self, lake, tables, enabled: bool, manifest=None):
        self.before = {table: lake.version(table) for table in tables} if enabled else {}
        self.manifest = manifest
        self.report: GateReport | None = None

    def run(self, gate, *args, **kwargs) -> GateReport:
        """Run a ``gate_*`` function without raising; the block goes on (manifests, diagnostics).

        With the step's manifest, the gate is timed as its ``validate`` phase and its outcome
        recorded as ``extra.quality_gate``."""
        if self.manifest is None:
            self.report = gate(*args, raise_on_critical=False, **kwargs)
            return self.report
        with self.manifest.phase("validate"):
            self.report = gate(*args, raise_on_critical=False, **kwargs)
        self.manifest.extra["quality_gate"] = {"passed": self.report.passed, "run_id": self.report.run_id,
                                               "docs": self.report.docs_index}
        return self.report

    @property
    def failed(self) -> bool:
        return self.report is not None and not self.report.passed


@contextmanager
def gated(lake, tables, enabled: bool = True, manifest=None):
    """Remember ``tables``' versions → the block writes them and runs its gate → on a
    critical failure put the previous versions back (a Delta RESTORE: a new commit) and
    raise ``QualityGateError``, so nothing downstream reads unvalidated tables.

    The restore happens when the block ends, after whatever it writes about the failed run
    (its manifest, the balance diagnostics). An exception inside the block restores nothing.
    """
    state = Gated(lake, tables, enabled, manifest)
    yield state
    if state.failed:
        for table, version in state.before.items():
            if version is not None:
                lake.restore(table, version)
        state.report.raise_for_critical()


def _recorded(path: str) -> dict:
    return RunManifest.read(path).extra


def built_cohorts(lake) -> dict[str, dict]:
    """Cohorts built in this lake and the quality parameters their build recorded."""
    found = {}
    for cohort, path in layout.build_manifests(lake.root).items():
        extra = _recorded(path)
        if COHORT_GATE_INPUTS in extra:
            found[cohort] = extra[COHORT_GATE_INPUTS]
    return found


def matched_cohorts(lake) -> dict[str, float]:
    """Cohorts matched in this lake and the SMD threshold their match step recorded."""
    found = {}
    for cohort, path in layout.match_manifests(lake.root).items():
        matching = _recorded(path).get(MATCHED_GATE_INPUTS) or {}
        if matching.get("smd_threshold") is not None:
            found[cohort] = float(matching["smd_threshold"])
    return found


def validate_lake(lake, names: list[str] | None = None, progress=None, counts: bool = False) -> list[GateReport]:
    """Every stage's suites against what the lake holds (``cohortlake validate``); no raising."""
    suites = load_suites()
    if names:
        # cohorts.<cohort>.<part> and matched.<cohort>.<part> name one cohort's run of a suite
        bound = [n for n in names if n.startswith("cohorts.") or (n.startswith("matched.") and n.count(".") >= 2)]
        check_names(suites, [n for n in names if n not in bound])
    runner = QualityRunner(lake, progress, counts=counts)
    stages: list[tuple[str, list[Target]]] = []
    layout = ingested_layout(lake)
    if layout:
        stages.append(("bronze", bronze_targets(lake, layout, suites, names)))
    stages.append(("silver", silver_targets(lake, suites, names)))
    cohort_stage = []
    for cohort, quality in built_cohorts(lake).items():
        cohort_stage += cohort_targets(lake, cohort, quality, suites, names)
    stages.append(("cohort", cohort_stage))
    matched_stage = []
    for cohort, threshold in matched_cohorts(lake).items():
        matched_stage += matched_targets(lake, cohort, threshold, suites, names)
    stages.append(("matched", matched_stage))
    reports = [runner.validate(stage, targets, gate=False) for stage, targets in stages if targets]
    if not reports:
        raise UserError(f"{lake.root}: no tables to validate" + (f" with suite {', '.join(names)}" if names else "")
                        + "; run `cohortlake ingest` (or `cohortlake demo`) first")
    return reports
