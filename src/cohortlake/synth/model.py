"""The true person model of the synthetic data, shared by every layout.

``build_persons`` gives one row per person with every person-level attribute of the
true model: the index tumor (HCC or another cancer) and, for some, a second primary;
the liver and comorbidity profile; Medicare enrollment month by month; sorafenib
treatment (confounding by indication) with its refills, second-line TKI and ICI
starts; survival from an exponential proportional-hazards model whose hazard the
sorafenib hazard ratio multiplies from the first fill on; and the person-level draws
of the structural dirt and of the timing anomalies. The constants here are the truth
``synth.truth`` writes to truth.json.

Every column is a Spark SQL expression over ``spark.range(patients)`` with draws seeded
per (seed, person, stream, index) via ``synth.random``: no Python per row, nothing
patient-sized on the driver (the SQL helpers are in ``synth.sql``).

The model runs on a ``Calendar``: SEER-Medicare's (``SEER_CALENDAR``, the richer
layout the model was made for) or a layout's own. ``month_status``, ``covered``,
``mbsf_row`` and ``person_years`` read a person's enrollment as the MBSF (or the
DE-SynPUF beneficiary summary) shows it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

from pyspark.sql import DataFrame

from cohortlake.synth.codes import (
    BACKGROUND_DX, CONDITION_NAMES, CONDITIONS, HCC_DX, HCC_HISTOLOGY, HCC_SITE, HCC_STAGES, ICI, NCI_CONDITIONS,
    NO_PART_D_VALUES, OTHER_STAGES, PART_D_CONTRACTS, SITES, THERAPY_BY_STAGE, THERAPY_DAYS, TKI,
)
from cohortlake.synth.random import RandomSource, Sql, choice, indices, lit, pick, uniform_int
from cohortlake.synth.sql import add_days, case, month_index, stage, str_array


# --------------------------------------------------------------------------- calendar
@dataclass(frozen=True)
class Calendar:
    """Data years of a layout and how diagnosis years are spread over them."""

    first_year: int
    last_year: int
    dx_year_weights: tuple[tuple[int, float], ...]

    @property
    def study_end(self) -> date:
        return date(self.last_year, 12, 31)

    @property
    def study_end_sql(self) -> Sql:
        return Sql(f"DATE'{self.study_end.isoformat()}'")


SEER_CALENDAR = Calendar(
    2006, 2013,
    ((2006, 0.06), (2007, 0.07), (2008, 0.19), (2009, 0.19), (2010, 0.19), (2011, 0.19),
     (2012, 0.06), (2013, 0.05)),
)


# --------------------------------------------------------------------------- true model
MEDIAN_DAYS = {  # untreated median survival at the reference covariates (age 75, no flags)
    "hcc": {"1": 760, "2": 120, "4": 75, "9": 180},
    "other": {"0": 5000, "1": 3600, "2": 1800, "4": 365, "8": 2500, "9": 1100},
}
BASELINE_HAZARD = {g: {s: math.log(2) / d for s, d in v.items()} for g, v in MEDIAN_DAYS.items()}
SURVIVAL_LOG_HR = {"age_per_10_years": 0.15, "ascites": 0.40, "hepatic_encephalopathy": 0.50,
                   "comorbidity_count": 0.10}
AGE_CENTRE = 75.0
SORAFENIB_HR = 0.80
TREATMENT_INTERCEPT = {"1": -2.5, "2": -0.5, "4": 0.5, "9": -2.0}
TREATMENT_COEF = {"age_per_10_years": -0.4, "ascites": -0.7, "hepatic_encephalopathy": -0.8, "dual": -0.5}
SORAFENIB_FILLS = {"extra_fills_geometric_p": 0.22, "max_fills": 15,
                   "days_supply": [(30, 0.8), (28, 0.1), (60, 0.1)],
                   "long_gap_probability": 0.12, "long_gap_days": [31, 75], "refill_gap_days": [-3, 10]}
SECOND_LINE = {"tki_probability": 0.20, "tki_start_days_after_era": [1, 60], "ici_probability": 0.55,
               "ici_first_days_after_tki": [0, 30]}
STALE_DEATH_PER_DIRTY_RATE = 10.0  # stale MBSF death dates for 10 x dirty_rate of decedents

# Timing anomalies of real deliveries. They come from how claims are posted and how
# deaths and enrollment are recorded, not from damaged fields, so unlike the dirt their
# rates do not scale with dirty_rate: every run has them, at the default rate too.
# Deaths in scope for post-death claims are those the MBSF dates exactly (so a reader
# can see the claim is after the death).
# auto-refills and late-posted pharmacy claims reach a small share of decedents' PDE
POST_DEATH_FILL_SHARE = 0.02
# each chronic drug such a decedent was on is refilled after the death with this chance
POST_DEATH_REFILL_PER_DRUG = 0.6
# physician, lab and DME services billed with a date after death: rarer than refills
POST_DEATH_CLAIM_SHARE = 0.015
# specialty pharmacies ship an oral oncolytic already ordered: a first sorafenib (or
# second-line TKI) fill after death, for this share of persons planned for it who died
# before their first fill (the planned fill was in process when they died). Rare: HCC kills
# many persons before a planned start, and 0.15 made 1 in 11 second-line TKI starts in a
# 100,000-person set fall after death, far more than real deliveries show.
POST_DEATH_FIRST_FILL_SHARE = 0.04
# of those first fills, dated on the day of death itself (dispensed, then the person died)
FIRST_FILL_ON_DEATH_DAY_SHARE = 0.25
POST_DEATH_DAYS = (1, 30)  # a late claim or fill is dated this many days after death
# A first sorafenib fill on the study's last day (alive, covered): a boundary case every
# builder meets, deliberately over-represented (a realistic daily start rate puts none
# there in a few thousand persons). Persons planned to start in the study's last 30 days
# or after it are few (about 1 in 1000); this share of them starts on the last day,
# about 1 in 1500 persons, so the 3000-person test set has one
STUDY_END_FIRST_FILL_WINDOW_DAYS = 30
STUDY_END_FIRST_FILL_SHARE = 0.7

PERSONS_PER_PARTITION = 50_000
# The persons are split over the cores (Spark's default parallelism) even when fewer than
# PERSONS_PER_PARTITION, as long as each task keeps this many: a single task left the other
# cores idle through the three checkpoints of the model (persons, claims, fills), while on
# a few hundred persons a task's overhead is more than its work.
# Measured on 2 cores (default parallelism 4), three warm runs of each in one process,
# alternated: 20,000 persons 41.3 s in one partition against 36.7 s in two (two against
# four: 36.0 s and 33.1 s); 1,500 persons 26.9 s against 24.0 s in two; 300 persons
# 18.5 s against 19.9 s. A fresh process gains nothing, its other core busy with the
# JIT's compilers (the demo's synth of 20,000 persons 32.4 and 34.0 s against 33.9 and
# 31.0 s); a session that generates again (tests, benchmarks) does. The files are the
# same bytes whatever the partitioning (test_synth).
MIN_PERSONS_PER_TASK = 750

# Which persons a delivery holds, as the share whose index tumor is in the liver. NCI
# ships SEER-Medicare by cancer site: a study of liver cancer asks for the liver cancer
# file, so every person in it has a liver tumor (some also another cancer, which may be
# the earlier one). "all" is a mixed file of five sites, a third of them liver.
CANCER_SITE_FILES = {"all": 0.35, "liver": 1.0}


def source_partitions_for(patients: int, parallelism: int = 1) -> int:
    """Spark partitions of the person table: at most PERSONS_PER_PARTITION persons each, and
    at least one per core (``parallelism``) while each keeps MIN_PERSONS_PER_TASK persons."""
    by_size = math.ceil(patients / PERSONS_PER_PARTITION)
    by_cores = min(max(1, parallelism), patients // MIN_PERSONS_PER_TASK)
    return max(1, by_size, by_cores)


# --------------------------------------------------------------------------- persons
def build_persons(spark, patients: int, seed: int, calendar: Calendar, dirty_rate: float,
                  sorafenib_hr: float = SORAFENIB_HR, source_partitions: int | None = None,
                  cancer_site: str = "all") -> DataFrame:
    """One row per person with every person-level attribute of the true model (column ``id``).

    ``cancer_site`` names the file (``CANCER_SITE_FILES``). A person's other draws do not
    depend on it: with the same seed, a person with a liver tumor in the mixed file is the
    same person, with the same claims, in the liver cancer file."""
    rng = RandomSource(seed, "id")
    u = rng.uniform
    first_idx = calendar.first_year * 12
    last_idx = calendar.last_year * 12 + 11
    end = calendar.study_end_sql
    p = spark.range(0, patients, 1, source_partitions or source_partitions_for(
        patients, spark.sparkContext.defaultParallelism))

    p = stage(p, {
        "is_hcc": f"{u('hcc')} < {CANCER_SITE_FILES[cancer_site]!r}D",
        "other_site": rng.choice("site", [("lung", 0.30), ("colon", 0.25), ("prostate", 0.25), ("breast", 0.20)]),
        "dx_year": f"CAST({rng.choice('dx_year', list(calendar.dx_year_weights))} AS INT)",
        "dx_month": rng.uniform_int("dx_month", 1, 12),
        "race": rng.choice("race", [("1", 0.70), ("2", 0.10), ("3", 0.03), ("4", 0.09), ("5", 0.06),
                                    ("6", 0.01), ("0", 0.01)]),
        "report_src": rng.choice("report_src", [("1", 0.96), ("2", 0.01), ("3", 0.01), ("6", 0.01), ("7", 0.01)]),
        "month_unknown": f"{u('month_unknown')} < 0.02D",
        "age_group": rng.choice("age_group", [("young", 0.12), ("near66", 0.04), ("old", 0.84)]),
        "u_age": u("age"), "u_topo": u("topography"), "u_hist": u("histology"), "u_stage": u("stage"),
        "u_sex": u("sex"),
        "dual": f"{u('dual')} < 0.20D",
        "dual_code": rng.choice("dual_code", [("02", 0.3), ("08", 0.3), ("01", 0.1), ("03", 0.1), ("04", 0.05),
                                              ("05", 0.05), ("06", 0.05), ("07", 0.05)]),
        "nondual_code": rng.choice("nondual_code", [("00", 0.97), ("09", 0.01), ("99", 0.01), ("NA", 0.01)]),
        "rds": f"{u('rds')} < 0.03D",
        "rds_contract": f"CASE WHEN {u('rds_contract')} < 0.5D THEN 'E0002' ELSE 'N' END",
        "has_partd_draw": f"{u('partd')} < 0.72D",
        "contract": rng.pick("contract", PART_D_CONTRACTS),
        "nopd_value": rng.choice("nopd_value", NO_PART_D_VALUES),
        "partd_late": f"{u('partd_late')} < 0.15D",
        "hmo_kind": rng.choice("hmo_kind", [("none", 0.85), ("hmo", 0.12), ("ffs_demo", 0.03)]),
        "hmo_value_draw": rng.choice("hmo_value", [("1", 0.4), ("2", 0.2), ("C", 0.3), ("A", 0.1)]),
        "parta_only": f"{u('parta_only')} < 0.05D",
        "gap": f"{u('gap')} < 0.04D",
        # single-month gaps, often at months -12 and +2 (the edges of the study's window)
        "gap_offset": rng.choice("gap_offset", [(-13, 0.10), (-12, 0.25), (-6, 0.10), (0, 0.10), (1, 0.10),
                                                (2, 0.25), (3, 0.10)]),
        "death_where": rng.choice("death_where", [("both", 0.95), ("seer_only", 0.03), ("mbsf_only", 0.02)]),
        "no_mbsf": f"{u('no_mbsf')} < 0.005D",
    })
    p = stage(p, {
        "site_group": "CASE WHEN is_hcc THEN 'hcc' ELSE other_site END",
        "dx_date": "make_date(dx_year, dx_month, 15)",
        "dx_idx": "dx_year * 12 + dx_month - 1",
        "dco": "report_src IN ('6', '7')",
        "has_partd": "has_partd_draw AND NOT rds",
    })
    p_male = case("site_group", {"hcc": 0.72, "lung": 0.5, "colon": 0.48, "prostate": 1.0, "breast": 0.01})
    topo = " ".join(f"WHEN site_group = {lit(n)} THEN {pick('u_topo', t)}" for n, (t, _h, _c) in SITES.items())
    hist = " ".join(f"WHEN site_group = {lit(n)} THEN {choice('u_hist', h)}" for n, (_t, h, _c) in SITES.items())
    # 12% aged 60-65 (they fail the age rule); 4% turn 66 within 25 days of diagnosis
    age_years = "CASE WHEN age_group = 'young' THEN 60.0D + 6.0D * u_age ELSE 66.0D + 29.0D * power(u_age, 1.6D) END"
    p = stage(p, {
        "sex": f"CASE WHEN u_sex < {p_male} THEN '1' ELSE '2' END",
        "primary_site": f"CASE WHEN is_hcc THEN {lit(HCC_SITE)} {topo} END",
        "histology": f"CASE WHEN is_hcc THEN {choice('u_hist', HCC_HISTOLOGY)} {hist} END",
        "stage": f"CASE WHEN is_hcc THEN {choice('u_stage', HCC_STAGES)} ELSE {choice('u_stage', OTHER_STAGES)} END",
        "cancer_dx": case("site_group", {"hcc": HCC_DX, **{n: c for n, (_t, _h, c) in SITES.items()}}),
        "birth_date": f"CASE WHEN age_group = 'near66' "
                      f"THEN {add_days('add_months(dx_date, -792)', rng.uniform_int('near66', -25, 25))} "
                      f"ELSE {add_days('dx_date', f'-floor(({age_years}) * 365.25D)')} END",
        "partd_start_idx": f"CASE WHEN partd_late THEN dx_idx + {rng.uniform_int('partd_start', -24, 4)} "
                           f"ELSE {first_idx} END",
        "hmo_value": "CASE WHEN hmo_kind = 'hmo' THEN hmo_value_draw WHEN hmo_kind = 'ffs_demo' THEN '4' END",
        "hmo_start": f"dx_idx + {rng.uniform_int('hmo_start', -40, 10)}",
        "hmo_len": rng.uniform_int("hmo_len", 2, 60),
        "parta_start": f"CASE WHEN parta_only THEN dx_idx + {rng.uniform_int('parta_start', -30, 6)} END",
        "parta_len": rng.uniform_int("parta_len", 1, 18),
        "gap_idx": "CASE WHEN gap THEN dx_idx + gap_offset END",
    })
    p = stage(p, {
        "behavior": f"CASE WHEN is_hcc THEN (CASE WHEN {u('behavior')} < 0.02D THEN '2' ELSE '3' END) "
                    "WHEN stage = '0' THEN '2' ELSE '3' END",
        "age": "datediff(dx_date, birth_date) / 365.25D",
        "f_cirrhosis": f"{u('condition', 0)} < "
                       f"CASE WHEN is_hcc THEN {CONDITIONS[0][4]!r}D ELSE {CONDITIONS[0][3]!r}D END",
    })
    flags = {}
    for i, (name, _kind, _codes, p_other, p_hcc, p_cirr) in enumerate(CONDITIONS[1:], start=1):
        prob = (f"(CASE WHEN is_hcc THEN {p_hcc!r}D ELSE {p_other!r}D END"
                f" + CASE WHEN f_cirrhosis THEN {p_cirr!r}D ELSE 0.0D END)")
        flags[f"f_{name}"] = f"{u('condition', i)} < {prob}"
    p = stage(p, flags)
    cond_codes = ", ".join(f"CASE WHEN f_{name} THEN {pick(u('pool_code', i), codes)} END"
                           for i, (name, _k, codes, *_r) in enumerate(CONDITIONS))
    flag_array = ", ".join(f"f_{n}" for n in CONDITION_NAMES)
    p = stage(p, {
        "comorbidity_count": " + ".join(f"CAST(f_{n} AS INT)" for n in NCI_CONDITIONS),
        "active_conditions": f"filter(sequence(0, {len(CONDITIONS) - 1}), "
                             f"xc -> element_at(array({flag_array}), xc + 1))",
        # the codes a person's claims may carry as secondary diagnoses
        "pool": f"concat({str_array(BACKGROUND_DX)}, array(cancer_dx), array_compact(array({cond_codes})))",
    })

    # sorafenib treatment model (confounding by indication) and survival
    c = TREATMENT_COEF
    logit = (f"({case('stage', TREATMENT_INTERCEPT, -9.0)}"
             f" + {c['age_per_10_years']!r}D * (age - {AGE_CENTRE!r}D) / 10.0D"
             f" + {c['ascites']!r}D * CAST(f_ascites AS DOUBLE)"
             f" + {c['hepatic_encephalopathy']!r}D * CAST(f_hepatic_encephalopathy AS DOUBLE)"
             f" + {c['dual']!r}D * CAST(dual AS DOUBLE))")
    b = SURVIVAL_LOG_HR
    lp = (f"({b['age_per_10_years']!r}D * (age - {AGE_CENTRE!r}D) / 10.0D"
          f" + {b['ascites']!r}D * CAST(f_ascites AS DOUBLE)"
          f" + {b['hepatic_encephalopathy']!r}D * CAST(f_hepatic_encephalopathy AS DOUBLE)"
          f" + {b['comorbidity_count']!r}D * CAST(comorbidity_count AS DOUBLE))")
    baseline = (f"CASE WHEN is_hcc THEN {case('stage', BASELINE_HAZARD['hcc'])} "
                f"ELSE {case('stage', BASELINE_HAZARD['other'])} END")
    p = stage(p, {
        "treat_prob": f"CASE WHEN is_hcc AND NOT dco AND has_partd AND partd_start_idx <= dx_idx "
                      f"THEN 1.0D / (1.0D + exp(-{logit})) ELSE 0.0D END",
        "first_fill_raw": f"CAST(floor(121.0D * power({u('first_fill')}, 1.5D)) AS INT)",
        "t_untreated": f"{rng.exponential('death')} / (({baseline}) * exp({lp}))",
        "days_to_end": f"datediff({end}, dx_date)",
    })
    p = stage(p, {"planned": f"{u('treat')} < treat_prob"})
    # a planned start at or after the study's end moves to its last day for some persons
    # alive then (untreated time beyond it, so also after the hazard ratio applies) and
    # covered in its last month
    at_end = (f"planned AND first_fill_raw >= days_to_end - {STUDY_END_FIRST_FILL_WINDOW_DAYS} "
              f"AND t_untreated > days_to_end + {float(sorafenib_hr)!r}D "
              f"AND NOT no_mbsf AND {covered(str(last_idx), 'abd', alive='TRUE')} "
              f"AND {u('study_end_fill')} < {STUDY_END_FIRST_FILL_SHARE!r}D")
    p = stage(p, {"first_fill_day": f"CASE WHEN {at_end} THEN days_to_end ELSE first_fill_raw END"})
    # piecewise-exponential inversion: the hazard is multiplied by the HR from the first fill day
    t_days = (f"CASE WHEN dco THEN CAST({rng.uniform_int('dco_death', -14, 14)} AS DOUBLE) "
              f"WHEN planned AND t_untreated > first_fill_day "
              f"THEN first_fill_day + (t_untreated - first_fill_day) / {float(sorafenib_hr)!r}D "
              f"ELSE t_untreated END")
    p = stage(p, {"death_day": f"CAST(floor(least({t_days}, 60000.0D)) AS INT)"})
    p = stage(p, {
        "death_true": add_days("dx_date", "death_day"),
        "treated": f"planned AND death_day > first_fill_day AND {add_days('dx_date', 'first_fill_day')} <= {end}",
    })
    p = stage(p, {
        "death_idx": month_index("death_true"),
        "death_observed": f"death_true <= {end}",
        "obs_end": f"least(death_true, {end})",
        "first_year": f"greatest(dx_year - 2, {calendar.first_year})",
    })
    p = stage(p, {
        "death_date": "CASE WHEN death_observed THEN death_true END",
        "obs_start": "make_date(first_year, 1, 1)",
        "last_year": f"CASE WHEN death_observed THEN year(death_true) ELSE {calendar.last_year} END",
    })
    p = stage(p, {"n_years": "last_year - first_year + 1"})
    stale_p = min(1.0, STALE_DEATH_PER_DIRTY_RATE * dirty_rate)
    p = stage(p, {
        # only interior years go missing, so the hole shows between a person's rows
        "missing_year": f"CASE WHEN {u('missing_year')} < 0.02D AND n_years >= 3 "
                        f"THEN first_year + 1 + {uniform_int(u('missing_which'), 0, 'n_years - 3')} END",
        "stale_death": f"death_observed AND death_where <> 'seer_only' AND n_years >= 2 "
                       f"AND {u('stale_death')} < {stale_p!r}D",
        "stale_death_date": add_days("death_true", f"-{rng.uniform_int('stale_days', 30, 400)}"),
        # second tumor (15%); for HCC persons it is sometimes the earlier one
        "b_first": f"is_hcc AND {u('b_first')} < 0.3D",
        "b_site": f"CASE WHEN sex = '1' "
                  f"THEN {rng.choice('b_site', [('lung', 0.4), ('colon', 0.35), ('prostate', 0.25)])} "
                  f"ELSE {rng.choice('b_site', [('lung', 0.35), ('colon', 0.35), ('breast', 0.30)])} END",
        "b_months": rng.uniform_int("b_months", 6, 60),
    })
    p = stage(p, {
        # the MBSF dates a death exactly (and wins over SEER's month in the mapping) when
        # its death year row exists; persons with a death year before their first MBSF
        # year (a death certificate before the diagnosis month) have none
        "death_in_mbsf": "death_observed AND death_where <> 'seer_only' AND NOT no_mbsf AND n_years >= 1",
        "covered_at_end": f"NOT death_observed AND {mbsf_row(str(calendar.last_year))} "
                          f"AND {covered(str(last_idx), 'abd')}",
    })
    p = stage(p, {
        # a death known only from SEER is recorded as day 15 of its month, as the mapping imputes
        "death_seer_imputed": "CASE WHEN death_observed AND death_where <> 'mbsf_only' AND NOT death_in_mbsf "
                              "THEN make_date(year(death_true), month(death_true), 15) END",
        "late_claims": f"death_in_mbsf AND {u('late_claims')} < {POST_DEATH_CLAIM_SHARE!r}D",
        "late_fills": f"death_in_mbsf AND has_partd AND NOT rds AND partd_start_idx <= death_idx "
                      f"AND {u('late_fills')} < {POST_DEATH_FILL_SHARE!r}D",
    })
    p = stage(p, {"b_idx": f"CASE WHEN b_first THEN greatest(dx_idx - b_months, {first_idx}) "
                           f"ELSE dx_idx + least(b_months, 48) END"})
    p = stage(p, {"b_date": "make_date(CAST(floor(b_idx / 12) AS INT), CAST(pmod(b_idx, 12) + 1 AS INT), 15)"})
    b_topo = " ".join(f"WHEN b_site = {lit(n)} THEN {pick(u('b_topography'), t)}" for n, (t, _h, _c) in SITES.items())
    b_hist = " ".join(f"WHEN b_site = {lit(n)} THEN {choice(u('b_histology'), h)}" for n, (_t, h, _c) in SITES.items())
    p = stage(p, {
        "has_b": f"{u('two_tumors')} < 0.15D AND (b_first OR (b_date <= obs_end AND b_idx <= {last_idx}))",
        "b_topography": f"CASE {b_topo} END",
        "b_histology": f"CASE {b_hist} END",
        "b_stage": rng.choice("b_stage", [s for s in OTHER_STAGES if s[0] != "0"]),
        "b_month_unknown": f"{u('b_month_unknown')} < 0.02D",
    })

    # HCC-directed therapy (mostly localized), dated around the study's [-30, +60] window
    therapy_key = "CASE WHEN stage = '1' THEN '1' WHEN stage IN ('2', '4') THEN 'advanced' ELSE '9' END"
    therapy_type = " ".join(f"WHEN ({therapy_key}) = {lit(k)} THEN {rng.choice('therapy_type', types)}"
                            for k, (_p, types) in THERAPY_BY_STAGE.items())
    therapy_p = case(f"({therapy_key})", {k: v[0] for k, v in THERAPY_BY_STAGE.items()}, 0.0)
    day_kind = "u_therapy_day_kind"
    cuts, total, cumulative = [], sum(w for _, w in THERAPY_DAYS), 0.0
    for d, w in THERAPY_DAYS:
        cumulative += w / total
        cuts.append((d, cumulative))
    day_branches = " ".join(
        f"WHEN {day_kind} < {cut!r}D THEN "
        + (str(d) if isinstance(d, int) else rng.uniform_int("therapy_day", -30, 60) if d == "inside"
           else rng.uniform_int("therapy_day", 62, 180))
        for d, cut in cuts[:-1])
    last = cuts[-1][0]
    last_expr = str(last) if isinstance(last, int) else rng.uniform_int("therapy_day", 62, 180)
    p = stage(p, {"u_therapy_day_kind": u("therapy_day_kind")})
    p = stage(p, {
        "therapy_raw": f"CASE WHEN is_hcc AND NOT dco AND {u('therapy')} < {therapy_p} "
                       f"THEN CASE {therapy_type} END END",
        "therapy_day": f"CASE {day_branches} ELSE {last_expr} END",
    })
    p = stage(p, {"therapy": f"CASE WHEN therapy_day < death_day AND {add_days('dx_date', 'therapy_day')} <= {end} "
                             f"AND {add_days('dx_date', 'therapy_day')} >= obs_start THEN therapy_raw END"})
    p = _sorafenib_course(p, rng, calendar)
    return p.drop(*[c for c in p.columns if c in _INTERMEDIATE or c.startswith("u_")])


# person columns only the model itself needs: dropped before the persons are stored
_INTERMEDIATE = {"other_site", "dx_month", "age_group", "has_partd_draw", "partd_late", "hmo_kind", "hmo_value_draw",
                 "parta_only", "gap", "gap_offset", "site_group", "t_untreated", "treat_prob", "planned", "b_months",
                 "first_fill_raw", "days_to_end", "late_lag",
                 "b_idx", "b_site", "therapy_raw", "sor_n", "sor_all", "era1", "era1_last", "era1_end",
                 "tki_offset", "tki_candidate", "ici_candidate"}


def _sorafenib_course(p: DataFrame, rng: RandomSource, calendar: Calendar) -> DataFrame:
    """Sorafenib fills (array of structs i/day/supply/gap), second-line TKI and ICI starts."""
    end = calendar.study_end_sql
    cfg = SORAFENIB_FILLS
    u = rng.uniform

    def supply(i):
        return f"CAST({rng.choice('sor_supply', cfg['days_supply'], i)} AS INT)"

    def gap(i):
        return (f"(CASE WHEN {u('sor_long_gap', i)} < {cfg['long_gap_probability']!r}D "
                f"THEN {rng.uniform_int('sor_gap', *cfg['long_gap_days'], i)} "
                f"ELSE {rng.uniform_int('sor_gap', *cfg['refill_gap_days'], i)} END)")

    def step(i):
        return f"({supply(i)} + {gap(i)})"

    # day of fill i = first fill day + the (supply + gap) of every fill before it
    day = (f"first_fill_day + aggregate(transform(sequence(0, xi), xj -> {step('xj')}), 0, (acc, xv) -> acc + xv)"
           f" - {step('xi')}")
    fill = f"named_struct('i', xi, 'day', {day}, 'supply', {supply('xi')}, 'gap', {gap('xi')})"
    p = stage(p, {"sor_n": f"1 + {rng.geometric('sor_n', cfg['extra_fills_geometric_p'], max_k=cfg['max_fills'] - 1)}",
                  "prior_sorafenib_day": f"CASE WHEN is_hcc AND {u('prior_sorafenib')} < 0.02D "
                                         f"THEN -{rng.uniform_int('prior_sorafenib_day', 1, 365)} END"})
    p = stage(p, {"sor_all": f"CASE WHEN treated THEN filter(transform(sequence(0, sor_n - 1), xi -> {fill}), "
                             f"xf -> xf.day < death_day AND {add_days('dx_date', 'xf.day')} <= {end}) END"})
    # the first era ends at the first refill gap longer than the study's 30-day grace
    p = stage(p, {"era1_last": f"coalesce(array_min(transform(filter(sor_all, xf -> xf.gap > 30), xf -> xf.i)), "
                               f"{cfg['max_fills']})"})
    p = stage(p, {"era1": "filter(sor_all, xf -> xf.i <= era1_last)"})
    p = stage(p, {"era1_end": "aggregate(era1, -100000, (acc, xf) -> greatest(acc, xf.day + xf.supply - 1))",
                  "u_tki": u("tki"),
                  "tki_offset": rng.uniform_int("tki_day", *SECOND_LINE["tki_start_days_after_era"])})
    p = stage(p, {"tki_candidate": "era1_end + tki_offset",
                  "tki_planned": f"treated AND u_tki < {SECOND_LINE['tki_probability']!r}D",
                  "late_lag": f"CASE WHEN {u('late_first_fill_on_death_day')} < {FIRST_FILL_ON_DEATH_DAY_SHARE!r}D "
                              f"THEN 0 ELSE {rng.uniform_int('late_first_fill_lag', *POST_DEATH_DAYS)} END"})
    # persons planned for a drug who died before its first fill: sometimes it is filled anyway
    late_first = (f"death_in_mbsf AND {u('late_first_fill')} < {POST_DEATH_FIRST_FILL_SHARE!r}D "
                  f"AND {add_days('dx_date', 'death_day + late_lag')} <= {end}")
    p = stage(p, {
        "tki_day": f"CASE WHEN tki_planned AND tki_candidate < death_day "
                   f"AND {add_days('dx_date', 'tki_candidate')} <= {end} THEN tki_candidate END",
        "tki_late_day": f"CASE WHEN tki_planned AND tki_candidate >= death_day AND {late_first} "
                        f"THEN death_day + late_lag END",
        # no sorafenib before the diagnosis either, so this fill is the person's first
        "sor_late_day": f"CASE WHEN planned AND death_day <= first_fill_day AND prior_sorafenib_day IS NULL "
                        f"AND {late_first} THEN death_day + late_lag END",
    })
    p = stage(p, {"ici_candidate": f"tki_day + {rng.uniform_int('ici_day', *SECOND_LINE['ici_first_days_after_tki'])}"})
    return stage(p, {
        # a person moving on to a second-line TKI stops sorafenib after the first era
        "sor_fills": "CASE WHEN tki_day IS NOT NULL THEN era1 ELSE sor_all END",
        "ici_day": f"CASE WHEN tki_day IS NOT NULL AND {u('ici')} < {SECOND_LINE['ici_probability']!r}D "
                   f"AND ici_candidate < death_day AND {add_days('dx_date', 'ici_candidate')} <= {end} "
                   f"THEN ici_candidate END",
        "tki_drug": rng.choice("tki_drug", [(i, t[4]) for i, t in enumerate(TKI)]),
        "tki_gap": rng.uniform_int("tki_gap", 0, 6),
        "tki_n": f"1 + {rng.geometric('tki_n', 0.4, max_k=8)}",
        "ici_drug": rng.choice("ici_drug", [(i, t[3]) for i, t in enumerate(ICI)]),
        "ici_n": f"1 + {rng.geometric('ici_n', 0.3, max_k=9)}",
        "ici_setting": f"CASE WHEN {u('ici_setting')} < 0.5D THEN 'carrier' ELSE 'outpatient' END",
        "sor_branded": f"{u('sor_branded')} < 0.7D",
        "sor_tabs_per_day": f"CASE WHEN {u('sor_tabs')} < 0.8D THEN 4 ELSE 2 END",
    })


# --------------------------------------------------------------------------- month status
def month_status(m: str, alive: str | None = None) -> dict[str, Sql]:
    """Enrollment codes of a person for month index m (year*12 + month-1), as SQL over person columns.

    ``alive``: SQL for "alive in month m" when ``death_idx`` is not known yet.
    """
    m = f"({m})"
    alive = f"({alive or f'{m} <= death_idx'})"
    in_parta = f"(parta_start IS NOT NULL AND {m} >= parta_start AND {m} < parta_start + parta_len)"
    in_hmo = f"(hmo_value IS NOT NULL AND {m} >= hmo_start AND {m} < hmo_start + hmo_len)"
    partd_on = f"(has_partd AND {m} >= partd_start_idx)"
    return {
        "buyin": Sql(f"CASE WHEN NOT {alive} THEN '0' WHEN {m} = gap_idx THEN '0' WHEN {in_parta} THEN '1' "
                     f"WHEN dual THEN 'C' ELSE '3' END"),
        "hmo": Sql(f"CASE WHEN {alive} AND {in_hmo} THEN hmo_value ELSE '0' END"),
        "ptd": Sql(f"CASE WHEN NOT {alive} THEN '0' WHEN rds THEN rds_contract WHEN {partd_on} THEN contract "
                   f"ELSE nopd_value END"),
        "rds": Sql(f"CASE WHEN {alive} AND rds THEN 'Y' ELSE 'N' END"),
        "dual": Sql(f"CASE WHEN NOT {alive} THEN '00' WHEN dual THEN dual_code ELSE nondual_code END"),
        "partd_covered": Sql(f"({alive} AND {partd_on} AND NOT rds)"),
    }


# entitlement codes that cover a Part, as the seer-medicare mapping reads them
PART_CODES = {"a": ("1", "3", "A", "C"), "b": ("2", "3", "B", "C")}


def covered(m: str, parts: str, alive: str | None = None) -> Sql:
    """SQL: the MBSF codes of month m cover every Part in ``parts`` ("a", "b", "d", e.g. "abd").

    Part D counts as covered when a Part D contract holds and no retiree drug subsidy
    (then PDE has the claims). Whether the person has an MBSF row that year is ``mbsf_row``.
    """
    status = month_status(m, alive)
    tests = [f"({status['buyin']} IN ({', '.join(lit(c) for c in PART_CODES[x])}))" if x in PART_CODES
             else f"({status['partd_covered']})" for x in parts]
    return Sql("(" + " AND ".join(tests) + ")")


def mbsf_row(y: str) -> Sql:
    """SQL: the person has an MBSF row for year y (see ``person_years``)."""
    return Sql(f"(NOT no_mbsf AND ({y}) BETWEEN first_year AND last_year "
               f"AND (missing_year IS NULL OR ({y}) <> missing_year))")


# --------------------------------------------------------------------------- enrollment rows
def person_years(p: DataFrame) -> DataFrame:
    """Person x enrollment year rows (missing years and persons without MBSF already removed)."""
    years = p.filter("NOT no_mbsf").selectExpr("*", f"explode({indices('n_years')}) AS yi")
    years = stage(years, {"year": "first_year + yi"})
    return years.filter("missing_year IS NULL OR year <> missing_year")


def mbsf_death_date() -> Sql:
    """The death date an MBSF (or DE-SynPUF summary) row of ``year`` shows, stale ones included."""
    return Sql("CASE WHEN death_observed AND death_where <> 'seer_only' AND year = year(death_true) THEN death_true "
               "WHEN stale_death AND year = first_year THEN stale_death_date END")
