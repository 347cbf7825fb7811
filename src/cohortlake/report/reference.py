"""The reference study's published results table beside this run's figures.

Sanoff HK et al., *Sorafenib Effectiveness in Advanced Hepatocellular Carcinoma*, The
Oncologist 2016;21(9):1113-20 (SEER-Medicare). The rows and published figures are those
of ``docs/reference-study.md``; this run's figures come from ``results.json``
(``descriptive``, ``matching`` and ``survival``). A figure this run cannot give says
"not available" and why.
"""

from __future__ import annotations

from dataclasses import dataclass

from cohortlake.cells import SMALLEST_SHOWN, Cells, Status
from cohortlake.report import formats
from cohortlake.report.estimates import SurvivalFigures
from cohortlake.report.table1 import arm_n_key
from cohortlake.survival.results import Descriptive, StudyResults

CITATION = ("Sanoff HK, Chang Y, Lund JL, O'Neil BH, Dusetzina SB. Sorafenib Effectiveness in Advanced "
            "Hepatocellular Carcinoma. The Oncologist 2016;21(9):1113-20 (SEER-Medicare, diagnoses 2008-2011).")

PUBLISHED = (
    ("patients with advanced HCC, Parts A/B/D", "1,532"),
    ("received initial sorafenib", "27%"),
    ("sorafenib duration, median (IQR)", "60 days (30-107)"),
    ("survival from first prescription, median (IQR)", "3 months (1-8)"),
    ("PS-matched sample", "223 sorafenib vs 223 untreated (1:1)"),
    ("median survival from the 60-day landmark", "3 vs 2 months"),
    ("adjusted HR for death, sorafenib vs none", "0.95 (95% CI 0.78-1.16)"),
    ("3-month mortality after landmark", "44% vs 51%; adjusted RR 0.88 (0.72-1.07)"),
)
"""(figure, published) in the order of the reference study's results table."""

N_KEY = ("descriptive", "n")
TREATED_KEY = ("descriptive", "treated")


@dataclass(frozen=True)
class ReferenceRow:
    figure: str
    published: str
    this_run: str
    available: bool


def _unavailable(reason: str) -> tuple[str, bool]:
    return f"not available: {reason}", False


def _suppressed_reason(status: Status) -> str:
    return f"fewer than {SMALLEST_SHOWN} persons" if status is Status.small else "hidden so that a small cell cannot be derived"


class ReferenceTable:
    """Registers the table's counts in ``cells`` on creation; :meth:`rows` reads them after suppression."""

    def __init__(self, results: StudyResults, cells: Cells, survival: SurvivalFigures,
                 cohort_keys: dict[int, tuple] | None = None):
        self.results = results
        self.cells = cells
        self.survival = survival
        self.treatment = results.treatment
        self.descriptive = results.descriptive or Descriptive()
        self.matching = results.matching
        self.n_key = self.treated_key = None
        n = self.descriptive.n
        if n is not None:
            # the described population is often one of the attrition steps: then it is that cell
            self.n_key = cells.add((cohort_keys or {}).get(int(n), N_KEY), n)
            share = self.descriptive.treated_share
            if share is not None:
                treated = int(round(share * n))
                arm_key = arm_n_key("cohort", self.treatment.arm)
                control_key = arm_n_key("cohort", self.treatment.control)
                if arm_key in cells and control_key in cells and cells.counts[arm_key] == treated \
                        and cells.counts[arm_key] + cells.counts[control_key] == int(n):
                    self.treated_key = arm_key  # the described population is the cohort: the same cell
                else:
                    # the percentage publishes the treated count, and n minus it
                    self.treated_key = cells.add(TREATED_KEY, treated)
                    untreated = cells.add(("descriptive", "untreated"), int(n) - treated, published=False)
                    cells.group([self.treated_key, untreated], self.n_key)
        self.matched_keys = {}
        for side, arm in (("treated", self.treatment.arm), ("control", self.treatment.control)):
            count = self.matching.matched(side)
            if count is not None:
                key = arm_n_key("matched", arm)
                if key in cells and cells.counts[key] != int(count):
                    key = ("matching", side, "matched")
                self.matched_keys[side] = cells.add(key, count)

    def rows(self) -> list[ReferenceRow]:
        makers = (self._n, self._share, self._duration, self._first_rx, self._matched, self._medians, self._hr,
                  self._mortality)
        return [ReferenceRow(figure, published, *maker()) for (figure, published), maker in zip(PUBLISHED, makers)]

    def _missing_descriptive(self, key: str) -> tuple[str, bool]:
        if not self.results.descriptive:
            return _unavailable("results.json has no descriptive (unmatched) figures")
        return _unavailable(f"descriptive.{key} is empty in results.json (not computed by this run)")

    def _n(self):
        if self.n_key is None:
            return self._missing_descriptive("n")
        population = self.descriptive.population
        text = self.cells.text(self.n_key)
        return (f"{text} ({population})" if population else text), True

    def _share(self):
        share = self.descriptive.treated_share
        if share is None or self.treated_key is None:
            return self._missing_descriptive("treated_share" if self.n_key is not None else "n")
        for key in (self.treated_key, self.n_key):
            status = self.cells.status[key]
            if status.suppressed:
                return f"not shown: {_suppressed_reason(status)}", True
        return formats.percent(share), True

    def _duration(self):
        figure = self.descriptive.duration_days
        if not figure or figure.median is None:
            return self._missing_descriptive("duration_days")
        days = lambda x: formats.number(x, 0)  # noqa: E731
        return f"{days(figure.median)} days ({days(figure.q25)}-{days(figure.q75)})", True

    def _first_rx(self):
        figure = self.descriptive.survival_from_first_rx_months
        if not figure or figure.median is None:
            return self._missing_descriptive("survival_from_first_rx_months")
        months = lambda x: formats.number(x, 1, formats.NOT_REACHED)  # noqa: E731
        return f"{months(figure.median)} months ({months(figure.q25)}-{months(figure.q75)})", True

    def _matched(self):
        if len(self.matched_keys) < 2:
            return _unavailable("matching.matched_treated / matched_control missing in results.json")
        ratio = self.matching.ratio
        ratio_text = f" (1:{ratio})" if ratio is not None else ""
        if self.matching.replacement:
            ratio_text = ratio_text[:-1] + ", with replacement)" if ratio_text else " (with replacement)"
        return (f"{self.cells.text(self.matched_keys['treated'])} {self.treatment.arm} vs "
                f"{self.cells.text(self.matched_keys['control'])} {self.treatment.control}{ratio_text}"), True

    def _medians(self):
        treated, control = self.treatment.arm, self.treatment.control
        if not self.survival.available:
            return _unavailable("results.json has no survival results")
        missing = [arm for arm in (treated, control) if arm not in self.survival.groups]
        if missing:
            return _unavailable(f"no survival group '{missing[0]}'")
        show = lambda arm: formats.number(self.survival.median_months(arm), 1, "not reached")  # noqa: E731
        return f"{show(treated)} vs {show(control)} months", True

    def _hr(self):
        survival = self.results.survival
        cox = survival.cox.adjusted if survival is not None and survival.cox is not None else None
        if cox is None:
            reason = ("results.json has no survival results" if not self.survival.available
                      else "no adjusted Cox model (the survival analysis had no covariates)")
            return _unavailable(reason)
        hr = cox.hazard_ratios.get(self.treatment.arm)
        if hr is None or hr.hr is None:
            return _unavailable(f"no hazard ratio for '{self.treatment.arm}'")
        return (f"{formats.number(hr.hr)} (95% CI {formats.number(hr.ci_lower)}-"
                f"{formats.number(hr.ci_upper)})"), True

    def _mortality(self):
        risk = self.results.survival.risk if self.results.survival is not None else None
        if risk is None:
            return _unavailable("no horizon in the survival analysis (risk by day 90 not computed)")
        treated, control = self.treatment.arm, self.treatment.control
        missing = [arm for arm in (treated, control) if arm not in risk.by_group]
        if missing:
            return _unavailable(f"no risk for group '{missing[0]}'")
        text = f"{self.survival.risk_text(treated, False)} vs {self.survival.risk_text(control, False)}"
        horizon = risk.horizon_days
        if horizon is not None and float(horizon) != 90.0:
            text += f" (by day {formats.weighted_count(horizon)}, not day 90)"
        rr = risk.rr_adjusted.risk_ratios.get(treated) if risk.rr_adjusted is not None else None
        if rr is None or rr.rr is None:
            text += "; adjusted RR not available (no adjusted risk ratio in the survival results)"
        else:
            text += (f"; adjusted RR {formats.number(rr.rr)} ({formats.number(rr.ci_lower)}-"
                     f"{formats.number(rr.ci_upper)})")
        return text, True
