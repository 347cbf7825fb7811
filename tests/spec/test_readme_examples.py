"""cohort_defs/README.md shows every spec case, verbatim, as the example of its rule kind."""

from __future__ import annotations

import re

from spec_runner import case_files, case_id
from sync_readme import COMMAND, README, render


def test_readme_examples_are_the_case_files():
    current = README.read_text(encoding="utf-8")
    assert render(current) == current, f"cohort_defs/README.md and tests/spec differ: run {COMMAND}"


def test_every_case_has_one_block_and_every_block_a_case():
    shown = re.findall(r"<!-- spec: ([\w/]+) -->", README.read_text(encoding="utf-8"))
    cases = [case_id(p) for p in case_files()]
    assert sorted(shown) == sorted(cases), f"run {COMMAND}"


def test_every_rule_kind_has_a_case():
    """Every kind the language offers (the OneOf choices of the model) has a folder of cases."""
    from cohortlake.spec.model import Arm, Covariate, Criterion, FollowupEnd, Index, Outcome, TimeVarying

    groups = {"index": Index, "criteria": Criterion, "arms": Arm, "followup": FollowupEnd, "outcomes": Outcome,
              "time_varying": TimeVarying, "covariates": Covariate}
    have = {tuple(case_id(p).split("/")[:2]) for p in case_files()}
    lacking = [f"{group}/{kind}" for group, model in groups.items() for kind in model.choices
               if (group, kind) not in have]
    assert not lacking, f"no spec case for: {', '.join(lacking)}"
