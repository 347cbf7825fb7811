"""Timing anomalies of real deliveries: how claims and fills are marked, and their counts.

Besides the dirt, the data has the timing anomalies of real deliveries, at fixed low
rates: fills and claims dated after death (auto-refills, late billing, a first sorafenib
or TKI fill shipped after the person died), SEER-only deaths whose imputed day 15 precedes
claims later that month, claims and fills in months the MBSF does not cover, and first
sorafenib fills on the study's last day. The rates and the person-level draws are in
``synth.model``, the claims and fills they make in ``synth.events``.

Every claim and fill carries ``timing`` bits (``timing_bits``); ``timing_counts`` counts
them in the tables as written into truth.json's ``timing_anomalies`` (meanings:
``TIMING_COUNT_MEANINGS``).
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cohortlake.synth.model import covered, mbsf_row
from cohortlake.synth.random import Sql, lit
from cohortlake.synth.sql import month_index


# what the timing bits of a claim or fill read of its person (deaths, MBSF coverage)
TIMING_PERSON_COLS = ["death_true", "death_in_mbsf", "death_seer_imputed", "no_mbsf", "first_year", "last_year",
                      "missing_year", "death_idx", "gap_idx", "parta_start", "parta_len", "dual", "has_partd",
                      "partd_start_idx", "rds", "covered_at_end"]


# Bits of the ``timing`` column of a claim (event) or fill, set from its date (a claim's
# first date: admission, from-date; a fill's service date); ``timing_counts`` counts them.
AFTER_DEATH = 1        # after a death the MBSF dates exactly
AFTER_SEER_DEATH = 2   # after day 15 of the month of a death known only from SEER
OUTSIDE_COVERAGE = 4   # no MBSF row that year, or the month does not cover the table's Part
ON_DEATH_DAY = 8       # on the day of a death the MBSF dates
ON_STUDY_END = 16      # on the study's last day
COVERED_AT_END = 32    # (the person's) alive and covered by Parts A, B and D in the study's last month


def timing_bits(d: str, parts: str, study_end: Sql) -> Sql:
    """SQL: the ``timing`` bits of a claim or fill dated ``d`` whose table implies coverage ``parts``.

    ``parts`` is SQL giving "a", "b" or "d" (the Part the claim is paid by).
    """
    d = f"({d})"
    m = month_index(d)
    uncovered = (f"NOT coalesce({mbsf_row(f'year({d})')} AND CASE {parts} "
                 + " ".join(f"WHEN {lit(x)} THEN {covered(m, x)}" for x in "abd") + " END, FALSE)")
    bits = [(AFTER_DEATH, f"death_in_mbsf AND {d} > death_true"), (AFTER_SEER_DEATH, f"{d} > death_seer_imputed"),
            (OUTSIDE_COVERAGE, uncovered), (ON_DEATH_DAY, f"death_in_mbsf AND {d} = death_true"),
            (ON_STUDY_END, f"{d} = {study_end}"), (COVERED_AT_END, "covered_at_end")]
    return Sql("(" + " + ".join(f"CASE WHEN {cond} THEN {bit} ELSE 0 END" for bit, cond in bits) + ")")


def timing_columns(drug: str = "CAST(NULL AS STRING)") -> dict[str, str]:
    """Internal columns ``timing_counts`` reads of a claim or fill table (not written)."""
    return {"__id": "id", "__timing": "timing", "__drug": drug}


# What each count under truth.json's "timing_anomalies" means. Rows are counted in the
# files as written: a row with an injected impossible date is left out (its date cannot
# be read), an injected duplicate counts twice. A claim's date is its first date
# (ADMSN_DT, CLM_FROM_DT), a fill's SRVC_DT. The MBSF death is the latest dated
# BENE_DEATH_DT; a SEER-only death is SEER_DOD's month with day 15 (the mapping's rule).
TIMING_COUNT_MEANINGS = {
    "fills_after_death": "persons with a PDE fill dated after their MBSF death date, and those fills",
    "claims_after_death": "persons with a claim dated after their MBSF death date, and those claims by table",
    "first_sorafenib_fill_after_death": "persons whose first sorafenib fill (by NDC or generic name, "
                                        "pre-diagnosis fills included) is after their MBSF death date",
    "first_sorafenib_fill_on_death_day": "persons whose first sorafenib fill is on their MBSF death date",
    "first_tki_fill_after_death": "persons whose first second-line TKI fill (regorafenib, lenvatinib, "
                                  "cabozantinib) is after their MBSF death date",
    "after_seer_imputed_death": "persons whose death is known only from SEER (no MBSF death date) with a claim "
                                "or fill after day 15 of the death month, and those rows by table",
    "outside_mbsf_coverage": "persons with a claim or fill in a month the MBSF does not cover for the table's "
                             "Part (no row that year, or medpar: Part A, nch and outpatient: Part B entitlement, "
                             "pde: a Part D contract without retiree drug subsidy), and those rows by table",
    "first_sorafenib_fill_on_study_end": "persons whose first sorafenib fill is on the study's last day, with no "
                                         "death recorded and Parts A, B and D covered in its last month",
}
SEER_ONLY_TIMING = ("after_seer_imputed_death", "outside_mbsf_coverage")


def timing_counts(tables: dict[str, DataFrame], seer: bool = True) -> dict:
    """The timing anomalies of ``TIMING_COUNT_MEANINGS`` in claim and fill tables as written.

    ``tables``: claim header tables and ``pde`` by name, dirt injected, with the internal
    columns of ``timing_columns``. Only the few rows with a timing bit or a drug of
    interest are read on, grouped per person, then summed: one small Spark job.
    """
    anomaly = AFTER_DEATH | AFTER_SEER_DEATH | OUTSIDE_COVERAGE
    rows = None
    for i, df in enumerate(tables.values()):
        part = df.filter(f"NOT __bad_date AND ((__timing & {anomaly}) <> 0 OR __drug IS NOT NULL)").selectExpr(
            f"{i} AS t", "__id AS id", "__timing AS bits", "__drug AS drug")
        rows = part if rows is None else rows.unionByName(part)

    def has(bit):
        return f"(bits & {bit}) <> 0"

    kinds = {"after_death": AFTER_DEATH, "after_seer": AFTER_SEER_DEATH, "uncovered": OUTSIDE_COVERAGE}
    per_person = [f"count_if(t = {i} AND {has(bit)}) AS `{kind}/{name}`"
                  for kind, bit in kinds.items() for i, name in enumerate(tables)]
    per_person += [
        "count_if(drug = 'sorafenib') AS sor", f"count_if(drug = 'sorafenib' AND {has(AFTER_DEATH)}) AS sor_after",
        f"count_if(drug = 'sorafenib' AND {has(ON_DEATH_DAY)}) AS sor_on_death_day",
        f"count_if(drug = 'sorafenib' AND {has(ON_STUDY_END)}) AS sor_on_end",
        "count_if(drug = 'tki') AS tki", f"count_if(drug = 'tki' AND {has(AFTER_DEATH)}) AS tki_after",
        f"bool_or({has(COVERED_AT_END)}) AS covered_at_end"]
    grouped = rows.groupBy("id").agg(*[F.expr(e) for e in per_person])
    claims = [n for n in tables if n != "pde"]

    def persons(kind, names):
        return f"count_if({' + '.join(f'`{kind}/{n}`' for n in names)} > 0)"

    totals = {f"{kind}/{name}": f"CAST(coalesce(sum(`{kind}/{name}`), 0) AS BIGINT)"
              for kind in kinds for name in tables}
    totals.update({
        "fills_after_death/persons": persons("after_death", ["pde"]),
        "claims_after_death/persons": persons("after_death", claims),
        "after_seer_imputed_death/persons": persons("after_seer", tables),
        "outside_mbsf_coverage/persons": persons("uncovered", tables),
        "first_sorafenib_fill_after_death": "count_if(sor > 0 AND sor_after = sor)",
        "first_sorafenib_fill_on_death_day": "count_if(sor_on_death_day > 0 AND sor_on_death_day + sor_after = sor)",
        "first_tki_fill_after_death": "count_if(tki > 0 AND tki_after = tki)",
        "first_sorafenib_fill_on_study_end": "count_if(sor_on_end > 0 AND sor_on_end = sor AND covered_at_end)",
    })
    row = grouped.selectExpr(*[f"{e} AS `{k}`" for k, e in totals.items()]).collect()[0].asDict()
    n = {k: int(v or 0) for k, v in row.items()}
    out = {
        "fills_after_death": {"persons": n["fills_after_death/persons"], "fills": n["after_death/pde"]},
        "claims_after_death": {"persons": n["claims_after_death/persons"],
                               **{name: n[f"after_death/{name}"] for name in claims}},
        **{k: n[k] for k in ("first_sorafenib_fill_after_death", "first_sorafenib_fill_on_death_day",
                             "first_tki_fill_after_death", "first_sorafenib_fill_on_study_end")},
        "after_seer_imputed_death": {"persons": n["after_seer_imputed_death/persons"],
                                     **{name: n[f"after_seer/{name}"] for name in tables}},
        "outside_mbsf_coverage": {"persons": n["outside_mbsf_coverage/persons"],
                                  **{name: n[f"uncovered/{name}"] for name in tables}},
    }
    return {k: v for k, v in out.items() if seer or k not in SEER_ONLY_TIMING}
