"""The two comorbidity indices of the NCI's SEER-Medicare macro, as it computes them.

Authority: ``NCI.comorbidity.macro.sas`` (ICD-9 + ICD-10 version), created 9/21/2021,
updated 3/15/2022 "to remove codes E12 and E14 from diabetes"; distributed by the NCI
with SEER-Medicare (healthcaredelivery.cancer.gov, SEER-Medicare "considerations").
The macro flags sixteen conditions (their codes are the shared code-set file
``cohort_defs/codesets/nci_comorbidity.yaml``) and computes, from the flags:

* the **Charlson score**: integer points, where acute and history of MI count once
  together, and diabetes with complications / moderate-severe liver disease replace
  their milder forms;
* the **NCI comorbidity index**: a weighted sum with the macro's regression-derived
  weights, where acute MI and history of MI each add their own weight, and diabetes
  (with or without complications) and liver disease (mild or moderate/severe) are one
  term each.

A term adds its weight when any of ``any_of`` is present and none of ``none_of`` is.
Both the Spark engine and the reference evaluator read these terms; the tests check
them against the macro's formulas, transcribed, over all 2^16 combinations.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

CONDITIONS: tuple[str, ...] = (
    "acute_mi", "history_mi", "chf", "pvd", "cvd", "copd", "dementia", "paralysis", "diabetes",
    "diabetes_comp", "renal_disease", "mild_liver_disease", "liver_disease", "ulcers", "rheum_disease", "aids",
)
"""The macro's sixteen conditions, by its variable names and in its order."""

RULE_OUT_MARGIN_DAYS = 30
"""The macro reads claims from 30 days before to 30 days after the window when it rules
out, and confirms an outpatient/carrier condition by claims more than 30 days apart."""


class ComorbidityIndex(StrEnum):
    """Which of the macro's two indices a covariate computes."""

    nci = "nci"
    charlson = "charlson"


@dataclass(frozen=True)
class Term:
    """``weight`` when any of ``any_of`` is present and none of ``none_of``."""

    weight: float
    any_of: tuple[str, ...]
    none_of: tuple[str, ...] = ()


def _t(weight: float, *any_of: str, unless: tuple[str, ...] = ()) -> Term:
    return Term(weight, any_of, unless)


TERMS: dict[ComorbidityIndex, tuple[Term, ...]] = {
    ComorbidityIndex.charlson: (
        _t(1, "acute_mi", "history_mi"),
        _t(1, "chf"),
        _t(1, "pvd"),
        _t(1, "cvd"),
        _t(1, "copd"),
        _t(1, "dementia"),
        _t(2, "paralysis"),
        _t(1, "diabetes", unless=("diabetes_comp",)),
        _t(2, "diabetes_comp"),
        _t(2, "renal_disease"),
        _t(1, "mild_liver_disease", unless=("liver_disease",)),
        _t(3, "liver_disease"),
        _t(1, "ulcers"),
        _t(1, "rheum_disease"),
        _t(6, "aids"),
    ),
    ComorbidityIndex.nci: (
        _t(0.12624, "acute_mi"),
        _t(0.07999, "history_mi"),
        _t(0.64441, "chf"),
        _t(0.26232, "pvd"),
        _t(0.27868, "cvd"),
        _t(0.52487, "copd"),
        _t(0.72219, "dementia"),
        _t(0.39882, "paralysis"),
        _t(0.29408, "diabetes", "diabetes_comp"),
        _t(0.47010, "renal_disease"),
        _t(0.73803, "mild_liver_disease", "liver_disease"),
        _t(0.07506, "ulcers"),
        _t(0.21905, "rheum_disease"),
        _t(0.58362, "aids"),
    ),
}

DECIMALS = 5
"""The macro's weights have five decimals; sums are rounded to them so that the same
conditions give the same value whatever order a float sum runs in."""


def index_value(index: ComorbidityIndex | str, present: Mapping[str, bool]) -> float:
    """The index of a person whose conditions are flagged in ``present`` (missing = absent)."""
    total = 0.0
    for term in TERMS[ComorbidityIndex(index)]:
        if any(present.get(c, False) for c in term.any_of) and not any(present.get(c, False) for c in term.none_of):
            total += term.weight
    return round(total, DECIMALS)
