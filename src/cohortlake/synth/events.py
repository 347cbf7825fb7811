"""Claim events and Part D fills of the true persons, before any layout lays them out.

``claim_events`` gives every claim a person has, one row per claim: condition and
cancer diagnoses, background visits, HCC-directed therapy, immune checkpoint inhibitor
administrations, and services billed with a date after death; ``finish_events`` adds
secondary diagnoses, lines and procedures. ``fills`` gives every Part D fill:
background chronic drugs, sorafenib, second-line TKIs, and the fills dated after death
(auto-refills, a first fill of a drug ordered before the death). Each layout projects
these into its own claim and drug tables. Every claim and fill carries its ``timing``
bits (``synth.anomalies``).
"""

from __future__ import annotations

from pyspark.sql import DataFrame

from cohortlake.synth.anomalies import TIMING_PERSON_COLS, timing_bits
from cohortlake.synth.codes import (
    BACKGROUND_DX, CARRIER_EM, CARRIER_OTHER, CONDITIONS, DRUGS, HCC_DX, ICI, INPATIENT_PROCS, OUTPATIENT_LINES,
    OUTPATIENT_PROCS, SORAFENIB_BRANDED, SORAFENIB_OTHER, THERAPY_ROUTES, TKI,
)
from cohortlake.synth.model import POST_DEATH_DAYS, POST_DEATH_REFILL_PER_DRUG, Calendar
from cohortlake.synth.random import RandomSource, Sql, choice, indices, lit, uniform_int
from cohortlake.synth.sql import add_days, month_index, stage, str_array
from cohortlake.vocabulary import Setting


# --------------------------------------------------------------------------- claim events
EVENT_PERSON_COLS = ["id", "pid", "dx_date", "obs_start", "obs_end", "pool", "cancer_dx"]
SRC_CONDITION, SRC_CANCER, SRC_BACKGROUND, SRC_THERAPY, SRC_ICI, SRC_AFTER_DEATH = 1, 2, 3, 4, 5, 6
LINE_TYPE = "ARRAY<STRUCT<hcpcs: STRING, rev: STRING, units: STRING>>"
PROC_TYPE = "ARRAY<STRUCT<code: STRING, shift_days: INT, no_date: BOOLEAN>>"


def _event(df: DataFrame, src: int, k: str, setting: str, clm_date: str, principal: str,
           procs: str = "NULL", lines: str = "NULL", admit_shift: str = "0") -> DataFrame:
    return df.selectExpr(*EVENT_PERSON_COLS, *TIMING_PERSON_COLS, f"{src} AS src", f"CAST({k} AS INT) AS k",
                         f"{setting} AS setting", f"{clm_date} AS clm_date", f"CAST({principal} AS STRING) AS principal",
                         f"CAST({procs} AS {PROC_TYPE}) AS procs_given", f"CAST({lines} AS {LINE_TYPE}) AS lines_given",
                         f"CAST({admit_shift} AS INT) AS admit_shift")


def _setting(u: str, carrier: float, outpatient: float, inpatient: float) -> Sql:
    return choice(u, [(Setting.carrier, carrier), (Setting.outpatient, outpatient), (Setting.inpatient, inpatient)])


def claim_events(p: DataFrame, seed: int, calendar: Calendar) -> DataFrame:
    """Every claim a person has, one row per claim, before it is laid out in a table.

    Columns: person columns, src/k (claim key within the person), setting (carrier,
    outpatient, inpatient), clm_date, principal, procs_given, lines_given, admit_shift,
    timing (bits: ``timing_bits``); ``finish_events`` adds secondary diagnoses, default
    lines and procedures.
    """
    rng = RandomSource(seed, "id")
    u = rng.uniform
    end = calendar.study_end_sql
    partitions = p.rdd.getNumPartitions()
    base = p.select(*EVENT_PERSON_COLS, *TIMING_PERSON_COLS, "active_conditions", "therapy", "therapy_day", "ici_day",
                    "ici_drug", "ici_n", "ici_setting", "death_day", "late_claims")

    # 1. conditions: the first occurrence falls in months -12..-1 before the diagnosis
    # month ([-350, -15] days from the 15th), later ones anywhere in the year around it
    cond = base.selectExpr("*", "explode(active_conditions) AS ci")
    cond = cond.selectExpr("*", f"explode(sequence(0, {rng.poisson('cond_n', 0.9, 'ci', max_k=4)})) AS occ")
    codes = f"element_at(array({', '.join(str_array(c[2]) for c in CONDITIONS)}), ci + 1)"
    day = (f"CASE WHEN occ = 0 THEN {rng.uniform_int('cond_day0', -350, -15, 'ci')} "
           f"ELSE {rng.uniform_int('cond_day', -365, 365, 'ci', 'occ')} END")
    cond = _event(cond, SRC_CONDITION, "ci * 10 + occ", _setting(u("cond_setting", "ci", "occ"), 0.6, 0.3, 0.1),
                  add_days("dx_date", day),
                  f"element_at({codes}, {uniform_int(u('cond_code', 'ci', 'occ'), 1, f'size({codes})')})")

    # 2. the index cancer's own diagnosis code around diagnosis (work-up, follow-up)
    can = base.selectExpr("*", f"explode({indices(rng.uniform_int('cancer_n', 2, 6))}) AS j")
    imaging = (f"CASE WHEN {u('cancer_img_p', 'j')} < 0.5D THEN array(named_struct('hcpcs', "
               f"{rng.pick('cancer_img', ['74177', '74160', '76700', '71250'], 'j')}, 'rev', '0350', 'units', '1')) END")
    can = _event(can, SRC_CANCER, "j", _setting(u("cancer_setting", "j"), 0.6, 0.3, 0.1),
                 add_days("dx_date", rng.uniform_int("cancer_day", -40, 180, "j")), "cancer_dx", lines=imaging)

    # 3. background visits: about 2.5 a year of observation, at least one
    mean = f"(datediff(obs_end, obs_start) * {2.5 / 365.25!r}D)"
    n_bg = f"greatest(1, least(400, round({rng.normal('bg_n', mean=mean, sd=f'sqrt({mean} + 1.0D)')})))"
    bg = base.selectExpr("*", f"explode({indices(n_bg)}) AS j")
    bg_principal = (f"CASE WHEN {u('bg_pool', 'j')} < 0.7D THEN {rng.pick('bg_code', BACKGROUND_DX, 'j')} "
                    f"ELSE element_at(pool, {uniform_int(u('bg_pool_code', 'j'), 1, 'size(pool)')}) END")
    bg = _event(bg, SRC_BACKGROUND, "j", _setting(u("bg_setting", "j"), 0.75, 0.2, 0.05),
                add_days("obs_start", uniform_int(u("bg_day", "j"), 0, "datediff(obs_end, obs_start)")), bg_principal)

    # 4. HCC-directed therapy: one or two claims, each by one of the therapy's routes
    routes = "map(" + ", ".join(
        f"{lit(t)}, array(" + ", ".join(f"named_struct('setting', {lit(s)}, 'kind', {lit(kd)}, 'code', {lit(cd)})"
                                        for s, kd, cd in r) + ")"
        for t, r in THERAPY_ROUTES.items()) + ")"
    th = base.filter("therapy IS NOT NULL")
    n_claims = f"1 + CAST({u('therapy_claims')} < 0.5D AS INT)"
    th = th.selectExpr("*", f"explode({indices(n_claims)}) AS j")
    th = stage(th, {"route_list": f"{routes}[therapy]",
                    "no_date": f"{u('therapy_proc_no_date', 'j')} < 0.10D"})
    th = stage(th, {"route": f"element_at(route_list, {uniform_int(u('therapy_route', 'j'), 1, 'size(route_list)')})"})
    th = _event(
        th, SRC_THERAPY, "j", "route.setting", add_days("dx_date", "therapy_day"),
        f"CASE WHEN route.kind = 'dx' THEN route.code ELSE {lit(HCC_DX)} END",
        procs="CASE WHEN route.kind = 'icd_proc' THEN array(named_struct('code', route.code, 'shift_days', 0, "
              "'no_date', no_date)) END",
        lines="CASE WHEN route.kind = 'hcpcs' THEN array(named_struct('hcpcs', route.code, 'rev', "
              "CASE WHEN route.code = '77412' THEN '0333' ELSE '0360' END, 'units', '1')) END",
        # the stay starts a day or two before the surgery, unless the surgery date is
        # missing: then the admission date (the study's fallback) is the surgery day
        admit_shift=f"CASE WHEN route.kind = 'icd_proc' AND NOT no_date "
                    f"THEN {rng.uniform_int('therapy_admit_shift', 0, 2, 'j')} ELSE 0 END")

    # 5. immune checkpoint inhibitor administrations (second line with a TKI)
    ici = base.filter("ici_day IS NOT NULL").selectExpr("*", f"explode({indices('ici_n')}) AS j")
    ici = stage(ici, {"ici_d": f"ici_day + j * element_at(array({', '.join(str(t[1]) for t in ICI)}), ici_drug + 1)"})
    ici = ici.filter("ici_d < death_day")
    ici = _event(ici, SRC_ICI, "j", "ici_setting", add_days("dx_date", "ici_d"), lit(HCC_DX),
                 lines=f"array(named_struct('hcpcs', element_at({str_array([t[0] for t in ICI])}, ici_drug + 1), "
                       f"'rev', '0636', 'units', element_at({str_array([t[2] for t in ICI])}, ici_drug + 1)))")

    # 6. physician, outpatient and lab services billed with a date after death (one or two)
    n_late = f"1 + CAST({u('late_claim_n')} < 0.3D AS INT)"
    late = base.filter("late_claims").selectExpr("*", f"explode({indices(n_late)}) AS j")
    late = _event(late, SRC_AFTER_DEATH, "j",
                  choice(u("late_claim_setting", "j"), [(Setting.carrier, 0.7), (Setting.outpatient, 0.3)]),
                  add_days("death_true", rng.uniform_int("late_claim_day", *POST_DEATH_DAYS, "j")),
                  f"element_at(pool, {uniform_int(u('late_claim_code', 'j'), 1, 'size(pool)')})")

    events = cond.unionByName(can).unionByName(bg).unionByName(th).unionByName(ici).unionByName(late)
    # back to the person table's partition count: fewer, fuller tasks downstream
    events = events.filter(f"(clm_date >= obs_start AND clm_date <= obs_end) "
                           f"OR (src = {SRC_AFTER_DEATH} AND clm_date <= {end})")
    # a stay's first date is its admission; Part A pays stays, Part B the rest
    events = stage(events, {"first_date": "CASE WHEN setting = 'inpatient' THEN date_sub(clm_date, admit_shift) "
                                          "ELSE clm_date END",
                            "part": "CASE WHEN setting = 'inpatient' THEN 'a' ELSE 'b' END"})
    events = stage(events, {"timing": timing_bits("first_date", "part", end)})
    events = events.drop(*TIMING_PERSON_COLS, "first_date", "part")
    return events.coalesce(partitions)


def finish_events(events: DataFrame, seed: int) -> DataFrame:
    """Add ``dx`` (principal first, then secondary codes), ``line_list``, ``proc_list``, ``los``, ``claim_no``."""
    rng = RandomSource(seed, "id")
    u = rng.uniform
    key = ("src", "k")
    e = stage(events, {"u_ndx": u("n_dx", *key), "u_nlines": u("n_lines", *key), "u_proc": u("has_proc", *key),
                       "los": f"1 + {rng.geometric('los', 0.25, *key, max_k=29)}"})
    n_extra = (f"CASE WHEN setting = 'inpatient' THEN 3 + CAST(floor(22.0D * power(u_ndx, 2.0D)) AS INT) "
               f"WHEN setting = 'outpatient' THEN "
               f"{choice('u_ndx', [(0, 0.3), (1, 0.25), (2, 0.2), (3, 0.1), (5, 0.08), (8, 0.05), (24, 0.02)])} "
               f"ELSE {choice('u_ndx', [(0, 0.4), (1, 0.3), (2, 0.15), (3, 0.1), (11, 0.05)])} END")
    n_lines = (f"CASE WHEN setting = 'carrier' THEN {choice('u_nlines', [(1, 0.55), (2, 0.3), (3, 0.15)])} "
               f"ELSE {choice('u_nlines', [(1, 0.35), (2, 0.3), (3, 0.2), (4, 0.15)])} END")
    n_proc = (f"CASE WHEN setting = 'inpatient' AND u_proc < 0.4D THEN {rng.uniform_int('n_proc', 1, 3, *key)} "
              f"WHEN setting = 'outpatient' AND u_proc < 0.03D THEN {rng.uniform_int('n_proc', 1, 3, *key)} "
              f"ELSE 0 END")
    e = stage(e, {"n_extra": n_extra, "n_lines": n_lines, "n_proc": n_proc})
    extra_code = f"element_at(pool, {uniform_int(u('dx_extra', *key, 'xe'), 1, 'size(pool)')})"
    extras = f"transform({indices('n_extra')}, xe -> {extra_code})"
    carrier_line = (f"named_struct('hcpcs', CASE WHEN xl = 0 THEN {rng.choice('em', CARRIER_EM, *key)} "
                    f"ELSE {rng.pick('line_code', CARRIER_OTHER, *key, 'xl')} END, "
                    f"'rev', CAST(NULL AS STRING), 'units', '1')")
    op_pairs = "array(" + ", ".join(
        f"named_struct('hcpcs', CAST({lit(h)} AS STRING), 'rev', {lit(r)}, 'units', '1')" for r, h in OUTPATIENT_LINES) + ")"
    outpatient_line = f"element_at({op_pairs}, {uniform_int(u('rev_line', *key, 'xl'), 1, len(OUTPATIENT_LINES))})"
    default_lines = (f"CAST(CASE WHEN setting = 'carrier' THEN transform({indices('n_lines')}, xl -> {carrier_line}) "
                     f"WHEN setting = 'outpatient' THEN transform({indices('n_lines')}, xl -> {outpatient_line}) END "
                     f"AS {LINE_TYPE})")
    bg_proc = (f"named_struct('code', CASE WHEN setting = 'inpatient' "
               f"THEN {rng.pick('proc_code', INPATIENT_PROCS, *key, 'xp')} "
               f"ELSE {rng.pick('proc_code', OUTPATIENT_PROCS, *key, 'xp')} END, "
               f"'shift_days', CASE WHEN setting = 'inpatient' "
               f"THEN {rng.uniform_int('proc_day', 0, 'los - 1', *key, 'xp')} ELSE 0 END, "
               f"'no_date', {u('proc_no_date', *key, 'xp')} < 0.10D)")
    return events_columns(stage(e, {
        "dx": f"array_distinct(concat(array(principal), {extras}))",
        "line_list": f"coalesce(lines_given, {default_lines})",
        "proc_list": f"coalesce(procs_given, CAST(transform({indices('n_proc')}, xp -> {bg_proc}) AS {PROC_TYPE}))",
        "claim_no": "id * 10000 + src * 1000 + k",
    }))


def events_columns(e: DataFrame) -> DataFrame:
    """What the claim tables read of an event (the person's code pool is no longer needed)."""
    return e.select("id", "pid", "obs_end", "src", "k", "setting", "clm_date", "principal", "admit_shift", "los", "dx",
                    "line_list", "proc_list", "claim_no", "timing")


def claim_id(prefix: int) -> Sql:
    """Claim id text, unique per table: a table digit, then person, source and index."""
    return Sql(f"CAST({prefix * 10**14}L + claim_no AS STRING)")


def stay_dates(e: DataFrame) -> DataFrame:
    """Admission and discharge dates of inpatient events."""
    return stage(e, {"admission": add_days("clm_date", "-admit_shift"),
                     "discharge": f"least({add_days('clm_date', 'los')}, obs_end)"})


# --------------------------------------------------------------------------- fills
FILL_PERSON_COLS = ["id", "pid", "dx_date", "obs_start", "obs_end", "death_day", "late_fills",
                    *TIMING_PERSON_COLS]
FILL_COLS = ["id", "pid", "fill_no", "fill_date", "ndc", "gnn", "bn", "qty", "days", "drug", "timing"]


def _fill(df: DataFrame, src: int, k: str, fill_date: str, ndc: str, gnn: str, bn: str, qty: str,
          days: str, drug: str | None = None) -> DataFrame:
    return df.selectExpr(*FILL_PERSON_COLS, f"CAST({src * 1000} + {k} AS BIGINT) AS fill_no",
                         f"{fill_date} AS fill_date", f"{ndc} AS ndc", f"{gnn} AS gnn", f"{bn} AS bn",
                         f"CAST({qty} AS STRING) AS qty", f"CAST({days} AS STRING) AS days",
                         f"CAST({lit(drug)} AS STRING) AS drug")


def fills(p: DataFrame, seed: int, calendar: Calendar) -> DataFrame:
    """Every Part D fill (background drugs, sorafenib, second-line TKIs), in covered months,
    plus the fills dated after death (auto-refills, first fills of a drug ordered before it).

    Columns ``FILL_COLS``: id, pid, fill_no (unique per person), fill_date, ndc, gnn, bn,
    qty, days, drug ('sorafenib', 'tki' or null), timing (bits: ``timing_bits``).
    """
    rng = RandomSource(seed, "id")
    u = rng.uniform
    end = calendar.study_end_sql
    partitions = p.rdd.getNumPartitions()

    def flag(name):
        return f"CAST(f_{name} AS DOUBLE)"

    use_p = [f"0.30D + 0.15D * {flag('diabetes')} + 0.10D * {flag('congestive_heart_failure')}",
             f"0.02D + 0.65D * {flag('diabetes')}", "0.30D",
             f"0.04D + 0.5D * {flag('congestive_heart_failure')} + 0.35D * {flag('ascites')}",
             f"0.02D + 0.5D * {flag('ascites')} + 0.15D * {flag('cirrhosis')}",
             f"0.01D + 0.7D * {flag('hepatic_encephalopathy')} + 0.05D * {flag('cirrhosis')}"]
    uses = ", ".join(f"{u('drug_use', i)} < ({prob})" for i, prob in enumerate(use_p))

    # background chronic drugs: a few fills each, anywhere in the observed years
    used = f"explode(filter(sequence(0, {len(DRUGS) - 1}), xd -> element_at(array({uses}), xd + 1))) AS d"
    bg = p.selectExpr(*FILL_PERSON_COLS, used)
    bg = bg.selectExpr("*", f"explode(sequence(0, 1 + {rng.poisson('drug_n', 3.0, 'd', max_k=10)})) AS j")
    bg = stage(bg, {"days_supply": f"CAST({rng.choice('drug_days', [(30, 0.6), (90, 0.4)], 'd', 'j')} AS INT)"})

    def drug(i):
        return f"element_at({str_array([x[i] for x in DRUGS])}, d + 1)"

    per_day = f"element_at(array({', '.join(str(x[4]) for x in DRUGS)}), d + 1)"
    bg = _fill(bg, 1, "d * 100 + j",
               add_days("obs_start", uniform_int(u("drug_day", "d", "j"), 0, "datediff(obs_end, obs_start)")),
               drug(1), drug(2), drug(3), f"days_supply * {per_day}", "days_supply")
    # auto-refills after death: some of the chronic drugs of a few decedents
    late_bg = p.filter("late_fills").selectExpr(*FILL_PERSON_COLS, used)
    late_bg = late_bg.filter(f"{u('late_refill', 'd')} < {POST_DEATH_REFILL_PER_DRUG!r}D")
    late_bg = _fill(late_bg, 5, "d", add_days("death_true", rng.uniform_int("late_refill_day", *POST_DEATH_DAYS, "d")),
                    drug(1), drug(2), drug(3), f"30 * {per_day}", "30")

    sor_cols = [*FILL_PERSON_COLS, "sor_branded", "sor_tabs_per_day"]
    ndc = f"CASE WHEN sor_branded THEN {lit(SORAFENIB_BRANDED[0])} ELSE {lit(SORAFENIB_OTHER[0])} END"
    gnn = f"CASE WHEN sor_branded THEN {lit(SORAFENIB_BRANDED[1])} ELSE {lit(SORAFENIB_OTHER[1])} END"
    bn = f"CASE WHEN sor_branded THEN {lit(SORAFENIB_BRANDED[2])} ELSE {lit(SORAFENIB_OTHER[2])} END"
    sor = p.filter("sor_fills IS NOT NULL").selectExpr(*sor_cols, "explode(sor_fills) AS fill")
    sor = _fill(sor, 2, "fill.i", add_days("dx_date", "fill.day"), ndc, gnn, bn, "fill.supply * sor_tabs_per_day",
                "fill.supply", "sorafenib")
    prior = p.filter("prior_sorafenib_day IS NOT NULL").selectExpr(*sor_cols, "prior_sorafenib_day")
    prior = _fill(prior, 3, "0", add_days("dx_date", "prior_sorafenib_day"), ndc, gnn, bn,
                  "30 * sor_tabs_per_day", "30", "sorafenib")
    late_sor = p.filter("sor_late_day IS NOT NULL").selectExpr(*sor_cols, "sor_late_day")
    late_sor = _fill(late_sor, 6, "0", add_days("dx_date", "sor_late_day"), ndc, gnn, bn,
                     "30 * sor_tabs_per_day", "30", "sorafenib")

    tki = p.filter("tki_day IS NOT NULL").selectExpr(*FILL_PERSON_COLS, "tki_day", "tki_drug", "tki_gap",
                                                     f"explode({indices('tki_n')}) AS j")
    tki = stage(tki, {"tki_fill_day": "tki_day + j * (30 + tki_gap)"}).filter("tki_fill_day < death_day")

    def tki_attr(i):
        return f"element_at({str_array([t[i] for t in TKI])}, tki_drug + 1)"

    tki = _fill(tki, 4, "j", add_days("dx_date", "tki_fill_day"), tki_attr(1), tki_attr(2), tki_attr(3), "30", "30",
                "tki")
    late_tki = p.filter("tki_late_day IS NOT NULL").selectExpr(*FILL_PERSON_COLS, "tki_late_day", "tki_drug")
    late_tki = _fill(late_tki, 7, "0", add_days("dx_date", "tki_late_day"), tki_attr(1), tki_attr(2), tki_attr(3),
                     "30", "30", "tki")

    allf = bg.unionByName(sor).unionByName(prior).unionByName(tki)
    m = month_index("fill_date")
    allf = allf.filter(f"has_partd AND NOT rds AND {m} >= partd_start_idx AND {m} <= death_idx "
                       f"AND fill_date >= obs_start AND fill_date <= obs_end")
    # fills after death bypass the coverage rule (they may fall after coverage ended) but
    # not the extract's end
    late = late_bg.unionByName(late_sor).unionByName(late_tki).filter(f"fill_date <= {end}")
    allf = stage(allf.unionByName(late), {"timing": timing_bits("fill_date", "'d'", end)})
    return allf.select(*FILL_COLS).coalesce(partitions)
