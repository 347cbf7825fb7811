"""The match step: a built cohort → the propensity-score-matched analysis dataset.

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

(:mod:`cohortlake.matching.handoff` writes those files.)

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
from cohortlake.lake import layout
from cohortlake.matching.balance import BALANCE_COLUMNS, love_plot
from cohortlake.matching.handoff import LEADING_COLUMNS, handoff_frame, write_handoff
from cohortlake.matching.ps import SPARK_THRESHOLD, PsFit, design_matrix, fit_ps_spark
from cohortlake.matching.psmatch import PsMatchReport, run_psmatch
from cohortlake.spec.matching import MatchingSettings, matching_settings

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
    return layout.matched_table(cohort, part)


def analysis_persons(definition, lake) -> tuple[pd.DataFrame, int, PsFit | None]:
    """The cohort's persons in the compared arms, person-level, on the driver.

    A cohort is one row per person (a few columns per person, not claim lines); above
    ``SPARK_THRESHOLD`` persons the propensity model is fitted by Spark ML before the
    scored persons are brought over for matching.
    """
    from pyspark.sql import functions as F

    settings = matching_settings(definition)
    table = layout.cohort_table(definition.cohort, "cohort")
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
    from cohortlake.quality import gates

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
    manifest.extra.update({gates.MATCHED_GATE_INPUTS: settings.model_dump(mode="json"), "ps_method": report.fit.method,
                           "cohort_version": version})
    manifest.record_rows("persons_in", len(persons))
    manifest.record_rows("persons_out", len(dataset))

    tables = {"dataset": matched_table(definition.cohort, "dataset"), "balance": matched_table(definition.cohort, "balance")}
    with gates.gated(lake, tables.values(), manifest=manifest) as gate:
        spark = lake.spark
        lake.write(tables["dataset"], spark.createDataFrame(dataset))
        lake.write(tables["balance"], spark.createDataFrame(report.balance[BALANCE_COLUMNS]))
        if validate:
            result.quality = gate.run(gates.gate_matched, lake, definition.cohort, settings.smd_threshold, progress,
                                      runner)
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
                   "balance_passed": None if gate.report is None else gate.report.passed,
                   "ps_coefficients": json.loads(report.fit.coefficients.to_json(orient="records"))}
        summary_path = os.path.join(out, "matching.json")
        Path(summary_path).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        result.files["matching.json"] = summary_path
        if not gate.failed:
            with manifest.phase("export"):
                result.files.update(write_handoff(definition, lake, dataset, out))
        manifest.finish(lake)
        # manifest.json describes the matched tables the lake holds; a run that failed its gate
        # (and was rolled back) is recorded beside it, so `validate` keeps the tables' own settings.
        manifest.write(layout.match_manifest(lake.root, definition.cohort, failed=gate.failed))
    return result

__all__ = ["MatchReport", "analysis_persons", "match_cohort", "matched_table"]
