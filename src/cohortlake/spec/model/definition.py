"""The definition: the whole YAML file as one frozen model, with its code-set library."""

from __future__ import annotations

import hashlib
import json
from datetime import date

from pydantic import Field, PrivateAttr, model_validator

from cohortlake.spec.codes import CodeEntry, NormalisedCodeSet, normalise_generic_name
from cohortlake.spec.matching import MatchingSettings
from cohortlake.spec.model.base import Name, Spec, _problem
from cohortlake.spec.model.codesets import CodeSet
from cohortlake.spec.model.covariates import Covariate, Expectation
from cohortlake.spec.model.criteria import Criterion, Index
from cohortlake.spec.model.exposures import Arm, Exposure, Regimen
from cohortlake.spec.model.outcomes import Followup, Landmark, Outcome, TimeVarying


# ---------------------------------------------------------------------------------------
# The definition
# ---------------------------------------------------------------------------------------


class StudyPeriod(Spec):
    """Calendar bounds of the study; `end` is study_end for follow-up."""

    start: date
    end: date

    @model_validator(mode="after")
    def _ordered(self) -> StudyPeriod:
        if self.start > self.end:
            raise _problem("range_order", f"start ({self.start}) is after end ({self.end})")
        return self


class Definition(Spec):
    """A cohort definition: code sets, index, ordered criteria (attrition), exposures, arms, landmarks, follow-up, outcomes, covariates."""

    cohort: Name
    """Identifier; the cohort's tables go under cohorts/<cohort>/ in the lake."""
    title: str
    description: str | None = None
    study_period: StudyPeriod
    codesets: dict[Name, CodeSet] = {}
    index: Index
    criteria: tuple[Criterion, ...] = Field(min_length=1)
    """Ordered; each criterion is one attrition step."""
    exposures: dict[Name, Exposure] = {}
    regimens: dict[Name, Regimen] = {}
    arms: tuple[Arm, ...] = ()
    """First matching arm wins; the last is `otherwise: true`. None = one group."""
    landmarks: tuple[Landmark, ...] = ()
    followup: Followup
    outcomes: tuple[Outcome, ...] = ()
    time_varying: tuple[TimeVarying, ...] = ()
    covariates: tuple[Covariate, ...] = ()
    expectations: tuple[Expectation, ...] = ()
    matching: MatchingSettings | None = None
    """Propensity-score estimation, matching or weighting, and balance settings."""

    # Set by load_definition: shared sets reachable through `include` (and the comorbidity
    # conditions), keyed "<file stem>.<set>", and the hash of every file read.
    _library: dict[str, CodeSet] = PrivateAttr(default_factory=dict)
    _sha256: str | None = PrivateAttr(default=None)
    _path: str | None = PrivateAttr(default=None)

    @property
    def sha256(self) -> str:
        """Hash of the definition file's text plus every included file's text."""
        if self._sha256 is None:  # built in code, not from files
            return hashlib.sha256(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()
        return self._sha256

    @property
    def path(self) -> str | None:
        """The file this definition was loaded from."""
        return self._path

    def raw_codeset(self, name: str) -> CodeSet:
        """A set as written: a local name, or "<file>.<set>" from an included file."""
        sets = self._library if "." in name else self.codesets
        if name not in sets:
            raise KeyError(f"no code set '{name}'")
        return sets[name]

    def codeset(self, name: str) -> NormalisedCodeSet:
        """A code set with includes merged and every entry normalised."""
        entries: list[CodeEntry] = []
        generic: list[str] = []
        seen: set[str] = set()

        def add(set_name: str) -> None:
            if set_name in seen:
                return
            seen.add(set_name)
            raw = self.raw_codeset(set_name)
            entries.extend(e for e in raw.entries() if e not in entries)
            generic.extend(g for g in map(normalise_generic_name, raw.generic_name) if g not in generic)
            for included in raw.include:
                add(included)

        add(name)
        top = self.raw_codeset(name)
        # A set that only wraps an include reads best with the included set's description.
        description = top.description or next(
            (self.raw_codeset(ref).description for ref in top.include if self.raw_codeset(ref).description), None
        )
        return NormalisedCodeSet(name, description, tuple(entries), tuple(generic))

    def codesets_in_file(self, stem: str) -> dict[str, NormalisedCodeSet]:
        """Every loaded set of a shared file (e.g. the comorbidity conditions), normalised, by set name."""
        prefix = stem + "."
        return {key[len(prefix):]: self.codeset(key) for key in self._library if key.startswith(prefix)}

    def landmark(self, name: str) -> Landmark:
        """A landmark by name."""
        return next(lm for lm in self.landmarks if lm.name == name)
