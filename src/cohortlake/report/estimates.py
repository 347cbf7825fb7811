"""The survival results (:class:`cohortlake.survival.results.SurvivalResults`) as the report's
text: per-arm Kaplan-Meier figures, risk at the horizon, and the comparisons (log-rank,
hazard ratios, risk ratios, proportional-hazards check).

Counts of persons and deaths go through :mod:`cohortlake.cells`: each arm's deaths
and the persons without one (derivable, never printed) add up to the arm's persons, and
so do the deaths by the horizon and the rest; a risk at the horizon is a percentage of
those counts, shown only when they are.
"""

from __future__ import annotations

from cohortlake.cells import Cells, Priority, Status, small_cell
from cohortlake.report import formats
from cohortlake.report.table1 import arm_n_key
from cohortlake.survival.results import RiskAt, SurvivalResults, Treatment

RISK_RATIO_MODELS = ("rr_crude", "rr_adjusted")


class SurvivalFigures:
    """The figures of one survival result, with their counts registered in a :class:`Cells`."""

    def __init__(self, survival: SurvivalResults | None, treatment: Treatment, cells: Cells,
                 matched_n: dict[str, int] | None = None):
        self.survival = survival
        self.treated, self.control = str(treatment.arm), str(treatment.control)
        self.cells = cells
        self.groups = survival.groups if survival is not None else {}
        self.horizon = survival.risk.horizon_days if survival is not None and survival.risk is not None else None
        self._n_key, self._at_risk_key = {}, {}
        for label, km in self.groups.items():
            # the arm's persons are the matched sample's: one cell printed in both places
            if matched_n is not None and matched_n.get(label) == km.n:
                key = arm_n_key("matched", label)
            else:
                key = ("survival", label, "n")
            self._n_key[label] = cells.add(key, km.n, keep=Priority.headline)
            events = cells.add(("survival", label, "events"), km.events, keep=Priority.headline)
            without = cells.add(("survival", label, "no_event"), km.n - km.events, published=False)
            cells.group([events, without], key)
            for entry in km.at_risk:
                at_risk = ("survival", label, "at_risk", entry.time)
                if entry.time == 0 and entry.n == km.n:
                    at_risk = key  # everybody is at risk at day 0: the arm's N itself
                self._at_risk_key[(label, entry.time)] = cells.add(at_risk, entry.n)
            risk = self.risk(label)
            if risk is not None:
                by = cells.add(("survival", label, "events_by_horizon"), risk.events_by_horizon,
                               keep=Priority.headline)
                rest = cells.add(("survival", label, "no_event_by_horizon"), km.n - risk.events_by_horizon,
                                 published=False)
                later = cells.add(("survival", label, "events_after_horizon"),
                                  km.events - risk.events_by_horizon, published=False)
                cells.group([by, rest], key)
                cells.group([by, later], events)
        for model in RISK_RATIO_MODELS:
            fit = survival.risk_ratio(model) if survival is not None else None
            if fit is not None and fit.n_status_unknown:
                cells.add(("survival", model, "status_unknown"), fit.n_status_unknown)

    def risk(self, label: str) -> RiskAt | None:
        """The arm's risk by the horizon; None without a horizon or that arm."""
        if self.survival is None or self.survival.risk is None:
            return None
        return self.survival.risk.by_group.get(label)

    def at_risk_times(self) -> list[float]:
        """The days of the numbers at risk (the first group's; every group has the same)."""
        return [entry.time for entry in next(iter(self.groups.values())).at_risk] if self.groups else []

    @property
    def available(self) -> bool:
        return bool(self.groups)

    def labels(self) -> list[str]:
        """Group labels, treated first, then the control, then any others."""
        order = [self.treated, self.control]
        return [g for g in order if g in self.groups] + [g for g in self.groups if g not in order]

    def n_text(self, label: str) -> str:
        return self.cells.text(self._n_key[label])

    def risk_shown(self, label: str) -> bool:
        """A risk at the horizon may be printed: its deaths-by-horizon count and the arm's N are shown."""
        return not self.cells.suppressed(("survival", label, "events_by_horizon")) \
            and not self.cells.suppressed(self._n_key[label])

    def risk_text(self, label: str, with_ci: bool = True) -> str:
        risk = self.risk(label)
        if risk is None:
            return formats.NOT_AVAILABLE
        if risk.risk is None:
            return f"{formats.NOT_AVAILABLE} ({risk.note or 'not estimable'})"
        if not self.risk_shown(label):
            return "not shown (small-cell rule)"
        if not with_ci:
            return formats.percent(risk.risk)
        return f"{formats.percent(risk.risk)} ({formats.percent(risk.ci_lower)}-{formats.percent(risk.ci_upper)})"

    def median_months(self, label: str) -> float | None:
        km = self.groups.get(label)
        return km.median.months.estimate if km is not None else None

    def arm_rows(self) -> list[dict]:
        """Per arm: persons, deaths, median (95% CI) and IQR in months, risk and deaths by the horizon."""
        rows = []
        for label in self.labels():
            km = self.groups[label]
            median = km.median.months
            rows.append({
                "label": label,
                "n": self.n_text(label),
                "events": self.cells.text(("survival", label, "events")),
                "median": formats.estimate_ci(median.estimate, median.ci_lower, median.ci_upper, 1,
                                              formats.NOT_REACHED),
                "iqr": f"{formats.number(km.q25.months.estimate, 1, formats.NOT_REACHED)}-"
                       f"{formats.number(km.q75.months.estimate, 1, formats.NOT_REACHED)}",
                "risk": self.risk_text(label) if self.horizon is not None else "",
                "events_by_horizon": (self.cells.text(("survival", label, "events_by_horizon"))
                                      if ("survival", label, "events_by_horizon") in self.cells else ""),
            })
        return rows

    def at_risk(self) -> dict:
        """Numbers at risk as text: {"times": [...], "rows": [{label, counts}]} (persons, unweighted)."""
        labels = self.labels()
        if not labels:
            return {"times": [], "rows": []}
        times = [entry.time for entry in self.groups[labels[0]].at_risk]
        return {"times": [formats.weighted_count(t) for t in times],
                "rows": [{"label": label, "counts": [self.cells.text(self._at_risk_key[(label, entry.time)])
                                                     for entry in self.groups[label].at_risk]}
                         for label in labels]}

    def count_text(self, label: str, time: float | None, count: int) -> str:
        """A count the KM plot prints, as this report prints it: the arm's persons (``time`` None)
        or the number at risk at ``time``; a count the report does not hold gets the primary rule."""
        key = self._n_key.get(label) if time is None else self._at_risk_key.get((label, time))
        if key is None or self.cells.counts.get(key) != count:
            return small_cell(count, rule=self.cells.rule)
        return self.cells.text(key)

    def plot_counts_hidden(self) -> bool:
        """True when a count the KM plot prints (each arm's n, the numbers at risk) is hidden here by
        complementary suppression: the plot, drawn with primary suppression only, would show it."""
        keys = list(self._n_key.values()) + list(self._at_risk_key.values())
        return any(self.cells.status[key] is Status.hidden for key in keys)

    def comparison_rows(self) -> list[dict]:
        """Log-rank, hazard ratios and risk ratios of the treated arm vs the control, and the PH check."""
        rows = []
        survival = self.survival
        logrank = survival.logrank if survival is not None else None
        if logrank:
            rows.append({"label": "Log-rank test",
                         "value": f"chi² {formats.number(logrank.chi2, 2)} on {logrank.df} df",
                         "p": formats.p_value(logrank.p),
                         "detail": "" if logrank.test == "log-rank" else logrank.test})
        else:
            rows.append({"label": "Log-rank test", "value": "not available", "p": "",
                         "detail": "no group comparison in the survival results"})
        models = survival.cox if survival is not None else None
        for model in ("crude", "adjusted"):
            cox = getattr(models, model) if models is not None else None
            label = f"Hazard ratio, {model} (95% CI)"
            if cox is None:
                reason = ("no covariates in the survival analysis" if model == "adjusted"
                          else "no group comparison in the survival results")
                rows.append({"label": label, "value": "not available", "p": "", "detail": reason})
                continue
            hr = cox.hazard_ratios.get(self.treated)
            if hr is None:
                rows.append({"label": label, "value": "not available", "p": "",
                             "detail": f"no hazard ratio for '{self.treated}'"})
                continue
            detail = f"Cox, ties {cox.ties or 'efron'}; variance {cox.variance or ''}"
            if model == "adjusted" and cox.covariates:
                detail += f"; adjusted for {', '.join(cox.covariates)}"
            rows.append({"label": label, "value": formats.estimate_ci(hr.hr, hr.ci_lower, hr.ci_upper),
                         "p": formats.p_value(hr.p), "detail": detail})
        risk = survival.risk if survival is not None else None
        horizon = formats.weighted_count(self.horizon) if self.horizon is not None else None
        for model in RISK_RATIO_MODELS:
            name = model.split("_")[1]
            label = f"Risk ratio by day {horizon}, {name} (95% CI)" if horizon else f"Risk ratio, {name}"
            entry = risk.ratios()[model] if risk is not None else None
            if entry is None:
                reason = ("no horizon in the survival analysis" if risk is None
                          else "no covariates in the survival analysis" if name == "adjusted"
                          else "no group comparison")
                rows.append({"label": label, "value": "not available", "p": "", "detail": reason})
                continue
            rr = entry.risk_ratios.get(self.treated)
            if rr is None:
                rows.append({"label": label, "value": "not available", "p": "",
                             "detail": f"no risk ratio for '{self.treated}'"})
                continue
            detail = f"{entry.method}; variance {entry.variance}"
            if entry.fallback_reason:
                detail += f" ({entry.fallback_reason})"
            if entry.n_status_unknown:
                detail += (f"; {self.cells.text(('survival', model, 'status_unknown'))} persons censored "
                           f"before the horizon left out")
            rows.append({"label": label, "value": formats.estimate_ci(rr.rr, rr.ci_lower, rr.ci_upper),
                         "p": formats.p_value(rr.p), "detail": detail})
        rows.append(self.ph_row())
        return rows

    def ph_row(self) -> dict:
        model = self.survival.primary_cox if self.survival is not None else None
        label = "Proportional hazards (scaled Schoenfeld test)"
        if model is None or not model.ph_check:
            return {"label": label, "value": "not available", "p": "", "detail": "no Cox model"}
        check = model.ph_check
        term = next((name for name in check.terms if name.endswith(f"={self.treated}")), None)
        p = check.terms[term].p if term else None
        if check.any_violation:
            value = f"violated (p < {check.alpha:g}) for {', '.join(check.violating_terms)}"
        else:
            value = f"no term with p < {check.alpha:g}"
        return {"label": label, "value": value, "p": formats.p_value(p),
                "detail": f"{model.model} model; p shown for the arm term" + (f" ({term})" if term else "")}

    def notes(self) -> list[str]:
        return list(self.survival.notes) if self.survival is not None else []
