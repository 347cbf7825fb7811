"""The model's part of truth.json: the generating parameters and person-level totals.

``true_parameters`` describes the true model (``synth.model``); ``person_counts`` counts
persons by what the model gave them. Each layout's ``generate`` adds the dirt counted
while writing (``synth.dirt``) and the timing anomalies in its files
(``synth.anomalies``).
"""

from __future__ import annotations

import math

from pyspark.sql import DataFrame

from cohortlake.synth.anomalies import SEER_ONLY_TIMING, TIMING_COUNT_MEANINGS
from cohortlake.synth.codes import CONDITIONS
from cohortlake.synth.model import (
    AGE_CENTRE, BASELINE_HAZARD, FIRST_FILL_ON_DEATH_DAY_SHARE, MEDIAN_DAYS, POST_DEATH_CLAIM_SHARE, POST_DEATH_DAYS,
    POST_DEATH_FILL_SHARE, POST_DEATH_FIRST_FILL_SHARE, POST_DEATH_REFILL_PER_DRUG, SECOND_LINE, SEER_CALENDAR,
    SORAFENIB_FILLS, STALE_DEATH_PER_DIRTY_RATE, STUDY_END_FIRST_FILL_SHARE, STUDY_END_FIRST_FILL_WINDOW_DAYS,
    SURVIVAL_LOG_HR, TREATMENT_COEF, TREATMENT_INTERCEPT, Calendar,
)


def true_parameters(dirty_rate: float, sorafenib_hr: float, calendar: Calendar) -> dict:
    """The generating model's parameters, as written to truth.json."""
    return {
        "study_end": calendar.study_end.isoformat(),
        "data_years": [calendar.first_year, calendar.last_year],
        "survival_model": {
            "form": "exponential proportional hazards from the index diagnosis date (the 15th of the month): "
                    "hazard = baseline_hazard_per_day[site][stage] * exp(lp), times sorafenib_hazard_ratio "
                    "from the first sorafenib fill day on",
            "baseline_hazard_per_day": BASELINE_HAZARD,
            "median_days_at_reference": MEDIAN_DAYS,
            "reference": {"age_years": AGE_CENTRE, "flags": "none", "comorbidity_count": 0},
            "log_hazard_ratios": SURVIVAL_LOG_HR,
            "hcc_distant_vs_regional_log_hr": math.log(MEDIAN_DAYS["hcc"]["2"] / MEDIAN_DAYS["hcc"]["4"]),
            "autopsy_or_death_certificate_only": "death within 14 days of the diagnosis date, untreated",
        },
        "sorafenib_hazard_ratio": sorafenib_hr,
        "treatment_model": {
            "form": "logistic; eligible = HCC index tumor, reporting source not 6/7, Part D (not RDS) in the "
                    "diagnosis month; a person who dies on or before the planned first fill day gets no fill",
            "intercept_by_stage": TREATMENT_INTERCEPT,
            "coefficients": TREATMENT_COEF,
            "covariates": "age_per_10_years = (age - 75) / 10; flags 0/1; dual = dual eligible",
            "first_fill_day": "floor(121 * u**1.5) days after diagnosis (0-120; about 63% by day 60); for a few "
                              "persons the study's last day (timing_anomalies_model)",
            "fills": SORAFENIB_FILLS,
            "branded_ndc_share_of_persons": 0.7,
            "sorafenib_in_year_before_diagnosis_share_of_hcc": 0.02,
            "second_line": SECOND_LINE,
        },
        "condition_prevalence": {name: {"other_cancer": po, "hcc": ph, "added_with_cirrhosis": pc}
                                 for name, _k, _c, po, ph, pc in CONDITIONS},
        "dirty_rate": dirty_rate,
        "structural": {"persons_without_mbsf": 0.005, "persons_missing_one_interior_mbsf_year": 0.02,
                       "stale_death_date_share_of_decedents": min(1.0, STALE_DEATH_PER_DIRTY_RATE * dirty_rate),
                       "death_only_in_seer": 0.03, "death_only_in_mbsf": 0.02},
        "timing_anomalies_model": {
            "note": "real features of deliveries, not dirt: the rates do not depend on dirty_rate",
            "post_death_fill_share_of_decedents_with_part_d": POST_DEATH_FILL_SHARE,
            "post_death_refill_per_chronic_drug": POST_DEATH_REFILL_PER_DRUG,
            "post_death_claim_share_of_decedents": POST_DEATH_CLAIM_SHARE,
            "post_death_claims_per_person": "1, or 2 with probability 0.3; carrier 70%, outpatient 30%",
            "decedents_in_scope": "deaths the MBSF dates (death observed, not SEER-only, with an MBSF row); "
                                  "in DE-SynPUF, read the beneficiary summary for the MBSF throughout",
            "post_death_first_fill_share": POST_DEATH_FIRST_FILL_SHARE,
            "post_death_first_fill_applies_to": "persons planned for sorafenib (no pre-diagnosis fill) or a "
                                                "second-line TKI who died on or before its first fill day",
            "first_fill_on_death_day_share": FIRST_FILL_ON_DEATH_DAY_SHARE,
            "days_after_death": list(POST_DEATH_DAYS),
            "study_end_first_fill_share": STUDY_END_FIRST_FILL_SHARE,
            "study_end_first_fill_applies_to": f"persons planned for sorafenib whose planned first fill is at most "
                                               f"{STUDY_END_FIRST_FILL_WINDOW_DAYS} days before the study end or "
                                               f"after it, alive after it and covered by Parts A, B and D in its "
                                               f"last month: their first fill is on its last day",
            "seer_only_deaths": "recorded as day 15 of the month, so claims later in the month follow the "
                                "recorded death; no extra mechanism",
            "counts": {k: v for k, v in TIMING_COUNT_MEANINGS.items()
                       if calendar is SEER_CALENDAR or k not in SEER_ONLY_TIMING},
        },
    }


def person_counts(p: DataFrame) -> dict:
    """Small person-level totals for truth.json (one aggregate over the cached persons)."""
    qualifying = "is_hcc AND histology BETWEEN '8170' AND '8175' AND behavior = '3'"
    row = p.selectExpr(
        "count(1) AS persons",
        "count_if(is_hcc) AS hcc_persons",
        f"count_if({qualifying} AND stage IN ('2', '4')) AS advanced_hcc_persons",
        "count_if(death_observed) AS deaths_observed",
        "count_if(treated) AS sorafenib_treated",
        "count_if(treated AND first_fill_day <= 60) AS sorafenib_first_fill_by_day_60",
        "count_if(tki_day IS NOT NULL) AS second_line_tki",
        "count_if(ici_day IS NOT NULL) AS second_line_tki_with_ici",
        "count_if(therapy IS NOT NULL) AS hcc_directed_therapy",
        "count_if(no_mbsf) AS persons_without_mbsf",
        "count_if(NOT no_mbsf AND missing_year IS NOT NULL) AS missing_mbsf_years",
        "count_if(NOT no_mbsf AND stale_death) AS stale_death_rows",
    ).collect()[0]
    return {k: int(v) for k, v in row.asDict().items()}
