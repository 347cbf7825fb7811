"""The files a match hands off: the analysis dataset, its time-varying rows and its data dictionary.

``matched.parquet`` / ``matched.csv`` hold one row per person in the analysis, leading
columns first (:data:`LEADING_COLUMNS`); ``matched_events.parquet`` the start/stop rows
of those persons for time-varying designs; ``data_dictionary.md`` describes every column.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from cohortlake.lake import layout
from cohortlake.matching.psmatch import PsMatchReport
from cohortlake.spec.matching import MatchingSettings, Method

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

    files = {}
    table = pa.Table.from_pandas(dataset, preserve_index=False)
    path = os.path.join(out, "matched.parquet")
    pq.write_table(table, path)
    files["matched.parquet"] = path
    path = os.path.join(out, "matched.csv")
    dataset.to_csv(path, index=False, date_format="%Y-%m-%d")
    files["matched.csv"] = path
    events_name = layout.cohort_table(definition.cohort, "events")
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


__all__ = ["DESCRIPTIONS", "LEADING_COLUMNS", "data_dictionary", "handoff_frame", "write_handoff"]
