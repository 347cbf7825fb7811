"""The survival stage against estimates computed here by hand: product-limit, textbook
log-rank, a partial likelihood maximised with scipy, the Lin-Wei sandwich, the 2x2 risk
ratio with its delta-method CI, and Aalen-Johansen. No Spark."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

from cohortlake.cli import main
from cohortlake.errors import MissingInputError, UserError
from cohortlake.survival import prepare, survival_analysis
from cohortlake.survival.cox import cox_model
from cohortlake.survival.km import fit_km, kaplan_meier, kaplan_meier_by_group, log_rank, numbers_at_risk
from cohortlake.survival.plot import at_risk_table, plot_km, small_cell
from cohortlake.survival.risk import aalen_johansen, risk_ratio_model, risks_at

Z = stats.norm.ppf(0.975)

# Ten persons; ties at day 3 (two deaths and a censoring) and day 6 (a death and a censoring).
KM_TIMES = [2, 3, 3, 3, 5, 6, 6, 8, 9, 12]
KM_EVENTS = [1, 1, 1, 0, 1, 0, 1, 1, 0, 1]


def hand_product_limit(times, events):
    """(time, n at risk, deaths, S, Greenwood sum) at each distinct death time; censored at t are at risk at t."""
    times, events = np.asarray(times, float), np.asarray(events, int)
    rows, survival, greenwood = [], 1.0, 0.0
    for t in np.unique(times[events == 1]):
        at_risk = int((times >= t).sum())
        deaths = int(((times == t) & (events == 1)).sum())
        survival *= 1 - deaths / at_risk
        if at_risk > deaths:
            greenwood += deaths / (at_risk * (at_risk - deaths))
        rows.append((t, at_risk, deaths, survival, greenwood))
    return rows


def loglog_band(survival, greenwood):
    """The exponential-Greenwood (log-log) 95% band at one time."""
    v = np.log(survival)
    half = Z * np.sqrt(greenwood) / v
    return np.exp(-np.exp(np.log(-v) - half)), np.exp(-np.exp(np.log(-v) + half))


# ---------------------------------------------------------------- Kaplan-Meier


def test_km_matches_hand_product_limit_with_ties_and_censoring():
    fitter = fit_km(KM_TIMES, KM_EVENTS)
    hand = hand_product_limit(KM_TIMES, KM_EVENTS)
    # by hand: 9/10, then 9/10*7/9 = 0.7 (the censoring on day 3 is still at risk), 0.7*5/6, *4/5, *2/3, then 0
    assert [round(s, 6) for *_, s, _ in hand] == [0.9, 0.7, 0.583333, 0.466667, 0.311111, 0.0]
    for t, _, _, survival, greenwood in hand:
        assert fitter.survival_function_.loc[t].iloc[0] == pytest.approx(survival, abs=1e-12)
        if 0 < survival < 1:
            lower, upper = loglog_band(survival, greenwood)
            band = fitter.confidence_interval_.loc[t]
            assert band.iloc[0] == pytest.approx(lower, abs=1e-9) and band.iloc[1] == pytest.approx(upper, abs=1e-9)


def test_km_median_and_quartiles_from_hand():
    summary = kaplan_meier(KM_TIMES, KM_EVENTS, horizon=4, at_risk_times=[0, 3, 4, 6, 13]).to_json()
    assert (summary["n"], summary["events"]) == (10, 7)
    # first day with S <= 0.5 is day 6 (S = 7/15); S <= 0.75 first on day 3 (0.7); S <= 0.25 on day 12 (0)
    assert summary["median"]["days"]["estimate"] == 6
    assert summary["q25"]["days"]["estimate"] == 3
    assert summary["q75"]["days"]["estimate"] == 12
    assert summary["median"]["months"]["estimate"] == pytest.approx(6 / 30.4375)
    # the median's CI: where the hand log-log band crosses 0.5 (Brookmeyer-Crowley)
    hand = hand_product_limit(KM_TIMES, KM_EVENTS)
    bands = [(t, *loglog_band(s, g)) if 0 < s < 1 else (t, s, s) for t, _, _, s, g in hand]
    lower_crossing = next(t for t, low, _ in bands if low <= 0.5)
    upper_crossing = next((t for t, _, up in bands if up <= 0.5), None)
    assert summary["median"]["days"]["ci_lower"] == lower_crossing
    assert summary["median"]["days"]["ci_upper"] == upper_crossing
    # persons still followed (time >= t)
    assert [row["n"] for row in summary["at_risk"]] == [10, 9, 6, 5, 0]
    # S(4) is the day-3 step, 0.7
    assert summary["survival_at_horizon"]["estimate"] == pytest.approx(0.7)


def test_survival_past_the_last_follow_up_is_not_reported():
    summary = kaplan_meier([5, 8, 10], [1, 0, 0], horizon=30).to_json()
    assert summary["survival_at_horizon"]["estimate"] is None
    assert "before the horizon" in summary["survival_at_horizon"]["note"]
    # the median is never reached: None, not infinity, so results stay valid JSON
    assert summary["median"]["days"]["estimate"] is None


def test_kaplan_meier_by_group_orders_reference_first_and_integer_weights_equal_repeated_rows():
    data = pd.DataFrame({"t": KM_TIMES * 2, "e": KM_EVENTS * 2, "arm": ["b"] * 10 + ["a"] * 10,
                         "w": [1, 2, 1, 3, 1, 1, 2, 1, 1, 1] * 2})
    curves = kaplan_meier_by_group(data, "t", "e", "arm", reference_group="b", weights="w", horizon=7)
    groups = {label: curve.to_json() for label, curve in curves.items()}
    assert list(groups) == ["b", "a"]
    repeated = data.loc[data.index.repeat(data["w"])]
    plain = kaplan_meier(repeated.loc[repeated.arm == "b", "t"], repeated.loc[repeated.arm == "b", "e"],
                         horizon=7).to_json()
    assert groups["b"]["median"]["days"]["estimate"] == plain["median"]["days"]["estimate"]
    assert groups["b"]["survival_at_horizon"]["estimate"] == pytest.approx(plain["survival_at_horizon"]["estimate"])
    assert groups["b"]["weighted_n"] == 14 and groups["b"]["n"] == 10


def test_numbers_at_risk_count_persons_at_or_after_each_time():
    assert numbers_at_risk([1, 2, 2, 5], [0, 2, 2.5, 5, 6]) == [4, 3, 1, 1, 0]


# ---------------------------------------------------------------- log-rank


def hand_logrank(times, events, groups):
    """Textbook log-rank: O - E per group and the hypergeometric covariance, chi2 on k - 1 df."""
    times, events, groups = np.asarray(times, float), np.asarray(events, int), np.asarray(groups)
    levels = sorted(set(groups))
    k = len(levels)
    observed_minus_expected = np.zeros(k)
    covariance = np.zeros((k, k))
    for t in np.unique(times[events == 1]):
        at_risk = np.array([((times >= t) & (groups == g)).sum() for g in levels], float)
        deaths = np.array([((times == t) & (events == 1) & (groups == g)).sum() for g in levels], float)
        n, d = at_risk.sum(), deaths.sum()
        observed_minus_expected += deaths - d * at_risk / n
        if n > 1:
            share = at_risk / n
            covariance += d * (n - d) / (n - 1) * (np.diag(share) - np.outer(share, share))
    u = observed_minus_expected[:-1]
    chi2 = float(u @ np.linalg.solve(covariance[:-1, :-1], u))
    return chi2, float(stats.chi2.sf(chi2, k - 1))


def test_logrank_two_groups_matches_observed_minus_expected_over_hypergeometric_variance():
    times = [1, 2, 2, 3, 4, 4, 5, 6, 7, 8, 2, 3, 3, 4, 6, 6, 9, 10, 11, 12]
    events = [1, 1, 0, 1, 1, 1, 0, 1, 1, 0, 1, 1, 0, 0, 1, 1, 0, 1, 0, 1]
    groups = ["x"] * 10 + ["y"] * 10
    # written out for two groups: (O1 - E1)^2 / V1
    o_minus_e, variance = 0.0, 0.0
    t_, e_, g_ = np.array(times, float), np.array(events), np.array(groups)
    for t in np.unique(t_[e_ == 1]):
        n = (t_ >= t).sum()
        n1 = ((t_ >= t) & (g_ == "x")).sum()
        d = ((t_ == t) & (e_ == 1)).sum()
        d1 = ((t_ == t) & (e_ == 1) & (g_ == "x")).sum()
        o_minus_e += d1 - d * n1 / n
        if n > 1:  # one person at risk: no variance
            variance += d * (n1 / n) * (1 - n1 / n) * (n - d) / (n - 1)
    expected = o_minus_e**2 / variance
    result = log_rank(pd.DataFrame({"t": times, "e": events, "g": groups}), "t", "e", "g").to_json()
    assert result["chi2"] == pytest.approx(expected, rel=1e-10)
    assert result["p"] == pytest.approx(stats.chi2.sf(expected, 1), rel=1e-10)
    assert result["df"] == 1


def test_logrank_three_groups_matches_the_matrix_form():
    rng = np.random.default_rng(3)
    times = rng.integers(1, 15, 45)
    events = rng.integers(0, 2, 45)
    groups = np.repeat(["a", "b", "c"], 15)
    times[30:] += 4  # group c lives longer
    chi2, p = hand_logrank(times, events, groups)
    result = log_rank(pd.DataFrame({"t": times, "e": events, "g": groups}), "t", "e", "g").to_json()
    assert (result["chi2"], result["df"]) == (pytest.approx(chi2, rel=1e-9), 2)
    assert result["p"] == pytest.approx(p, rel=1e-8)


# ---------------------------------------------------------------- Cox


def efron_log_partial_likelihood(beta, X, times, events, weights=None):
    """Efron's approximation; with case weights as R's coxph: the tied deaths' mean weight scales the log terms."""
    weights = np.ones(len(times)) if weights is None else np.asarray(weights, float)
    eta = X @ beta
    risk = weights * np.exp(eta)
    total = 0.0
    for t in np.unique(times[events == 1]):
        dying = (times == t) & (events == 1)
        d = dying.sum()
        at_risk_sum = risk[times >= t].sum()
        dying_sum = risk[dying].sum()
        total += (weights[dying] * eta[dying]).sum() - weights[dying].mean() * sum(
            np.log(at_risk_sum - l / d * dying_sum) for l in range(d))
    return total


def numerical_hessian(f, x, h=1e-4):
    k = len(x)
    hessian = np.zeros((k, k))
    for i in range(k):
        for j in range(k):
            ei, ej = np.eye(k)[i] * h, np.eye(k)[j] * h
            hessian[i, j] = (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)) / (4 * h * h)
    return hessian


def cox_data(seed=7, n=60, ties=True):
    rng = np.random.default_rng(seed)
    arm = rng.choice(["treated", "control"], n)
    age = rng.normal(75, 6, n).round(1)
    stage = rng.choice(["regional", "distant"], n)
    rate = 0.05 * np.exp(-0.5 * (arm == "treated") + 0.04 * (age - 75) + 0.6 * (stage == "distant"))
    latent = rng.exponential(1 / rate)
    censor = rng.uniform(5, 60, n)
    time = np.minimum(latent, censor)
    time = np.ceil(time) if ties else time.round(4)
    return pd.DataFrame({"id": range(n), "time": time, "event": (latent <= censor).astype(int),
                         "arm": arm, "age": age, "stage": stage, "pair": np.arange(n) // 2})


def test_cox_adjusted_hr_equals_efron_partial_likelihood_maximised_with_scipy():
    data = cox_data()
    assert data.time.duplicated().any()  # ties, so Efron matters
    result = cox_model(data, "time", "event", "arm", ["age", "stage"], reference_group="control").to_json()
    # the design by hand: treated vs control, age as is, regional vs distant (first sorted level)
    X = np.column_stack([(data.arm == "treated"), data.age, (data.stage == "regional")]).astype(float)
    t, e = data.time.to_numpy(float), data.event.to_numpy()
    negative = lambda b: -efron_log_partial_likelihood(b, X, t, e)  # noqa: E731
    best = optimize.minimize(negative, np.zeros(3), method="BFGS", options={"gtol": 1e-9})
    se = np.sqrt(np.diag(np.linalg.inv(numerical_hessian(negative, best.x))))

    hr = result["hazard_ratios"]["treated"]
    assert hr["coef"] == pytest.approx(best.x[0], abs=1e-5)
    assert hr["se"] == pytest.approx(se[0], rel=1e-4)
    assert hr["hr"] == pytest.approx(np.exp(best.x[0]), rel=1e-5)
    assert (hr["ci_lower"], hr["ci_upper"]) == (pytest.approx(np.exp(best.x[0] - Z * se[0]), rel=1e-4),
                                                pytest.approx(np.exp(best.x[0] + Z * se[0]), rel=1e-4))
    assert hr["p"] == pytest.approx(2 * stats.norm.sf(abs(best.x[0] / se[0])), rel=1e-3)
    assert result["covariate_terms"]["age"]["coef"] == pytest.approx(best.x[1], abs=1e-5)
    assert result["covariate_terms"]["stage=regional"]["coef"] == pytest.approx(best.x[2], abs=1e-5)
    assert result["covariate_reference_levels"] == {"stage": "distant"}
    assert result["variance"] == "model-based" and result["reference_group"] == "control"
    assert set(result["ph_check"]["terms"]) == {"arm=treated", "age", "stage=regional"}


def test_cox_crude_hr_equals_the_one_covariate_maximum():
    data = cox_data(seed=11)
    result = cox_model(data, "time", "event", "arm", reference_group="control").to_json()
    X = (data.arm == "treated").to_numpy(float)[:, None]
    best = optimize.minimize_scalar(lambda b: -efron_log_partial_likelihood(np.array([b]), X, data.time.to_numpy(float),
                                                                            data.event.to_numpy()))
    assert result["hazard_ratios"]["treated"]["coef"] == pytest.approx(best.x, abs=1e-5)
    assert result["model"] == "crude" and result["covariate_terms"] == {}


def lin_wei_sandwich(beta, X, times, events, clusters):
    """Robust variance without ties: score residuals times the model variance, summed per cluster."""
    risk = np.exp(X @ beta)
    n = len(times)
    mean_at = {}
    for t in times[events == 1]:
        at_risk = times >= t
        mean_at[t] = ((X[at_risk] * risk[at_risk, None]).sum(0) / risk[at_risk].sum(), risk[at_risk].sum())
    scores = np.zeros_like(X)
    for i in range(n):
        if events[i]:
            scores[i] += X[i] - mean_at[times[i]][0]
        for t, (mean, total) in mean_at.items():
            if t <= times[i]:
                scores[i] -= risk[i] * (X[i] - mean) / total
    information = numerical_hessian(lambda b: -efron_log_partial_likelihood(b, X, times, events), beta)
    influence = scores @ np.linalg.inv(information)
    summed = pd.DataFrame(influence).groupby(np.asarray(clusters)).sum().to_numpy()
    return summed.T @ summed


def test_cox_clustered_variance_matches_the_lin_wei_sandwich_and_unique_clusters_equal_plain_robust():
    data = cox_data(seed=5, n=50, ties=False)
    assert not data.time.duplicated().any()
    clustered = cox_model(data, "time", "event", "arm", ["age"], reference_group="control", cluster="pair").to_json()
    X = np.column_stack([(data.arm == "treated"), data.age]).astype(float)
    beta = np.array([clustered["hazard_ratios"]["treated"]["coef"], clustered["covariate_terms"]["age"]["coef"]])
    by_pair = lin_wei_sandwich(beta, X, data.time.to_numpy(), data.event.to_numpy(), data.pair)
    assert clustered["hazard_ratios"]["treated"]["se"] == pytest.approx(np.sqrt(by_pair[0, 0]), rel=1e-3)
    assert clustered["variance"] == "robust sandwich clustered on 'pair'"

    data["one"] = 1.0
    robust = cox_model(data, "time", "event", "arm", ["age"], reference_group="control", weights="one").to_json()
    by_person = cox_model(data, "time", "event", "arm", ["age"], reference_group="control", cluster="id").to_json()
    by_hand = lin_wei_sandwich(beta, X, data.time.to_numpy(), data.event.to_numpy(), data.id)
    assert robust["hazard_ratios"]["treated"]["se"] == pytest.approx(by_person["hazard_ratios"]["treated"]["se"], rel=1e-10)
    assert robust["hazard_ratios"]["treated"]["se"] == pytest.approx(np.sqrt(by_hand[0, 0]), rel=1e-3)
    # pairs are not persons: the two sandwiches differ
    assert clustered["hazard_ratios"]["treated"]["se"] != pytest.approx(robust["hazard_ratios"]["treated"]["se"], rel=1e-3)
    # the robust fit keeps the model-based coefficients
    plain = cox_model(data, "time", "event", "arm", ["age"], reference_group="control").to_json()
    assert plain["hazard_ratios"]["treated"]["coef"] == pytest.approx(beta[0], abs=1e-10)


def test_cox_weights_maximise_the_weighted_efron_likelihood():
    # with tied deaths, weighted Efron is not the Efron fit of repeated rows (R's coxph agrees)
    data = cox_data(seed=2, n=40)
    data["w"] = np.tile([0.5, 2.0, 3.0, 1.25], 10)
    weighted = cox_model(data, "time", "event", "arm", ["age"], reference_group="control", weights="w").to_json()
    X = np.column_stack([(data.arm == "treated"), data.age]).astype(float)
    negative = lambda b: -efron_log_partial_likelihood(b, X, data.time.to_numpy(float), data.event.to_numpy(),  # noqa: E731
                                                       data.w)
    best = optimize.minimize(negative, np.zeros(2), method="BFGS", options={"gtol": 1e-9})
    assert weighted["hazard_ratios"]["treated"]["coef"] == pytest.approx(best.x[0], abs=1e-5)
    assert weighted["covariate_terms"]["age"]["coef"] == pytest.approx(best.x[1], abs=1e-5)
    assert weighted["variance"] == "robust sandwich (case weights)"


@pytest.mark.parametrize("change, message", [
    (lambda d: d.assign(event=0), "column 'event' has no events"),
    (lambda d: d.assign(sex="F"), "covariate 'sex' is constant"),
    (lambda d: d.assign(age2=d.age * 2 + 1), "covariate 'age2' is collinear with the columns before it (arm, age, sex)"),
    (lambda d: d.assign(event=np.where(d.arm == "treated", 0, d.event)), "group 'treated' of column 'arm' has no events"),
    (lambda d: d.assign(arm="control"), "column 'arm' has a single group"),
])
def test_cox_errors_name_the_problem(change, message):
    data = change(cox_data().assign(sex=lambda d: np.where(d.id % 2, "F", "M")))
    covariates = [c for c in ("age", "sex", "age2") if c in data]
    with pytest.raises(UserError, match=None) as caught:
        cox_model(data, "time", "event", "arm", covariates)
    assert message in str(caught.value)


def test_cox_reports_which_model_did_not_converge_and_the_separating_covariate():
    data = cox_data(seed=4)
    data["marker"] = data.event + np.random.default_rng(0).normal(0, 1e-6, len(data))  # determines the outcome
    with pytest.raises(UserError) as caught:
        cox_model(data, "time", "event", "arm", ["marker"])
    assert "the adjusted Cox model did not converge (the coefficient of marker heads to infinity" in str(caught.value)


def test_absent_reference_group_is_a_group_with_no_rows():
    with pytest.raises(UserError, match="reference group 'placebo' has no rows"):
        cox_model(cox_data(), "time", "event", "arm", reference_group="placebo")


# ---------------------------------------------------------------- risk


def two_by_two():
    """Horizon 90: exposed 6 events by day 90 of 20 known (+2 censored early); unexposed 9 of 18 (+1 early)."""
    rows = []
    rows += [("exposed", 30, 1)] * 6 + [("exposed", 200, 1)] * 4 + [("exposed", 90, 0)] * 3 + [("exposed", 400, 0)] * 7
    rows += [("exposed", 40, 0)] * 2  # censored before the horizon: status unknown, left out of the ratio
    rows += [("unexposed", 90, 1)] * 9 + [("unexposed", 120, 0)] * 9 + [("unexposed", 10, 0)]
    return pd.DataFrame(rows, columns=["arm", "days", "died"]).assign(pair=lambda d: np.arange(len(d)))


def test_risk_ratio_of_one_binary_group_is_the_2x2_ratio_with_the_delta_method_ci():
    data = two_by_two()
    result = risk_ratio_model(data, "days", "died", "arm", 90, reference_group="unexposed").to_json()
    a, n1, c, n0 = 6, 20, 9, 18  # the event on day 90 counts; censored on day 90 is known event-free
    rr = (a / n1) / (c / n0)
    se = np.sqrt(1 / a - 1 / n1 + 1 / c - 1 / n0)
    entry = result["risk_ratios"]["exposed"]
    assert entry["rr"] == pytest.approx(rr, rel=1e-6)
    assert entry["ci_lower"] == pytest.approx(rr * np.exp(-Z * se), rel=1e-5)
    assert entry["ci_upper"] == pytest.approx(rr * np.exp(Z * se), rel=1e-5)
    assert (result["method"], result["variance"]) == ("log-binomial", "model-based")
    assert (result["n_status_known"], result["n_status_unknown"]) == (38, 3)
    assert result["proportions"] == {"unexposed": pytest.approx(0.5), "exposed": pytest.approx(0.3)}
    # clustering on persons adds nothing for a saturated model, and no small-sample factor is applied
    by_person = risk_ratio_model(data, "days", "died", "arm", 90, reference_group="unexposed",
                                 cluster="pair").to_json()
    assert by_person["risk_ratios"]["exposed"]["se"] == pytest.approx(se, rel=1e-6)


def test_weighted_risk_ratio_uses_the_iptw_sandwich():
    # IPTW: each person's score counts with weight squared (var_weights), not as w repeated persons
    data = two_by_two().assign(w=lambda d: 0.5 + (d.index % 4) * 0.75)
    result = risk_ratio_model(data, "days", "died", "arm", 90, reference_group="unexposed", weights="w").to_json()
    known = data[(data.days >= 90) | ((data.died == 1) & (data.days <= 90))]
    log_risk, variance = {}, 0.0
    for level in ("exposed", "unexposed"):
        rows = known[known.arm == level]
        y = ((rows.died == 1) & (rows.days <= 90)).to_numpy(float)
        p = np.average(y, weights=rows.w)
        log_risk[level] = np.log(p)
        variance += (rows.w**2 * (y - p) ** 2).sum() / (p * rows.w.sum()) ** 2
    entry = result["risk_ratios"]["exposed"]
    assert entry["rr"] == pytest.approx(np.exp(log_risk["exposed"] - log_risk["unexposed"]), rel=1e-6)
    assert entry["se"] == pytest.approx(np.sqrt(variance), rel=1e-5)
    assert result["proportions"]["exposed"] == pytest.approx(np.exp(log_risk["exposed"]))
    assert (result["method"], result["variance"]) == ("log-binomial", "robust sandwich (HC0)")


def test_risks_at_is_one_minus_km_at_the_horizon():
    data = two_by_two()
    risks = {label: risk.to_json()
             for label, risk in risks_at(data, "days", "died", "arm", 90, reference_group="unexposed").items()}
    # unexposed: one censored on day 10, then 9 deaths on day 90 among 18 at risk
    assert risks["unexposed"]["risk"] == pytest.approx(0.5)
    # exposed: 6 of 22 die on day 30, nobody else dies by day 90
    assert risks["exposed"]["risk"] == pytest.approx(6 / 22)
    # 95% CIs by hand: the log-log (exponential Greenwood) interval of S at the horizon,
    # S^exp(±z·se) with se = sqrt(Σ d / (n (n − d))) / |log S|, turned into risks 1 − S.
    z = 1.959963984540054
    for group, s, greenwood in (("exposed", 16 / 22, 6 / (22 * 16)), ("unexposed", 9 / 18, 9 / (18 * 9))):
        se = np.sqrt(greenwood) / abs(np.log(s))
        assert risks[group]["ci_lower"] == pytest.approx(1 - s ** np.exp(-z * se), rel=1e-9), group
        assert risks[group]["ci_upper"] == pytest.approx(1 - s ** np.exp(z * se), rel=1e-9), group
    assert risks["exposed"]["events_by_horizon"] == 6


def test_log_binomial_on_the_boundary_falls_back_to_modified_poisson_and_says_so():
    rng = np.random.default_rng(1)
    n = 300
    score = rng.uniform(0, 10, n)
    arm = rng.choice(["a", "b"], n)
    died = rng.binomial(1, np.minimum(1, 0.08 * np.exp(0.26 * score)))  # risk reaches 1 at high scores
    data = pd.DataFrame({"t": np.where(died == 1, 30, 365), "e": died, "arm": arm, "score": score})
    result = risk_ratio_model(data, "t", "e", "arm", 90, ["score"], reference_group="a").to_json()
    assert result["method"] == "modified Poisson (Zou 2004)"
    assert result["fallback_reason"].startswith("log-binomial regression failed")
    assert result["variance"] == "robust sandwich (HC0)"
    # the Poisson score equations hold, and the SE is the Zou sandwich computed here
    X = np.column_stack([np.ones(n), arm == "b", score]).astype(float)
    beta = np.array([np.log(result["risk_ratios"]["b"]["rr"]) if i == 1 else 0 for i in range(3)], float)
    fitted = optimize.root(lambda b: X.T @ (died - np.exp(X @ b)), np.r_[np.log(died.mean()), 0, 0]).x
    assert fitted[1] == pytest.approx(beta[1], abs=1e-6)
    mu = np.exp(X @ fitted)
    bread = np.linalg.inv(X.T @ (X * mu[:, None]))
    sandwich = bread @ (X.T @ (X * ((died - mu) ** 2)[:, None])) @ bread
    assert result["risk_ratios"]["b"]["se"] == pytest.approx(np.sqrt(sandwich[1, 1]), rel=1e-4)


def test_risk_ratio_errors_when_a_group_has_no_events_by_the_horizon():
    data = two_by_two().assign(died=lambda d: np.where(d.arm == "exposed", 0, d.died))
    with pytest.raises(UserError, match="group 'exposed' of column 'arm' has no events by day 90"):
        risk_ratio_model(data, "days", "died", "arm", 90)


# ---------------------------------------------------------------- competing risks


def hand_aalen_johansen(times, types, kind, at):
    times, types = np.asarray(times, float), np.asarray(types)
    survival, incidence = 1.0, 0.0
    for t in np.unique(times[types != 0]):
        if t > at:
            break
        n = (times >= t).sum()
        incidence += survival * ((times == t) & (types == kind)).sum() / n
        survival *= 1 - ((times == t) & (types != 0)).sum() / n
    return incidence


def test_cumulative_incidence_matches_hand_aalen_johansen_with_ties_across_types():
    # day 4: a type-1, a type-2 and a censoring tie; day 6 (a horizon) has a type-1 and a type-2
    times = [1, 2, 3, 4, 4, 4, 5, 6, 6, 7, 8, 9, 10, 10]
    types = [1, 0, 2, 1, 2, 0, 1, 1, 2, 0, 2, 1, 0, 1]
    data = pd.DataFrame({"t": times, "kind": types})
    at = [0, 3.5, 4, 6, 9.5]
    result = aalen_johansen(data, "t", "kind", at).to_json()
    assert result["event_types"] == ["1", "2"]
    for kind in (1, 2):
        got = [entry["cif"] for entry in result["by_group"]["all"]["cumulative_incidence"][str(kind)]]
        assert got == pytest.approx([hand_aalen_johansen(times, types, kind, t) for t in at], abs=1e-12)
    # the two incidences add up to 1 - KM of any event
    km = fit_km(times, np.array(types) != 0)
    total = sum(result["by_group"]["all"]["cumulative_incidence"][k][3]["cif"] for k in ("1", "2"))
    assert total == pytest.approx(1 - km.survival_function_.loc[6.0].iloc[0], abs=1e-12)
    entry = result["by_group"]["all"]["cumulative_incidence"]["1"][3]
    assert entry["ci_lower"] < entry["cif"] < entry["ci_upper"]
    # reproducible: no random jitter
    assert aalen_johansen(data, "t", "kind", at).to_json() == result


# ---------------------------------------------------------------- plot and small cells


def test_at_risk_table_shows_counts_1_to_10_as_less_than_11():
    assert [small_cell(n) for n in (0, 1, 10, 11, 1234)] == ["0", "<11", "<11", "11", "1,234"]
    data = pd.DataFrame({"t": list(range(1, 16)) + list(range(1, 6)), "g": ["a"] * 15 + ["b"] * 5})
    table = at_risk_table(data, "t", [0, 5, 6, 16], group="g")
    # a: 15 at 0, 11 still followed on day 5 (days 5..15), 10 on day 6; b: 5, 1, 0, 0
    assert table == {"a": ["15", "11", "<11", "0"], "b": ["<11", "<11", "0", "0"]}
    assert at_risk_table(data, "t", [0, 6], group="g", suppress_small=False)["a"] == ["15", "10"]


def saved_figures(monkeypatch) -> list:
    """The matplotlib figures saved while the test runs, to read what the image shows."""
    from matplotlib.figure import Figure

    saved, original = [], Figure.savefig

    def keep(figure, *args, **kwargs):
        saved.append(figure)
        return original(figure, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    return saved


def test_km_plot_shows_each_arm_its_curve_and_the_numbers_at_risk(tmp_path, monkeypatch):
    figures = saved_figures(monkeypatch)
    # a: 15 persons, one dies each day 1..15; b: 5 persons censored on days 1..5
    data = pd.DataFrame({"t": list(range(1, 16)) + list(range(1, 6)), "e": [1] * 15 + [0] * 5,
                         "g": ["a"] * 15 + ["b"] * 5})
    path = plot_km(data, "t", "e", tmp_path / "curves" / "km.png", group="g", at_risk_times=[0, 5, 6, 16],
                   reference_group="a")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (figure,) = figures
    curves, table = figure.axes
    assert [t.get_text() for t in curves.get_legend().get_texts()] == ["a (n=15)", "b (n=<11)"]
    # the at-risk table under the plot: a row per arm, a cell per time, small counts as <11
    cells = sorted(((round(t.get_position()[1]), t.get_position()[0], t.get_text()) for t in table.texts))
    assert cells == [(0, 0, "15"), (0, 5, "11"), (0, 6, "<11"), (0, 16, "0"),
                     (1, 0, "<11"), (1, 5, "<11"), (1, 6, "0"), (1, 16, "0")]
    assert [t.get_text() for t in table.get_yticklabels()] == ["a", "b"]
    # arm a's step curve drops by 1/15 at each death; arm b stays at 1
    a_line, b_line = curves.get_lines()[:2]
    assert a_line.get_ydata()[-1] == pytest.approx(0.0) and min(b_line.get_ydata()) == 1.0
    assert list(curves.get_xticks()) == [0, 5, 6, 16]


# ---------------------------------------------------------------- whole analysis, input checks, CLI


def test_survival_analysis_is_json_serialisable_and_consistent():
    data = cox_data().assign(kind=lambda d: np.where(d.event == 1, 1 + (d.id % 3 == 0), 0))
    results = survival_analysis(data, "time", "event", "arm", ["age", "stage"], horizon=20, event_type="kind",
                                reference_group="control", cluster="pair").to_json()
    text = json.dumps(results, allow_nan=False)
    assert json.loads(text)["reference_group"] == "control"
    assert results["n"] == 60 and results["events"] == int(data.event.sum())
    assert sum(g["n"] for g in results["groups"].values()) == 60
    assert results["cox"]["adjusted"]["variance"] == "robust sandwich clustered on 'pair'"
    assert results["risk"]["rr_crude"]["variance"] == "robust sandwich clustered on 'pair'"
    # 1 - KM equals the sum of the cause-specific incidences at the horizon
    for level in ("control", "treated"):
        cif = results["competing_risks"]["by_group"][level]["cumulative_incidence"]
        assert cif["1"][0]["cif"] + cif["2"][0]["cif"] == pytest.approx(results["risk"]["by_group"][level]["risk"])


@pytest.mark.parametrize("column, value, message", [
    ("time", -3, "column 'time', data row 5: negative time"),
    ("time", "soon", "column 'time', data row 5: not a number"),
    ("event", 2, "column 'event', data row 5: the event must be 0 (censored) or 1 (event)"),
    ("event", None, "column 'event', data row 5: missing value"),
    ("arm", None, "column 'arm', data row 5: missing value"),
])
def test_bad_values_name_the_column_and_the_first_bad_row(column, value, message):
    data = cox_data().astype({column: object})
    data.loc[[4, 9], column] = value
    with pytest.raises(UserError) as caught:
        prepare(data, "time", "event", "arm")
    assert message in str(caught.value)
    assert "2 row(s) like this" in str(caught.value)


def test_missing_column_and_double_roles_are_user_errors():
    with pytest.raises(MissingInputError, match="has no column 'arms'"):
        prepare(cox_data(), "time", "event", "arms")
    with pytest.raises(UserError, match="'arm' is given both as --group and as a covariate"):
        prepare(cox_data(), "time", "event", "arm", ["age", "arm"])


def write_csv(tmp_path):
    path = tmp_path / "matched.csv"
    data = pd.DataFrame({"days": KM_TIMES + [4, 6, 7, 9, 10, 11, 13, 15, 16, 20],
                         "died": KM_EVENTS + [1, 0, 1, 1, 0, 1, 1, 0, 1, 0],
                         "arm": ["untreated"] * 10 + ["sorafenib"] * 10,
                         "age": [70, 81, 67, 75, 79, 68, 90, 72, 77, 74, 71, 80, 69, 76, 78, 70, 88, 73, 79, 75],
                         "pair_id": list(range(10)) * 2})
    data.to_csv(path, index=False)
    return path, data


def test_cli_writes_results_and_plot(tmp_path, capsys):
    path, data = write_csv(tmp_path)
    out = tmp_path / "out"
    code = main(["--quiet", "survival", "--data", str(path), "--time", "days", "--event", "died", "--group", "arm",
                 "--reference", "untreated", "--covariates", "age", "--horizon", "5", "--cluster", "pair_id",
                 "--out", str(out)])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert (out / "km.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list(results["groups"]) == ["untreated", "sorafenib"]
    untreated = results["groups"]["untreated"]
    assert (untreated["n"], untreated["events"]) == (10, 7)
    assert untreated["median"]["days"]["estimate"] == 6  # the hand median of the KM test
    assert untreated["median"]["months"]["estimate"] == pytest.approx(6 / 30.4375)
    assert (untreated["q25"]["days"]["estimate"], untreated["q75"]["days"]["estimate"]) == (3, 12)
    chi2, p = hand_logrank(data.days, data.died, data.arm)
    assert results["logrank"]["p"] == pytest.approx(p, rel=1e-8)
    hr = results["cox"]["crude"]["hazard_ratios"]["sorafenib"]
    assert hr["ci_lower"] < hr["hr"] < hr["ci_upper"]
    assert results["cox"]["adjusted"]["covariates"] == ["age"]
    assert "any_violation" in results["cox"]["adjusted"]["ph_check"]
    # day 5: untreated 1 - 0.583 (KM); for the ratio, the person censored on day 3 is left out:
    # untreated 4 deaths by day 5 of 9 known, sorafenib 1 (day 4) of 10
    assert results["risk"]["by_group"]["untreated"]["risk"] == pytest.approx(1 - 0.7 * 5 / 6)
    assert results["risk"]["rr_crude"]["risk_ratios"]["sorafenib"]["rr"] == pytest.approx((1 / 10) / (4 / 9))
    assert results["risk"]["rr_crude"]["n_status_known"] == 19
    printed = capsys.readouterr().out
    assert "median months (95% CI)" in printed and "HR sorafenib vs untreated (crude)" in printed
    assert "results.json" in printed


@pytest.mark.parametrize("args, message", [
    (["--time", "days", "--event", "arm"], "column 'arm', data row 1: the event must be 0 (censored) or 1 (event)"),
    (["--time", "day", "--event", "died"], "has no column 'day'"),
    (["--time", "days", "--event", "died", "--group", "arm", "--reference", "placebo"],
     "reference group 'placebo' has no rows"),
])
def test_cli_bad_input_exits_1_with_one_line(tmp_path, capsys, args, message):
    path, _ = write_csv(tmp_path)
    assert main(["--quiet", "survival", "--data", str(path), *args, "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("cohortlake survival: error: ") and message in err
    assert len(err.splitlines()) == 1


def test_cli_reads_parquet_with_weights_and_event_types(tmp_path, capsys):
    data = cox_data().assign(w=lambda d: 1 + (d.id % 3) * 0.5,
                             kind=lambda d: np.where(d.event == 1, 1 + (d.id % 4 == 0), 0))
    data.to_parquet(tmp_path / "weighted.parquet")
    out = tmp_path / "out"
    assert main(["--quiet", "survival", "--data", str(tmp_path / "weighted.parquet"), "--time", "time", "--event",
                 "event", "--group", "arm", "--weights", "w", "--event-type", "kind", "--horizon", "20",
                 "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["reference_group"] == "control"  # first in sorted order without --reference
    assert results["groups"]["control"]["weighted_n"] == pytest.approx(data.loc[data.arm == "control", "w"].sum())
    assert results["cox"]["crude"]["variance"] == "robust sandwich (case weights)"
    assert results["competing_risks"]["event_types"] == ["1", "2"]
    assert any("case weights 'w'" in note for note in results["notes"])
    assert "competing risks (Aalen-Johansen)" in capsys.readouterr().out


def test_cli_rejects_a_file_type_it_cannot_read(tmp_path, capsys):
    path = tmp_path / "data.xlsx"
    path.write_text("x")
    assert main(["survival", "--data", str(path), "--time", "t", "--event", "e", "--out", str(tmp_path)]) == 1
    assert "unknown file type '.xlsx'" in capsys.readouterr().err


def test_results_are_dataclasses_whose_json_is_results_json_and_reads_back():
    from cohortlake.survival import SurvivalResults

    data = cox_data().assign(kind=lambda d: np.where(d.event == 1, 1 + (d.id % 3 == 0), 0))
    options = dict(horizon=20, event_type="kind", reference_group="control", cluster="pair")
    analysis = survival_analysis(data, "time", "event", "arm", ["age", "stage"], **options)
    as_json = survival_analysis(data, "time", "event", "arm", ["age", "stage"], **options).to_json()
    assert analysis.to_json() == as_json
    assert SurvivalResults.from_json(json.loads(json.dumps(as_json))) == analysis
    hr = analysis.cox.adjusted.hazard_ratios["treated"]
    assert hr.hr == as_json["cox"]["adjusted"]["hazard_ratios"]["treated"]["hr"]
    assert analysis.primary_cox is analysis.cox.adjusted
    assert list(analysis.cox.adjusted.summary.index) == ["treated", "age", "stage=regional"]  # group levels, then terms
    assert analysis.groups["control"].median.days.estimate == as_json["groups"]["control"]["median"]["days"]["estimate"]
