"""The spec cases: where they live, how one is read, and how it runs on each evaluator.

A case is one YAML file ``tests/spec/<group>/<kind>/<case>.yaml`` in the test-patient
format of ``cohortlake assure`` (templates, patients, expect), except that its
``definition:`` is a mapping, not a path: top-level keys of a definition that replace
those of the shared base definition ``tests/spec/base.yaml``. Reading a case writes the
merged definition and the patients (the ``definition:`` lines blanked, so every line
number stays) to a scratch folder and reads them with assure's own loader.

Every import of the project's test machinery is in this module, so that a move of
assure or the reference evaluator is repointed here and nowhere else.
"""

from __future__ import annotations

import atexit
import re
import shutil
import tempfile
from pathlib import Path

import yaml

# --- the project's entry points (repoint here when they move) ----------------------------
from cohortlake.assure import AssureFileError, EngineRows, compare, engine_rows, load_suite, patient_rows
from cohortlake.spec import load_definition

import reference_evaluator as reference
from paths import TESTS

SPEC = TESTS / "spec"

BASE = SPEC / "base.yaml"
GROUPS = ("index", "criteria", "arms", "followup", "outcomes", "time_varying", "covariates")
SCRATCH = Path(tempfile.mkdtemp(prefix="cohortlake-spec-"))
atexit.register(shutil.rmtree, SCRATCH, ignore_errors=True)


def case_files() -> list[Path]:
    """Every case file, group by group in GROUPS order, then by kind and name."""
    files = []
    for group in GROUPS:
        files += sorted((SPEC / group).glob("*/*.yaml"))
    return files


def case_id(path: Path) -> str:
    """tests/spec/criteria/age/at_index.yaml → criteria/age/at_index."""
    return path.resolve().relative_to(SPEC).with_suffix("").as_posix()


def _blank_definition(text: str) -> str:
    """The case text with its ``definition:`` mapping replaced by a path, line numbers kept."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("definition:"))
    end = next((i for i in range(start + 1, len(lines)) if re.match(r"[A-Za-z_]", lines[i])), len(lines))
    lines[start:end] = ["definition: definition.yaml"] + [""] * (end - start - 1)
    return "\n".join(lines) + "\n"


def definition_of(path: Path) -> dict:
    """The case's whole definition: the base with the case's top-level keys replacing the base's."""
    base = yaml.safe_load(BASE.read_text(encoding="utf-8"))
    fragment = yaml.safe_load(path.read_text(encoding="utf-8")).get("definition")
    if not isinstance(fragment, dict):
        raise AssureFileError(f"{path}: a spec case needs definition: a mapping of keys over tests/spec/base.yaml")
    return {**base, **fragment}


def load_case(path: Path):
    """Read a case through assure's loader; problems name the case file and its lines."""
    folder = SCRATCH / case_id(path)
    folder.mkdir(parents=True, exist_ok=True)
    definition_path = folder / "definition.yaml"
    definition_path.write_text(yaml.safe_dump(definition_of(path), sort_keys=False), encoding="utf-8")
    tests_path = folder / path.name
    tests_path.write_text(_blank_definition(path.read_text(encoding="utf-8")), encoding="utf-8")
    try:
        suite = load_suite(tests_path, load_definition(definition_path), definition_path=definition_path)
    except AssureFileError as error:
        raise AssureFileError(str(error).replace(str(tests_path), str(path))) from None
    suite.path = str(path)  # reports name the case file, not its scratch copy
    return suite


# --- running ------------------------------------------------------------------------------


def spark_rows(spark, suite) -> EngineRows:
    """The Spark engine over all the case's patients at once (assure's own runner)."""
    return engine_rows(spark, suite)


def reference_rows(suite) -> EngineRows:
    """The reference evaluator over the case's patients, as the rows assure compares.

    Per-episode step flags come from evaluating each patient alone: the step at which the
    attrition's count drops to 0 is where the patient leaves. An index with
    ``occurrence: each`` has several episodes per person, so their flags are read from
    the evaluator's episodes directly.
    """
    d = suite.definition
    cohort, flags, events = [], [], []
    steps: dict[int, str] = {}
    for patient in suite.patients:
        tables = patient_rows(patient)
        result = reference.evaluate(d, tables)
        steps = {k: name for k, name, *_ in result.attrition if k > 0}
        cohort += result.cohort
        events += result.events or []
        if patient.rows is not None:
            flags += _episode_flags(d, tables)
            continue
        remaining = [(k, kept) for k, _, kept, _ in result.attrition if k > 0]
        failed = next((k for k, kept in remaining if kept == 0), None)
        index_date = next((row["index_date"] for row in result.cohort), None)
        flags.append({"person_id": patient.id, "index_date": index_date,
                      **{f"step_{k}": failed is None or k < failed for k, _ in remaining}})
    return EngineRows(cohort, flags, events if d.time_varying else None, steps)


def _episode_flags(d, tables) -> list[dict]:
    evaluator = reference.Evaluator(d)
    out = []
    for pid, rows in reference.group_by_person(tables).items():
        for ep in evaluator.episodes(rows) or [reference.Episode(rows, False, None)]:
            out.append({"person_id": pid, "index_date": ep.index_date,
                        **{f"step_{k}": ok for k, ok in enumerate(evaluator.step_flags(ep), 1)}})
    return out


def check(suite, rows: EngineRows) -> str | None:
    """None when every patient gets what it expects, else assure's report of the failures."""
    report = compare(suite, rows)
    return None if report.passed else report.render()


__all__ = ["BASE", "GROUPS", "SPEC", "case_files", "case_id", "check", "definition_of", "load_case", "reference_rows",
           "spark_rows"]
