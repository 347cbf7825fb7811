"""`cohortlake init NAME`: a first definition, its code-set file and its test patients.

The three files pass `cohortlake check` and `cohortlake assure` as written, so an analyst
starts from something that works and changes one rule at a time.
"""

from __future__ import annotations

import re
from pathlib import Path

from cohortlake.errors import UserError
from cohortlake.spec.model import NAME_PATTERN

DEFINITION = """\
# {name}: a first cohort, written by `cohortlake init`. Edit it one rule at a time:
#   cohortlake check {name}.yaml      every problem, with its line (no Spark, a second)
#   cohortlake explain {name}.yaml    the rules in plain English
#   cohortlake assure {name}.yaml     the test patients in tests/{name}.yaml (needs Java)
#   cohortlake build {name}.yaml --lake ./lakehouse --out ./{name}_out
# What every rule means, exactly: cohort_defs/README.md in the cohortlake sources.
cohort: {name}
title: First diagnosis of chronic liver disease, aged 66 or older
description: >
  Persons whose first claim with a chronic liver disease diagnosis falls in the study
  period, aged 66 or older then, with Parts A and B for the year before; followed from
  that claim to death or the end of the study.
study_period: {{start: 2008-01-01, end: 2013-12-31}}

# Code sets used below. Codes live in codesets/{name}.yaml (shared by every definition in
# this folder); `include` names <file>.<set>.
codesets:
  condition: {{include: [{name}.condition]}}

# The index date: the first diagnosis claim of the condition.
index:
  event: {{codesets: [condition], tables: [diagnosis], occurrence: first}}

# Each criterion is one attrition step, applied in order.
criteria:
  - name: Has a diagnosis of the condition
    index_exists: {{}}
  - name: First diagnosis in 2008-2013
    index_period: {{start: 2008-01-01, end: 2013-12-31}}
  - name: Aged 66 or older at the first diagnosis
    age: {{at: index, min: 66}}
  - name: Parts A and B for the year before
    coverage: {{require: [part_a, part_b], window: {{from: -365, to: 0}}}}

followup:
  start: index
  end: [death, study_end]

outcomes:
  - name: death
    death: {{}}

covariates:
  - name: age
    age: {{at: index}}
  - name: sex
    sex: {{}}
"""

CODESETS = """\
# Code sets of {name}.yaml (include them as {name}.<set>). Codes are quoted text;
# 571.5 is exact, 571.x and 5715* are prefixes, 570-573 a range.
condition:
  description: Chronic liver disease and cirrhosis
  icd9cm: ["571.x"]
  icd10cm: ["K70.x", "K74.x"]
"""

TESTS = """\
# Test patients of {name}.yaml (run: cohortlake assure {name}.yaml).
# `like` a template, `set` replaces whole keys, `add` appends to lists; `expect` is
# {{excluded_at: <criterion name>}} or {{included: true, <cohort column>: <value>, ...}}.
definition: ../{name}.yaml

templates:
  # Passes every rule: born 1940-05-01, a cirrhosis claim on 2010-03-01 (age 69), Parts A
  # and B from 2008; dies 2011-03-01.
  base:
    person: {{birth_date: 1940-05-01, sex: female, race: white}}
    death: 2011-03-01
    enrollment: [{{coverage: [part_a, part_b], start: 2008-01-01, end: 2013-12-31}}]
    diagnoses: [{{date: 2010-03-01, code: "571.5"}}]

patients:
  - id: included
    description: Passes every rule; followed from the claim to death (2010-03-01 to 2011-03-01 = 365 days)
    like: base
    expect: {{included: true, index_date: 2010-03-01, followup_start: 2010-03-01, followup_end: 2011-03-01,
             event: 1, time_days: 365, age: 69, sex: female}}
  - id: no_diagnosis
    description: No claim of the condition, so no index date
    like: base
    set: {{diagnoses: [{{date: 2010-03-01, code: "250.00"}}]}}
    expect: {{excluded_at: Has a diagnosis of the condition}}
  - id: too_young
    description: 65 at the claim
    like: base
    set: {{person: {{birth_date: 1944-05-01, sex: female, race: white}}}}
    expect: {{excluded_at: Aged 66 or older at the first diagnosis}}
  - id: part_b_starts_late
    description: Part B only from 2009-06-01, inside the year before the claim
    like: base
    set:
      enrollment:
        - {{coverage: part_a, start: 2008-01-01, end: 2013-12-31}}
        - {{coverage: part_b, start: 2009-06-01, end: 2013-12-31}}
    expect: {{excluded_at: Parts A and B for the year before}}
  - id: alive_at_study_end
    description: No death; censored at the study end 2013-12-31
    like: base
    set: {{death: null}}
    expect: {{included: true, event: 0, followup_end: 2013-12-31, time_days: 1401}}
"""


def scaffold(name: str, folder: str | Path = ".") -> list[Path]:
    """Write <folder>/<name>.yaml, codesets/<name>.yaml and tests/<name>.yaml; never overwrite."""
    if not re.fullmatch(NAME_PATTERN, name):
        raise UserError(f"'{name}' is not a valid cohort name: use a lower-case letter, then lower-case "
                        "letters, digits or _ (e.g. liver_disease_66)")
    folder = Path(folder)
    files = {
        folder / f"{name}.yaml": DEFINITION,
        folder / "codesets" / f"{name}.yaml": CODESETS,
        folder / "tests" / f"{name}.yaml": TESTS,
    }
    existing = [str(path) for path in files if path.exists()]
    if existing:
        raise UserError(f"{', '.join(existing)} already exist(s); choose another name or folder")
    for path, template in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.format(name=name), encoding="utf-8")
    return list(files)
