"""The cohort-definition language as typed, frozen models.

One class per concept of the YAML. Every model forbids unknown keys so a typo is an
error, never a silently ignored rule. Checks that need only one object (a window's
``from`` ≤ ``to``, "exactly one rule per criterion") live here; checks across the
definition (references, unique names) live in ``load.py``. Attribute docstrings become
the JSON Schema descriptions that editors show.

The package splits the language by area; this namespace exports its public names, so
``from cohortlake.spec.model import X`` reads as before:

* ``base``: ``Spec``, names, enums, windows and anchors, ``OneOf``, ``EventSpec``;
* ``codesets``: ``CodeSet`` and the per-system code checks;
* ``criteria``: the index event and the criteria;
* ``exposures``: exposures, regimens and arms;
* ``outcomes``: landmarks, follow-up, outcomes and time-varying events;
* ``covariates``: covariates and expectations;
* ``definition``: ``StudyPeriod`` and ``Definition``.

The vocabularies of the canonical tables (``Coverage``, ``Setting``, ``EventTable``,
``CodeSystem``, ``Sex``, ``Race``, the tumor values and ``SEER_CODES``) live in
``cohortlake.vocabulary``; import them from there.
"""

from __future__ import annotations

from cohortlake.spec.model.base import (  # noqa: F401
    NAME_PATTERN,
    Anchor,
    Boundary,
    CountMode,
    Empty,
    EraChoice,
    EventSpec,
    ExposureEvent,
    ExposurePoint,
    ExposureSource,
    Name,
    NonNegative,
    Occurrence,
    OneOf,
    Spec,
    TumorChoice,
    TumorField,
    Unit,
    Window,
)
from cohortlake.spec.model.codesets import (  # noqa: F401
    CodeSet,
    IncludeRef,
)
from cohortlake.spec.model.criteria import (  # noqa: F401
    AgeCriterion,
    AliveCriterion,
    CoverageRule,
    Criterion,
    DayOffset,
    EventIndex,
    ExposureIndex,
    Index,
    IndexPeriod,
    OccurrenceCriterion,
    RegimenIndex,
    ReportingSourceFilter,
    SequenceNumber,
    TumorCriterion,
    TumorDate,
    TumorIndex,
    WashoutCriterion,
    YearRange,
)
from cohortlake.spec.model.exposures import (  # noqa: F401
    Arm,
    DaysSupply,
    EraDurationArm,
    EraOnAtArm,
    Exposure,
    ExposureStartArm,
    Regimen,
    RegimenArm,
)
from cohortlake.spec.model.outcomes import (  # noqa: F401
    CoverageEnd,
    EndItem,
    ExposureEnd,
    Followup,
    FollowupEnd,
    Landmark,
    Outcome,
    TimeVarying,
)
from cohortlake.spec.model.covariates import (  # noqa: F401
    AgeCovariate,
    CharlsonCovariate,
    ComorbidityIndexCovariate,
    CountCovariate,
    Covariate,
    CoverageFlagCovariate,
    Expectation,
    ExposureDurationCovariate,
    FlagCovariate,
    NciComorbidityCovariate,
    RaceCovariate,
    ScoreCovariate,
    ScoreGroup,
    ScoreTerm,
    TumorFieldCovariate,
    WithoutClaims,
)
from cohortlake.spec.model.definition import Definition, StudyPeriod  # noqa: F401
