"""The landmark hand-off: a built cohort → the propensity-score-matched analysis dataset.

``cohortlake match DEF.yaml --lake DIR --out DIR`` reads the cohort table the build wrote
(one row per person, classified into arms at the landmark), fits the definition's
propensity model, matches or weights as its ``matching:`` section says, checks balance,
and writes what statisticians receive:

* ``matched.parquet`` / ``matched.csv`` — one row per person in the analysis (matched
  persons, or everyone when weighting): person id, arm, match id, weight, PS, the dates,
  time from the landmark, event and the covariates. Dates are dates; no index column.
* ``matched_events.parquet`` — the time-varying start/stop rows of those persons, when
  the design has them.
* ``balance.csv``, ``love_plot.png`` and ``data_dictionary.md``.

The same dataset and balance go to the lake (``matched/<cohort>/dataset`` and
``…/balance``) where the ``matched`` quality gate validates them: a matched set without
both arms or a covariate whose SMD after matching exceeds the definition's threshold
stops the pipeline, restores the previous versions and hands nothing off.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from cohortlake.errors import UserError
from cohortlake.matching.balance import BALANCE_COLUMNS, love_plot
from cohortlake.matching.ps import SPARK_THRESHOLD, PsFit, design_matrix, fit_ps_spark
from cohortlake.matching.psmatch import PsMatchReport, run_psmatch
from cohortlake.spec.matching import MatchingSettings, Method, matching_settings

# The cohort columns every hand-off carries, in this order, before the covariates.
LEADING_COLUMNS = ("person_id", "arm", "match_id", "weight", "ps", "index_date", "landmark_date",
                   "first_exposure_date", "followup_start", "followup_end", "time_days", "event")
DESCRIPTIONS = {
    "person_id": "Person identifier of the source data (text; keep leading zeros).",
    "arm": "Arm at the landmark, as the definition's `arms:` classify it.",
    "match_id": "Matched set: a treated person and its controls share it. Empty when weighting.",
    "weight": "Analysis weight: 1 for matched treated persons, 1/k for each of their k controls "
              "(summed over uses when matching with replacement); the IPTW or overlap weight when weighting.",
    "ps": "Propensity score: the modelled probability of the treated arm given the covariates.",
    "index_date": "Index date (date).",
    "landmark_date": "Landmark date: classification into arms and the start of follow-up (date).",
    "first_exposure_date": "Date of the first qualifying exposure of the treated arm; empty when none (date).",
    "followup_start": "Start of follow-up (date).",
    "followup_end": "End of follow-up: the first of the definition's end events (date).",
    "time_days": "Days from followup_start to followup_end (integer, >= 0).",
    "event": "1 when the outcome ended follow-up, 0 when censored.",
}


@dataclass
class MatchReport:
    """What one ``match`` run produced."""

    cohort: str
    settings: MatchingSettings
    psmatch: PsMatchReport
    persons_in: int
    persons_out: int
    cohort_version: int
    files: dict[str, str] = field(default_factory=dict)
    quality: object | None = None

    @property
    def max_abs_smd_after(self) -> float:
        return float(self.psmatch.balance["smd_after"].abs().max())


def matched_table(cohort: str, part: str) -> str:
    return f"matched/{cohort}/{part}"


def analysis_persons(definition, lake) -> tuple[pd.DataFrame, int, PsFit | None]:
    """The cohort's persons in the compared arms, person-level, on the driver.

    A cohort is one row per person (a few columns per person, not claim lines); above
    ``SPARK_THRESHOLD`` persons the propensity model is fitted by Spark ML before the
    scored persons are brought over for matching.
    """
    from pyspark.sql import functions as F

    from cohortlake.engine.build import cohort_table

    settings = matching_settings(definition)
    table = cohort_table(definition, "cohort")
    version = lake.version(table)
    if version is None:
        raise UserError(f"{lake.root}: cohort '{definition.cohort}' is not built; run `cohortlake build` first")
    frame = lake.read(table, version)
    if "in_landmark" in frame.columns:
        frame = frame.where(F.col("in_landmark") == 1)
    arms = [settings.treatment.arm, settings.treatment.control]
    frame = frame.where(F.col("arm").isin(arms))
    covariates = list(settings.ps_covariates)
    keep = [c for c in LEADING_COLUMNS if c in frame.columns] + [c for c in covariates if c not in LEADING_COLUMNS]
    frame = frame.select(*keep)
    fit = None
    persons = frame.count()
    if persons > SPARK_THRESHOLD:
        scored = fit_ps_spark(frame.withColumn("_treated", (F.col("arm") == arms[0]).cast("int")),
                              "_treated", covariates, l2=settings.l2)
        frame = scored.frame.drop("_treated")
        local = frame.orderBy("person_id").toPandas()
        fit = PsFit(ps=local.pop("ps").to_numpy(), logit=local.pop("ps_logit").to_numpy(),
                    coefficients=scored.coefficients, method=scored.method,
                    design=design_matrix(local, covariates))
        return local, version, fit
    local = frame.orderBy("person_id").toPandas()
    return local, version, fit


def match_cohort(definition, lake, out: str, progress=None, validate: bool = True, runner=None) -> MatchReport:
    """Match (or weight) a built cohort, gate the result, and write the hand-off files to ``out``."""
    from cohortlake.lake.manifest import RunManifest
    from cohortlake.progress import Progress

    progress = progress or Progress(quiet=True)
    settings = matching_settings(definition)
    if settings.treatment is None:
        raise UserError(f"{definition.path or definition.cohort}: the definition has no `matching:` section "
                        "naming the compared arms (treatment: {arm: …, control: …})")
    manifest = RunManifest("match", extra={"cohort": definition.cohort, "definition": definition.path})
    manifest.extra["definition_sha256_with_includes"] = definition.sha256
    with progress.step(f"match {definition.cohort}") as step, manifest.phase("match"):
        persons, version, fit = analysis_persons(definition, lake)
        if persons.empty:
            raise UserError(f"cohort '{definition.cohort}' has no persons in arms "
                            f"{settings.treatment.arm} / {settings.treatment.control}")
        report = run_psmatch(persons, "arm", list(settings.ps_covariates), settings,
                             treated_value=settings.treatment.arm, fit=fit)
        dataset = handoff_frame(report, settings)
        step["detail"] = (f"{report.n_treated:,} treated, {report.n_controls:,} controls → "
                          f"{report.n_matched_treated:,} + {report.n_matched_controls:,} matched"
                          if report.matched is not None else f"{len(dataset):,} persons weighted")
    result = MatchReport(definition.cohort, settings, report, len(persons), len(dataset), version)
    manifest.extra.update({"matching": settings.model_dump(mode="json"), "ps_method": report.fit.method,
                           "cohort_version": version})
    manifest.record_rows("persons_in", len(persons))
    manifest.record_rows("persons_out", len(dataset))

    tables = {"dataset": matched_table(definition.cohort, "dataset"), "balance": matched_table(definition.cohort, "balance")}
    before = {part: lake.version(name) for part, name in tables.items()}
    spark = lake.spark
    lake.write(tables["dataset"], spark.createDataFrame(dataset))
    lake.write(tables["balance"], spark.createDataFrame(report.balance[BALANCE_COLUMNS]))
    gate = None
    if validate:
        from cohortlake.quality.gates import gate_matched

        with manifest.phase("validate"):
            gate = gate_matched(lake, definition.cohort, settings.smd_threshold, progress, runner,
                                raise_on_critical=False)
        result.quality = gate
        manifest.extra["quality_gate"] = {"passed": gate.passed, "run_id": gate.run_id, "docs": gate.docs_index}
    os.makedirs(out, exist_ok=True)
    # The diagnostics are written either way: they are how a failed balance gets fixed.
    balance_path = os.path.join(out, "balance.csv")
    report.balance[BALANCE_COLUMNS].to_csv(balance_path, index=False)
    result.files["balance.csv"] = balance_path
    result.files["love_plot.png"] = str(love_plot(report.balance, os.path.join(out, "love_plot.png"),
                                                  threshold=settings.smd_threshold,
                                                  title=f"{definition.cohort}: covariate balance"))
    summary = {"cohort": definition.cohort, "settings": settings.model_dump(mode="json"),
               "ps_method": report.fit.method, "equipoise": float(report.equipoise),
               "caliper_on_scale": report.caliper, "persons": len(persons), "treated": report.n_treated,
               "controls": report.n_controls, "matched_treated": report.n_matched_treated,
               "matched_controls": report.n_matched_controls, "cohort_version": version,
               "balance_passed": None if gate is None else gate.passed,
               "ps_coefficients": json.loads(report.fit.coefficients.to_json(orient="records"))}
    summary_path = os.path.join(out, "matching.json")
    Path(summary_path).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    result.files["matching.json"] = summary_path
    if gate is None or gate.passed:
        with manifest.phase("export"):
            result.files.update(write_handoff(definition, lake, dataset, out))
    manifest.finish(lake)
    # manifest.json describes the matched tables the lake holds; a run that failed its gate
    # (and was rolled back) is recorded beside it, so `validate` keeps the tables' own settings.
    failed = gate is not None and not gate.passed
    manifest.write(os.path.join(lake.root, "matched", definition.cohort,
                                "manifest.failed.json" if failed else "manifest.json"))
    if gate is not None and not gate.passed:
        for part, previous in before.items():
            if previous is not None:
                lake.restore(tables[part], previous)
        gate.raise_for_critical()
    return result


def handoff_frame(report: PsMatchReport, settings: MatchingSettings) -> pd.DataFrame:
    """The persons of the analysis with their PS, match id and weight, leading columns first."""
    data = report.data
    if settings.method is Method.greedy_nearest_neighbor:
        data = data[data["match_id"].notna()]
    data = data.copy()
    data["match_id"] = data["match_id"].astype("Int64")
    columns = [c for c in LEADING_COLUMNS if c in data.columns]
    columns += [c for c in data.columns if c not in columns]
    return data[columns].sort_values(["match_id", "arm", "person_id"], na_position="last",
                                     key=lambda s: s if s.name != "arm" else s.ne(settings.treatment.arm)
                                     ).reset_index(drop=True)


def write_handoff(definition, lake, dataset: pd.DataFrame, out: str) -> dict[str, str]:
    """matched.parquet, matched.csv, matched_events.parquet (time-varying designs), data_dictionary.md."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from cohortlake.engine.build import cohort_table

    files = {}
    table = pa.Table.from_pandas(dataset, preserve_index=False)
    path = os.path.join(out, "matched.parquet")
    pq.write_table(table, path)
    files["matched.parquet"] = path
    path = os.path.join(out, "matched.csv")
    dataset.to_csv(path, index=False, date_format="%Y-%m-%d")
    files["matched.csv"] = path
    events_name = cohort_table(definition, "events")
    events_columns: list[str] = []
    if lake.exists(events_name):
        spark = lake.spark
        keys = spark.createDataFrame(dataset[["person_id", "match_id", "weight"]])
        events = lake.read(events_name).join(keys, "person_id").orderBy("match_id", "person_id", "start_day")
        path = os.path.join(out, "matched_events.parquet")
        arrow = events.toArrow()
        pq.write_table(arrow, path)
        files["matched_events.parquet"] = path
        events_columns = arrow.column_names
    path = os.path.join(out, "data_dictionary.md")
    Path(path).write_text(data_dictionary(definition, dataset, events_columns), encoding="utf-8")
    files["data_dictionary.md"] = path
    return files


def data_dictionary(definition, dataset: pd.DataFrame, events_columns: list[str]) -> str:
    """Markdown describing every column of the hand-off files."""
    covariates = {c.name: c for c in definition.covariates}
    lines = [f"# Data dictionary: {definition.cohort}", "", definition.title, "",
             "`matched.parquet` and `matched.csv` hold the same rows: one per person in the analysis. "
             "In CSV, dates are `YYYY-MM-DD` and an empty field is a missing value; Parquet keeps dates as "
             "dates and has no index column.", "",
             "| column | type | description |", "|---|---|---|"]
    for column in dataset.columns:
        kind = _kind(dataset[column])
        if column in DESCRIPTIONS:
            text = DESCRIPTIONS[column]
        elif column in covariates:
            covariate = covariates[column]
            text = f"Baseline covariate ({covariate.kind}): {_covariate_text(covariate)}."
        else:
            text = "Cohort column."
        lines.append(f"| `{column}` | {kind} | {text} |")
    if events_columns:
        lines += ["", "`matched_events.parquet`: the time-varying start/stop rows of the same persons "
                  "(`start_day`/`stop_day` count days from the index date; a row covers [start_day, stop_day)), "
                  "with their `match_id` and `weight`.", "",
                  "| column |", "|---|"] + [f"| `{c}` |" for c in events_columns]
    return "\n".join(lines) + "\n"


def _kind(series: pd.Series) -> str:
    if pd.api.types.is_integer_dtype(series):
        return "integer"
    if pd.api.types.is_float_dtype(series):
        return "number"
    non_null = series.dropna()
    if len(non_null) and hasattr(non_null.iloc[0], "isoformat"):
        return "date"
    return "text"


def _covariate_text(covariate) -> str:
    body = getattr(covariate, covariate.kind, None)
    if body is None or not hasattr(body, "model_dump"):
        return covariate.kind.replace("_", " ")
    settings = body.model_dump(mode="json", exclude_defaults=True)
    return ", ".join(f"{key} {value}" for key, value in settings.items()) or covariate.kind.replace("_", " ")


__all__ = ["MatchReport", "analysis_persons", "data_dictionary", "handoff_frame", "match_cohort", "matched_table",
           "write_handoff"]
