"""Every rule kind of the model is handled in every place that must know it.

The model's kinds are the ``choices`` of each ``OneOf`` class (index, criteria, arms,
follow-up ends, outcomes, time-varying covariates, covariates). Each (class, kind) needs
an engine rule (``engine/rules``), an explain text (``spec/explain.py``), a case in the
reference evaluator and a generative strategy; a new kind added to the model fails here
until all four exist. The guard is tested too: removing one kind from any registry makes
it report exactly that kind. Like ehrQL's "all operations seen" check, the generative
strategies must also actually draw every kind. No Spark session is started.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis.errors import NoSuchExample
from hypothesis import strategies as st

import cohortlake.spec.model as model
from cohortlake.engine.rules import RULES
from cohortlake.spec.explain_rules import TEXTS
from cohortlake.spec.model import Definition, OneOf
from reference_evaluator import CASES
from strategies import STRATEGIES, definitions, kinds_in


def _subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out += [sub, *_subclasses(sub)]
    return out


def model_kinds() -> set[tuple[type[OneOf], str]]:
    """Every (OneOf class, kind) of the model."""
    return {(cls, kind) for cls in _subclasses(OneOf) if cls.__module__.startswith(model.__name__)
            for kind in cls.choices}


REGISTRIES = {
    "engine rule": RULES,
    "explain text": TEXTS,
    "reference-evaluator case": CASES,
    "generative strategy": STRATEGIES,
}


def missing(registries: dict[str, dict]) -> dict[str, list[str]]:
    """For each registry, the model's kinds it lacks, as "Class.kind"."""
    kinds = model_kinds()
    return {name: sorted(f"{cls.__name__}.{kind}" for cls, kind in kinds if (cls, kind) not in registry)
            for name, registry in registries.items()}


def test_the_model_has_the_expected_rule_classes():
    names = {cls.__name__ for cls, _ in model_kinds()}
    assert names == {"Index", "Criterion", "Arm", "FollowupEnd", "Outcome", "TimeVarying", "Covariate"}
    assert ((model.FollowupEnd, "death") in model_kinds()) and ((model.FollowupEnd, "study_end") in model_kinds())


def test_every_kind_has_a_rule_a_text_a_reference_case_and_a_strategy():
    assert missing(REGISTRIES) == {name: [] for name in REGISTRIES}


def test_no_registry_holds_a_kind_the_model_does_not_have():
    kinds = model_kinds()
    for name, registry in REGISTRIES.items():
        assert set(registry) <= kinds, name


@pytest.mark.parametrize("registry", list(REGISTRIES))
def test_the_guard_reports_exactly_a_removed_kind(registry):
    for cls, kind in sorted(model_kinds(), key=lambda k: (k[0].__name__, k[1])):
        without = {key: value for key, value in REGISTRIES[registry].items() if key != (cls, kind)}
        report = missing({**REGISTRIES, registry: without})
        assert report == {name: ([f"{cls.__name__}.{kind}"] if name == registry else []) for name in REGISTRIES}


def test_the_generative_strategies_draw_every_kind():
    """Drawing definitions (no build) reaches every kind of the model: a hundred draws, then a search for any rarer kind."""
    drawn = st.sampled_from(["criteria", "exposures", "followup", "covariates"]).flatmap(definitions)
    search = settings(max_examples=100, derandomize=True, database=None, deadline=None,
                      phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    seen: set = set()

    @search
    @given(d=drawn)
    def draw(d):
        seen.update(kinds_in(Definition.model_validate(d)))

    draw()
    unseen = []
    for kind in sorted(model_kinds() - seen, key=lambda k: (k[0].__name__, k[1])):
        try:
            find(drawn, lambda d, kind=kind: kind in kinds_in(Definition.model_validate(d)),
                 settings=settings(search, max_examples=2000))
        except NoSuchExample:
            unseen.append(f"{kind[0].__name__}.{kind[1]}")
    assert unseen == []

