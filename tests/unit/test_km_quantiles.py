"""Kaplan-Meier quantiles by R's ``quantile.survfit`` rule, where the curve lands exactly on a level.

Every expected value is worked out by hand from the product-limit steps and R's rule: the
first time S(t) <= 1 - q, but the midpoint to the next drop (or to the last follow-up)
when S sits exactly on 1 - q. The documented rule "first time S(t) <= 1 - q" without the
midpoint gives the left end of each interval, and lifelines' own rounding gave the right.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cohortlake.survival.km import curve_quantile, fit_km, kaplan_meier, survival_quantile


def quantiles(times, events):
    fitter = fit_km(times, events)
    return tuple(survival_quantile(fitter, q)[0] for q in (0.25, 0.5, 0.75))


@pytest.mark.parametrize("times, events, expected", [
    # deaths on days 1..8: S = 7/8, 6/8 (= 0.75 on [2, 3)), ..., 4/8 on [4, 5), ..., 2/8 on [6, 7)
    (range(1, 9), [1] * 8, (2.5, 4.5, 6.5)),
    # deaths on days 1..4: S = 0.75 on [1, 2), 0.5 on [2, 3), 0.25 on [3, 4)
    (range(1, 5), [1] * 4, (1.5, 2.5, 3.5)),
    # with censoring: S(10) = 3/4, S(20) = 3/4 * 2/3 = 1/2, censored on 30 (no drop), S(40) = 0;
    # the flat at 1/2 runs from 20 to the next drop at 40
    ([10, 20, 30, 40], [1, 1, 0, 1], (15.0, 30.0, 40.0)),
    # the curve stays on 1/2 to the end of follow-up (day 9): the midpoint of [2, 9]; q75 never reached
    ([1, 2, 5, 9], [1, 1, 0, 0], (1.5, 5.5, float("inf"))),
    # no exact landing: S = 0.8, 0.6, (censor), 0.3, 0 → the first time S <= level
    ([1, 2, 3, 4, 5], [1, 1, 0, 1, 1], (2.0, 4.0, 5.0)),
    # tied deaths: 2 of 4 on day 5 → S = 0.5 on [5, 7), the rest die on day 7
    ([5, 5, 7, 7], [1, 1, 1, 1], (5.0, 6.0, 7.0)),
])
def test_quantiles_follow_r_survfit(times, events, expected):
    assert quantiles(times, events) == expected


def test_floating_point_noise_on_the_level_still_counts_as_on_it():
    # 12 persons: 1 dies on day 1, 5 on day 2, 6 on day 10. By hand S(2) = 11/12 * 6/11 = 1/2 exactly;
    # the product-limit estimate in floating point is 0.49999999999999994.
    times, events = [1] + [2] * 5 + [10] * 6, [1] * 12
    curve = fit_km(times, events).survival_function_.iloc[:, 0]
    assert curve.loc[2.0] != 0.5 and abs(curve.loc[2.0] - 0.5) < 1e-15
    assert curve_quantile(curve, 0.5) == 6.0          # midpoint of [2, 10), as R gives
    # a level missed by more than the tolerance is not "on" it
    assert curve_quantile(pd.Series([1.0, 0.5 - 1e-6, 0.0], index=[0.0, 2.0, 10.0]), 0.5) == 2.0


def test_kaplan_meier_reports_the_rule_and_its_interval_ends():
    summary = kaplan_meier(np.arange(1, 9), np.ones(8)).to_json()
    assert summary["median"]["days"]["estimate"] == 4.5
    assert summary["q25"]["days"]["estimate"] == 2.5 and summary["q75"]["days"]["estimate"] == 6.5
    lower, upper = summary["median"]["days"]["ci_lower"], summary["median"]["days"]["ci_upper"]
    assert lower <= 4.5 <= upper
