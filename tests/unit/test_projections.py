"""A build adds the cohort's covariates in as few projections as their reads allow.

Every DataFrame call is analysed again over the whole plan, so a build adds its columns a
projection at a time (``engine/cohort.py``); a score reads earlier covariates by name and
must come in a projection after theirs. No Spark session is started: the compiled columns
stand in as strings.
"""

from __future__ import annotations

from types import SimpleNamespace

from cohortlake.engine.cohort import _covariate_projections
from cohortlake.engine.rules.covariates import reads_covariates
from cohortlake.spec.model import Covariate


def covariate(name: str, **rule) -> Covariate:
    return Covariate.model_validate({"name": name, **rule})


def score(name: str, *terms: str) -> Covariate:
    return covariate(name, score={"terms": [{"covariate": term, "points": 1} for term in terms]})


def projections(*items: Covariate) -> list[list[str]]:
    definition = SimpleNamespace(covariates=list(items))
    return [list(p) for p in _covariate_projections(definition, {c.name: f"<{c.name}>" for c in items})]


def test_covariates_that_read_none_share_one_projection():
    assert projections(covariate("sex", sex={}), covariate("age", age={}), covariate("race", race={})) == [
        ["sex", "age", "race"]]


def test_a_score_starts_after_the_covariates_it_reads_and_a_score_of_a_score_after_that():
    items = (covariate("sex", sex={}), covariate("age", age={}), score("risk", "sex"),
             covariate("race", race={}), score("risk2", "risk", "age"), score("other", "age"))
    assert projections(*items) == [["sex", "age"], ["risk", "race"], ["risk2", "other"]]
    assert reads_covariates(items[4]) == {"risk", "age"} and reads_covariates(items[0]) == set()


def test_each_projection_reads_only_columns_of_those_before_it():
    items = (covariate("a", sex={}), score("b", "a"), score("c", "b"), covariate("d", age={}), score("e", "a"))
    seen: set[str] = set()
    for projection in projections(*items):
        for name in projection:
            assert reads_covariates(next(c for c in items if c.name == name)) <= seen
        seen |= set(projection)
    assert seen == {"a", "b", "c", "d", "e"}
