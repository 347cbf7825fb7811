"""Checks across a definition's sections: every name refers to something defined, names are
unique, and each rule's settings fit the tables and rules it refers to."""

from __future__ import annotations

import difflib
import re
from types import SimpleNamespace
from typing import Any, Iterator

from pydantic import BaseModel

from cohortlake.spec.comorbidity import CONDITIONS as COMORBIDITY_CONDITIONS
from cohortlake.spec.library import Library, _find_cycle
from cohortlake.spec.messages import Loc, _problem
from cohortlake.spec.model import (
    NAME_PATTERN,
    AgeCovariate,
    AgeCriterion,
    AliveCriterion,
    Arm,
    CodeSet,
    Covariate,
    Definition,
    EventSpec,
    Exposure,
    ExposureEnd,
    ExposureEvent,
    ExposurePoint,
    ExposureSource,
    Followup,
    Landmark,
    OccurrenceCriterion,
    TumorIndex,
    Window,
)
from cohortlake.vocabulary import TABLE_SYSTEMS, EventTable
from cohortlake.yamlfile import LocatedYaml, Problem


# ---------------------------------------------------------------------------------------
# Cross-reference checks
# ---------------------------------------------------------------------------------------


def _walk(value: Any, loc: Loc) -> Iterator[tuple[Loc, Any]]:
    """Every model inside a section, with its YAML path (aliases, list indexes, dict keys)."""
    if isinstance(value, BaseModel):
        yield loc, value
        for name, info in type(value).model_fields.items():
            yield from _walk(getattr(value, name), loc + (info.alias or name,))
    elif isinstance(value, (tuple, list)):
        for i, item in enumerate(value):
            yield from _walk(item, loc + (i,))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, loc + (key,))


def _known(kind: str, name: str, names) -> str:
    return f"unknown {kind} '{name}'; defined: {', '.join(names) or 'none'}"


class _Checker:
    """Cross-section checks over validated sections (None = section invalid: its checks are skipped)."""

    def __init__(self, located: LocatedYaml, d: SimpleNamespace, library: Library, problems: list[Problem]):
        self.located, self.definition, self.library, self.problems = located, d, library, problems

    def add(self, loc: Loc, message: str) -> None:
        self.problems.append(_problem(self.located, loc, message))

    # --- code sets

    def lookup(self, name: str) -> CodeSet | None:
        if "." in name:
            return self.library.sets.get(name)
        return (self.definition.codesets or {}).get(name)

    def systems(self, name: str, seen: frozenset = frozenset()) -> set[str] | None:
        """Coding systems a set holds, includes followed; None if something is unresolved."""
        codeset = self.lookup(name)
        if codeset is None or name in seen:
            return None
        found = set(codeset.systems())
        for ref in codeset.include:
            more = self.systems(ref, seen | {name})
            if more is None:
                return None
            found |= more
        return found

    def check_codesets(self) -> None:
        if self.definition.codesets is None:
            return
        for name, codeset in self.definition.codesets.items():
            for i, ref in enumerate(codeset.include if codeset else ()):
                why = self.library.resolve(ref)
                if why:
                    self.add(("codesets", name, "include", i), why)
        for name in (n for n, c in self.definition.codesets.items() if c is not None):
            cycle = _find_cycle(name, self.lookup)
            if cycle:
                self.add(("codesets", name, "include"), "include cycle: " + " → ".join(cycle))

    def use_codesets(self, loc: Loc, names, tables, purpose: str | None = None) -> None:
        """Referenced sets exist and hold codes some listed table can match."""
        known = self.names("codesets")
        if known is None:
            return
        for i, name in enumerate(names):
            if name not in known:
                self.add(loc + (i,), _known("code set", name, known))
                continue
            systems = self.systems(name)
            if systems is None or not tables:
                continue
            usable = {str(s) for t in tables for s in TABLE_SYSTEMS[t]}
            if not systems & usable:
                where = purpose or "tables " + ", ".join(tables)
                self.add(loc + (i,), f"code set '{name}' has no codes usable for {where}; it needs one of: {', '.join(sorted(usable))}")

    def tumor_refs(self, loc: Loc, index: TumorIndex) -> None:
        for field, system in (("primary_site", "icdo3_site"), ("histology", "icdo3_histology")):
            for i, item in enumerate(getattr(index, field)):
                known = self.names("codesets")
                if known is None or not _is_name(item):
                    continue
                if item not in known:
                    self.add(loc + (field, i), _known("code set", item, known))
                elif (systems := self.systems(item)) is not None and system not in systems:
                    self.add(loc + (field, i), f"code set '{item}' has no {system} entries")

    # --- names of things

    def names(self, section: str) -> list[str] | None:
        """Names defined in a section, read from the YAML itself so a broken entry still counts.

        None (unknown: checks against it are skipped) when the section is broken, or missing while
        an unknown top-level key looks like its misspelling: that one typo is the problem to report,
        not every reference to the section.
        """
        data = self.located.data if isinstance(self.located.data, dict) else {}
        if section not in data:
            unknown = [str(key) for key in data if key not in Definition.model_fields]
            if difflib.get_close_matches(section, unknown, n=1, cutoff=0.75):
                return None
        raw = data.get(section)
        if isinstance(raw, dict):
            return [str(key) for key in raw]
        if isinstance(raw, list):
            return [item["name"] for item in raw if isinstance(item, dict) and isinstance(item.get("name"), str)]
        return None if raw is not None else []

    def ref(self, loc: Loc, kind: str, section: str, name: str) -> None:
        known = self.names(section)
        if known is not None and name not in known:
            self.add(loc, _known(kind, name, known))

    def anchor(self, loc: Loc, value: Any, allow_landmarks: bool = True) -> None:
        """A string anchor is index or a landmark name (ExposurePoint is checked when walked)."""
        if not isinstance(value, str) or value == "index":
            return
        landmarks = self.names("landmarks")
        if not allow_landmarks:
            self.add(loc, f"'{value}' is not allowed; use index or {{exposure: NAME, at: start|end}}")
        elif landmarks is not None and value not in landmarks:
            choices = ", ".join(["index", *landmarks])
            self.add(loc, f"unknown anchor '{value}'; use one of: {choices}, or {{exposure: NAME, at: start|end}}")

    def unique(self, section: str, what: str) -> None:
        raw = self.located.data.get(section) if isinstance(self.located.data, dict) else None
        seen: set[str] = set()
        for i, item in enumerate(raw if isinstance(raw, list) else ()):
            name = item.get("name") if isinstance(item, dict) else None
            if not isinstance(name, str):
                continue
            if name in seen:
                self.add((section, i, "name"), f"{what} name '{name}' is used twice")
            seen.add(name)

    # --- the checks

    def run(self) -> None:
        d = self.definition
        self.check_codesets()
        for section in ("criteria", "covariates", "arms", "outcomes", "landmarks", "time_varying"):
            self.unique(section, section.rstrip("s").replace("_", "-") if section != "criteria" else "criterion")
        for section in Definition.model_fields:
            value = getattr(d, section)
            if value is not None:
                for loc, model in _walk(value, (section,)):
                    self.check_model(loc, model)
        self.check_index_kind()
        self.check_arms()
        self.check_covariate_order()
        self.check_output_columns()
        self.check_matching()

    def check_matching(self) -> None:
        """The matching section names arms and covariates this definition makes."""
        matching = self.definition.matching
        if matching is None:
            return
        covariates = self.definition.covariates
        if covariates is not None and None not in covariates:
            names = [c.name for c in covariates]
            for field in ("ps_covariates", "exact"):
                for i, name in enumerate(getattr(matching, field)):
                    if name not in names:
                        self.add(("matching", field, i), _known("covariate", name, names))
            if not matching.ps_covariates:
                self.add(("matching", "ps_covariates"), "name the covariates of the propensity-score model")
        arms = self.definition.arms
        if arms is not None and None not in arms:
            names = [a.name for a in arms]
            if matching.treatment is None:
                self.add(("matching",), "say which arms are compared: treatment: {arm: <treated arm>, control: <arm>}")
            elif len(names) < 2:
                self.add(("matching", "treatment"), "matching compares two arms; define `arms:` first")
            else:
                for field in ("arm", "control"):
                    value = getattr(matching.treatment, field)
                    if value not in names:
                        self.add(("matching", "treatment", field), _known("arm", value, names))

    def check_output_columns(self) -> None:
        """Covariates, landmarks and outcomes become cohort columns: their names must not clash."""
        fixed = ("person_id", "index_date", "arm", "landmark_date", "first_exposure_date",
                 "followup_start", "followup_end", "event", "time_days")
        owners: dict[str, str] = {column: "a fixed cohort column" for column in fixed}
        landmarks = [lm for lm in (self.definition.landmarks or ()) if lm is not None]
        produced: list[tuple[Loc, str, str]] = []
        for i, covariate in enumerate(self.definition.covariates or ()):
            if covariate is not None:
                produced.append((("covariates", i, "name"), covariate.name, f"covariate '{covariate.name}'"))
        for i, landmark in enumerate(landmarks):
            columns = [f"in_{landmark.name}"] + ([f"{landmark.name}_date"] if len(landmarks) > 1 else [])
            for column in columns:
                produced.append((("landmarks", i, "name"), column, f"landmark '{landmark.name}'"))
        for i, outcome in enumerate(self.definition.outcomes or ()):
            if outcome is not None:
                for suffix in ("date", "event", "time_days"):
                    produced.append((("outcomes", i, "name"), f"{outcome.name}_{suffix}", f"outcome '{outcome.name}'"))
        for loc, column, owner in produced:
            if column in owners and owners[column] != owner:
                self.add(loc, f"{owner} makes cohort column '{column}', already {owners[column]}; rename it")
            owners.setdefault(column, owner)

    def check_model(self, loc: Loc, model: BaseModel) -> None:
        if isinstance(model, EventSpec):
            self.use_codesets(loc + ("codesets",), model.codesets, model.tables)
        elif isinstance(model, OccurrenceCriterion) and model.codesets is not None:
            self.use_codesets(loc + ("codesets",), model.codesets, model.tables)
        elif isinstance(model, Exposure):
            table = EventTable.dispensing if model.source is ExposureSource.dispensing else EventTable.procedure
            purpose = "dispensing (ndc or generic_name)" if table is EventTable.dispensing else "administration (procedure codes)"
            self.use_codesets(loc + ("codesets",), model.codesets, (table,), purpose)
        elif isinstance(model, TumorIndex):
            self.tumor_refs(loc, model)
        elif isinstance(model, ExposurePoint):
            self.ref(loc + ("exposure",), "exposure", "exposures", model.exposure)
        elif isinstance(model, ExposureEvent):
            self.ref(loc + ("name",), "exposure", "exposures", model.name)
        elif isinstance(model, ExposureEnd):
            self.ref(loc + ("exposure",), "exposure", "exposures", model.exposure)
        elif isinstance(model, Window):
            self.anchor(loc + ("relative_to",), model.relative_to)
        elif isinstance(model, Landmark):
            self.anchor(loc + ("from",), model.from_, allow_landmarks=False)
        elif isinstance(model, Followup):
            self.anchor(loc + ("start",), model.start)
        elif isinstance(model, AliveCriterion) and isinstance(model.through, str):
            self.anchor(loc + ("through",), model.through)
        elif isinstance(model, (AgeCriterion, AgeCovariate)):
            self.anchor(loc + ("at",), model.at)
        kind = loc[0]
        if kind == "index" and len(loc) == 2 and loc[1] in ("exposure", "regimen"):
            section = "exposures" if loc[1] == "exposure" else "regimens"
            self.ref(loc + ("name",), loc[1], section, model.name)
        if kind == "regimens" and len(loc) == 2:
            self.ref(loc + ("anchor",), "exposure", "exposures", model.anchor)
            for i, name in enumerate(model.with_):
                self.ref(loc + ("with", i), "exposure", "exposures", name)
                if name == model.anchor:
                    self.add(loc + ("with", i), f"'{name}' is the anchor; `with` lists the other exposures")
        if kind == "arms" and len(loc) == 3:
            arm_rule = loc[2]
            if arm_rule in ("exposure_start", "era_duration", "era_on_at"):
                self.ref(loc + ("exposure",), "exposure", "exposures", model.exposure)
            if arm_rule == "era_on_at":
                self.ref(loc + ("landmark",), "landmark", "landmarks", model.landmark)
            if arm_rule == "regimen":
                self.ref(loc + ("name",), "regimen", "regimens", model.name)
        if kind == "outcomes" and len(loc) == 2:
            for i, name in enumerate(model.competing):
                self.ref(loc + ("competing", i), "outcome", "outcomes", name)
                if name == model.name:
                    self.add(loc + ("competing", i), "an outcome cannot compete with itself")
        if kind == "covariates" and len(loc) == 3 and loc[2] == "exposure_duration":
            self.ref(loc + ("exposure",), "exposure", "exposures", model.exposure)
        if kind == "covariates" and len(loc) == 3 and loc[2] in ("nci_comorbidity", "charlson"):
            self.comorbidity_conditions(loc + ("conditions",), model.conditions)
        if kind == "expectations" and len(loc) == 2:
            self.ref(loc + ("covariate",), "covariate", "covariates", model.covariate)

    def comorbidity_conditions(self, loc: Loc, stem: str) -> None:
        sets = self.library.file(stem)
        if sets is None:
            if stem not in self.library.broken:
                self.add(loc, f"no code-set file {stem}.yaml with the comorbidity conditions; "
                              f"looked in {self.library.searched()}")
            return
        # The indices' formulas name the macro's sixteen conditions: a file must define
        # exactly those, or a condition would silently count nothing.
        missing = [c for c in COMORBIDITY_CONDITIONS if c not in sets]
        extra = [name for name in sets if name not in COMORBIDITY_CONDITIONS]
        if missing or extra:
            what = "; ".join(part for part in (
                f"missing {', '.join(missing)}" if missing else "",
                f"not a condition of the macro: {', '.join(extra)}" if extra else "",
            ) if part)
            self.add(loc, f"{stem}.yaml must define the NCI macro's sixteen conditions "
                          f"({', '.join(COMORBIDITY_CONDITIONS)}): {what}")
        located = self.library.located[stem]
        for name, codeset in sets.items():
            other = sorted(codeset.systems() - set(TABLE_SYSTEMS[EventTable.diagnosis]))
            if other:
                self.problems.append(_problem(located, (name,), f"the macro reads ICD-9-CM and ICD-10-CM diagnosis "
                                                                f"codes only, not {', '.join(other)}"))

    def check_index_kind(self) -> None:
        if self.definition.index is None or self.definition.index.kind == "tumor":
            return
        why = f"the index is an {self.definition.index.kind}, not a tumor"
        for i, criterion in enumerate(self.definition.criteria or ()):
            if criterion is not None and criterion.kind == "tumor":
                self.add(("criteria", i, "tumor"), f"tumor filters need index: tumor; {why}")
        for i, covariate in enumerate(self.definition.covariates or ()):
            if covariate is not None and covariate.kind == "tumor_field":
                self.add(("covariates", i, "tumor_field"), f"tumor fields need index: tumor; {why}")

    def check_arms(self) -> None:
        arms: tuple[Arm, ...] | None = self.definition.arms
        if not arms or None in arms:
            return
        otherwise = [i for i, arm in enumerate(arms) if arm.otherwise]
        if not otherwise:
            self.add(("arms",), "the last arm must be `otherwise: true` (everyone not in an earlier arm)")
        for i in otherwise[1:]:
            self.add(("arms", i, "otherwise"), f"only one arm may be `otherwise`; arm '{arms[otherwise[0]].name}' already is")
        if otherwise and otherwise[0] != len(arms) - 1 and len(otherwise) == 1:
            self.add(("arms", otherwise[0], "otherwise"), "the `otherwise` arm must be the last arm")

    def check_covariate_order(self) -> None:
        covariates: tuple[Covariate, ...] | None = self.definition.covariates
        for i, covariate in enumerate(covariates or ()):
            if covariate is None or covariate.kind != "score" or None in covariates[:i]:
                continue
            earlier = {c.name: c.kind for c in covariates[:i]}
            for j, term in enumerate(covariate.score.terms):
                if term.covariate not in earlier:
                    self.add(("covariates", i, "score", "terms", j, "covariate"),
                             f"'{term.covariate}' must be a covariate listed before this score")
                elif (earlier[term.covariate] in ("sex", "race", "tumor_field")) != (term.equals is not None):
                    self.add(("covariates", i, "score", "terms", j),
                             "use `equals` for a categorical covariate (sex, race, tumor_field) and only for one")

def _is_name(text: str) -> bool:
    return re.fullmatch(NAME_PATTERN, text) is not None
