"""The matching stage without Spark: matcher vs a plain O(n²) reference, hand-made cases,
balance against hand computation, propensity-model errors, weights, and `cohortlake psmatch`."""

from __future__ import annotations

import contextlib
import io
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cohortlake.matching.match as match_module
from cohortlake.cli import main
from cohortlake.errors import UserError
from cohortlake.matching import (
    MatchingSettings, balance_table, caliper_width, design_matrix, equipoise, exact_strata, fit_ps, iptw,
    love_plot, match_on_score, match_ps, overlap_weights, parse_matching, preference_score, run_psmatch,
    treated_indicator,
)
from cohortlake.matching.balance import BALANCE_COLUMNS
from ps_data import simulated

ORDERS = ("nearest", "largest", "smallest", "random", "data")


# -- the reference: greedy matching written plainly, O(n²) per step ------------------------

def reference_pairs(score, treated, caliper, ratio=1, replacement=False, order="nearest", seed=None, strata=None):
    """(treated_row, control_row, round) of greedy matching, by the rules in match.py's docstring."""
    n = len(score)
    strata = [0] * n if strata is None else list(strata)
    caliper = math.inf if caliper is None else caliper
    treated_rows = [i for i in range(n) if treated[i]]
    control_rows = [i for i in range(n) if not treated[i]]

    def allowed(t, c):
        return strata[t] == strata[c] and abs(score[t] - score[c]) <= caliper

    pairs = []
    if replacement:
        for t in treated_rows:
            nearest = sorted((abs(score[t] - score[c]), c) for c in control_rows if allowed(t, c))[:ratio]
            pairs += [(t, c, k + 1) for k, (_, c) in enumerate(nearest)]
        return pairs
    if order == "largest":
        sequence = sorted(treated_rows, key=lambda t: (-score[t], t))
    elif order == "smallest":
        sequence = sorted(treated_rows, key=lambda t: (score[t], t))
    elif order == "random":
        sequence = [treated_rows[i] for i in np.random.default_rng(seed).permutation(len(treated_rows))]
    else:
        sequence = list(treated_rows)
    free = set(control_rows)
    eligible = set(treated_rows)
    for round_no in range(1, ratio + 1):
        matched_now = set()
        if order == "nearest":
            while True:
                candidates = [(abs(score[t] - score[c]), t, c) for t in eligible - matched_now for c in free
                              if allowed(t, c)]
                if not candidates:
                    break
                _, t, c = min(candidates)
                matched_now.add(t)
                free.discard(c)
                pairs.append((t, c, round_no))
        else:
            for t in sequence:
                if t not in eligible:
                    continue
                candidates = [(abs(score[t] - score[c]), c) for c in free if allowed(t, c)]
                if candidates:
                    _, c = min(candidates)
                    free.discard(c)
                    matched_now.add(t)
                    pairs.append((t, c, round_no))
        eligible = matched_now
    return pairs


def fast_pairs(result):
    return sorted((int(t), int(c), int(r)) for t, c, r in
                  zip(result.pairs["treated_row"], result.pairs["control_row"], result.pairs["round"]))


def matched_to(result, control_row):
    """The treated row a control was matched to (without replacement)."""
    pairs = result.pairs
    return int(pairs.loc[pairs["control_row"] == control_row, "treated_row"].iloc[0])


# -- hand-made cases ----------------------------------------------------------------------

def test_equal_distance_goes_to_the_earlier_control_row():
    # treated row 0 at 5; controls at 6 (row 1) and 4 (row 2): equal distance 1
    result = match_on_score([5, 6, 4], [True, False, False], caliper=None)
    assert fast_pairs(result) == [(0, 1, 1)]
    # the same with the rows swapped: now the control at 4 is the earlier row
    result = match_on_score([5, 4, 6], [True, False, False], caliper=None)
    assert fast_pairs(result) == [(0, 1, 1)]


def test_equal_scores_are_used_in_row_order():
    # three controls at 0 in rows 3, 1, 2 order of appearance irrelevant: rows 1, 2, 3 are taken in turn
    score = [0.0, 0.0, 0.0, 0.0, 0.1, 0.2, 0.3]
    treated = [False, False, False, False, True, True, True]
    result = match_on_score(score, treated, caliper=None, order="data")
    assert fast_pairs(result) == [(4, 0, 1), (5, 1, 1), (6, 2, 1)]
    result = match_on_score(score, treated, caliper=None, order="largest")
    assert fast_pairs(result) == [(4, 2, 1), (5, 1, 1), (6, 0, 1)]


def test_nearest_order_breaks_equal_pairs_by_the_earlier_treated_row():
    # treated rows 0 and 1 at -1 and +1, one control at 0
    result = match_on_score([-1, 1, 0], [True, True, False], caliper=None, order="nearest")
    assert fast_pairs(result) == [(0, 2, 1)]
    result = match_on_score([1, -1, 0], [True, True, False], caliper=None, order="nearest")
    assert fast_pairs(result) == [(0, 2, 1)]


def test_caliper_boundary_is_inclusive():
    score, treated = [0.0, 2.0], [True, False]
    assert fast_pairs(match_on_score(score, treated, caliper=2.0)) == [(0, 1, 1)]
    assert fast_pairs(match_on_score(score, treated, caliper=np.nextafter(2.0, 0))) == []
    assert fast_pairs(match_on_score(score, treated, caliper=2.0, replacement=True)) == [(0, 1, 1)]
    assert fast_pairs(match_on_score(score, treated, caliper=1.999, replacement=True)) == []


def test_standardized_caliper_uses_the_sd_over_all_persons():
    # group SDs are 0; the SD over everyone (ddof 1, as R's sd) is sqrt(100/3)
    score = np.array([0.0, 0.0, 10.0, 10.0])
    assert caliper_width(score, 0.2) == pytest.approx(0.2 * math.sqrt(100 / 3))
    assert caliper_width(score, 0.2, in_sd=False) == 0.2
    assert caliper_width(score, None) is None
    # match_ps: logit scale, caliper 0.2 SD of the logit
    ps = np.array([0.5, 0.6, 0.52, 0.9])
    treated = np.array([True, True, False, False])
    logits = np.log(ps / (1 - ps))
    result = match_ps(ps, treated)
    assert result.caliper == pytest.approx(0.2 * np.std(logits, ddof=1))
    assert fast_pairs(result) == [(0, 2, 1)]  # 0.6 → 0.9 is beyond 0.2 SD of the logit
    assert result.pairs["distance"].iloc[0] == pytest.approx(logits[2] - logits[0])
    on_ps = match_ps(ps, treated, scale="probability", caliper=None)
    assert sorted(on_ps.pairs["distance"].round(12)) == [0.02, 0.3]


def test_each_order_picks_a_different_treated_person():
    # one control at 0; treated: row 0 at -1, row 1 at +3, row 2 at -4, row 3 at +0.5
    score = [-1.0, 3.0, -4.0, 0.5, 0.0]
    treated = [True, True, True, True, False]
    winner = {order: matched_to(match_on_score(score, treated, caliper=None, order=order, seed=5), 4)
              for order in ORDERS}
    assert winner["nearest"] == 3
    assert winner["largest"] == 1
    assert winner["smallest"] == 2
    assert winner["data"] == 0
    assert winner["random"] == [0, 1, 2, 3][np.random.default_rng(5).permutation(4)[0]]
    assert len({winner[o] for o in ("nearest", "largest", "smallest", "data")}) == 4


def test_random_order_is_reproducible_by_seed():
    rng = np.random.default_rng(0)
    score = rng.normal(size=400)
    treated = rng.random(400) < 0.5
    first = match_on_score(score, treated, caliper=None, order="random", seed=1)
    again = match_on_score(score, treated, caliper=None, order="random", seed=1)
    other = match_on_score(score, treated, caliper=None, order="random", seed=2)
    assert fast_pairs(first) == fast_pairs(again)
    assert fast_pairs(first) != fast_pairs(other)
    with pytest.raises(UserError, match="seed"):
        match_on_score(score, treated, caliper=None, order="random")


def test_with_replacement_a_control_serves_several_and_weights_add_up():
    # treated rows 0 and 1 at 1.0 and 1.2; control row 2 at 1.1, control row 3 far away
    result = match_on_score([1.0, 1.2, 1.1, 9.0], [True, True, False, False], caliper=0.5, replacement=True)
    assert fast_pairs(result) == [(0, 2, 1), (1, 2, 1)]
    assert result.weight.tolist() == [1.0, 1.0, 2.0, 0.0]
    assert result.match_id.tolist() == [1, 2, 1, 0]  # the control carries the smallest id it serves
    assert result.n_matched_controls == 1
    without = match_on_score([1.0, 1.2, 1.1, 9.0], [True, True, False, False], caliper=0.5)
    assert without.n_matched_treated == 1


def test_ratio_two_matches_in_rounds():
    # treated A (row 0) at 0, B (row 1) at 1; controls at 0.4, 0.45, 2.0; data order
    score = [0.0, 1.0, 0.4, 0.45, 2.0]
    treated = [True, True, False, False, False]
    result = match_on_score(score, treated, caliper=None, ratio=2, order="data")
    # round 1: A takes 0.4, B takes 0.45; round 2: A takes 2.0, B finds none left
    assert fast_pairs(result) == [(0, 2, 1), (0, 4, 2), (1, 3, 1)]
    assert result.weight.tolist() == [1.0, 1.0, 0.5, 1.0, 0.5]
    assert result.match_id.tolist() == [1, 2, 1, 2, 1]
    # with a caliper of 1.2, A's second control (2.0) is out of reach
    capped = match_on_score(score, treated, caliper=1.2, ratio=2, order="data")
    assert fast_pairs(capped) == [(0, 2, 1), (1, 3, 1), (1, 4, 2)]
    assert capped.weight.tolist() == [1.0, 1.0, 1.0, 0.5, 0.5]


def test_exact_matching_stays_within_strata():
    frame = pd.DataFrame({"score": [0.0, 0.0, 5.0, 1.0], "arm": [1, 0, 0, 1], "sex": ["F", "M", "F", "M"]})
    strata = exact_strata(frame, ["sex"])
    treated = frame["arm"].to_numpy() == 1
    result = match_on_score(frame["score"], treated, caliper=None, strata=strata)
    assert fast_pairs(result) == [(0, 2, 1), (3, 1, 1)]
    capped = match_on_score(frame["score"], treated, caliper=1.0, strata=strata)
    assert fast_pairs(capped) == [(3, 1, 1)]
    unstratified = match_on_score(frame["score"], treated, caliper=None)
    assert fast_pairs(unstratified) == [(0, 1, 1), (3, 2, 1)]
    with pytest.raises(UserError, match="'sex' has 1 missing"):
        exact_strata(frame.assign(sex=["F", None, "F", "M"]), ["sex"])


def test_scores_differing_by_rounding_noise_are_ties():
    # -4e-38 and 0 are both at distance 1 from -1 in floating point; on the matcher's grid
    # they are the same score, so the earlier row wins (a per-side "nearest score" rule
    # would take row 2, and exact real arithmetic would too)
    result = match_on_score([0.0, -1.0, -4.02e-38], [False, True, False], caliper=None)
    assert fast_pairs(result) == [(1, 0, 1)]
    result = match_on_score([-4.02e-38, -1.0, 0.0], [False, True, False], caliper=None)
    assert fast_pairs(result) == [(1, 0, 1)]
    # but a difference of a few ulps of the largest score is kept
    near = 1.0 + 4 * np.finfo(float).eps
    result = match_on_score([near, 3.0, 1.0], [False, True, False], caliper=None)
    assert fast_pairs(result) == [(1, 0, 1)]


def test_match_ids_follow_treated_data_order_and_unmatched_weigh_zero():
    result = match_on_score([3.0, 0.0, 10.0, 3.1, 0.1], [True, True, True, False, False], caliper=0.5)
    assert result.match_id.tolist() == [1, 2, 0, 1, 2]
    assert result.weight.tolist() == [1.0, 1.0, 0.0, 1.0, 1.0]
    assert (result.n_treated, result.n_controls, result.n_matched_treated) == (3, 2, 2)


# -- generated cases against the reference --------------------------------------------------

@st.composite
def problems(draw):
    n = draw(st.integers(1, 24))
    # scores on a binary grid (exact in floating point, so the reference's plain abs() is
    # exact too): coarse grids make many exact ties and distances equal to the caliper
    denominator = draw(st.sampled_from([2, 4, 2**20]))
    score = [k / denominator for k in draw(st.lists(st.integers(-3 * denominator, 3 * denominator),
                                                   min_size=n, max_size=n))]
    treated = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    caliper = draw(st.sampled_from([None, 0.0, 0.25, 0.5, 1.0, 2.0]))
    strata = draw(st.one_of(st.none(), st.lists(st.integers(0, 2), min_size=n, max_size=n)))
    return score, treated, caliper, strata


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem=problems(), order=st.sampled_from(ORDERS), ratio=st.integers(1, 3), replacement=st.booleans(),
       seed=st.integers(0, 50))
def test_fast_matcher_equals_the_reference(problem, order, ratio, replacement, seed):
    score, treated, caliper, strata = problem
    result = match_on_score(score, treated, caliper=caliper, ratio=ratio, replacement=replacement, order=order,
                            seed=seed, strata=strata)
    assert fast_pairs(result) == sorted(reference_pairs(score, treated, caliper, ratio, replacement, order, seed,
                                                        strata))


@pytest.mark.parametrize("min_pairs, min_share, lists_above", [(1, 0.0, 0.0), (10**9, 1.0, 0.0), (10**9, 1.0, 10.0)])
@settings(max_examples=120, deadline=None)
@given(problem=problems(), ratio=st.integers(1, 2), order=st.sampled_from(["nearest", "largest", "random"]))
def test_same_matches_whichever_phase_or_container(problem, ratio, order, min_pairs, min_share, lists_above):
    """order nearest: vectorised mutual-nearest rounds to the end, or one round then the heap;
    the sequential loops on Python lists or on numpy arrays."""
    score, treated, caliper, strata = problem
    names = ("MUTUAL_ROUNDS_MIN_PAIRS", "MUTUAL_ROUNDS_MIN_SHARE", "LISTS_ABOVE_SHARE")
    saved = [getattr(match_module, name) for name in names]
    for name, value in zip(names, (min_pairs, min_share, lists_above)):
        setattr(match_module, name, value)
    try:
        result = match_on_score(score, treated, caliper=caliper, ratio=ratio, strata=strata, order=order, seed=1)
    finally:
        for name, value in zip(names, saved):
            setattr(match_module, name, value)
    assert fast_pairs(result) == sorted(reference_pairs(score, treated, caliper, ratio, False, order, 1, strata))


def test_larger_random_data_against_the_reference():
    rng = np.random.default_rng(11)
    for order in ORDERS:
        score = np.round(rng.normal(size=160) * 8) / 8  # binary grid: exact distances, many ties
        treated = rng.random(160) < 0.4
        result = match_on_score(score, treated, caliper=0.25, ratio=2, order=order, seed=3)
        assert fast_pairs(result) == sorted(reference_pairs(score, treated, 0.25, 2, False, order, 3))


def disagreements(cases=150, seed=21):
    """How many of ``cases`` random problems the fast matcher and the reference disagree on."""
    rng = np.random.default_rng(seed)
    count = 0
    for _ in range(cases):
        n = int(rng.integers(2, 20))
        score = rng.integers(-6, 7, n) / 4
        treated = rng.random(n) < 0.5
        caliper = [None, 0.25, 0.5][int(rng.integers(3))]
        order = ORDERS[int(rng.integers(len(ORDERS)))]
        ratio = int(rng.integers(1, 3))
        result = match_on_score(score, treated, caliper=caliper, ratio=ratio, order=order, seed=4)
        count += fast_pairs(result) != sorted(reference_pairs(score, treated, caliper, ratio, False, order, 4))
    return count


def _strict_caliper(caliper, quantum):
    return math.floor(caliper / quantum) - 1


def _everyone_mutual(self, groups, t_index):
    return t_index


def _take_without_using_up(self, g):
    return self.consumed[g]


@pytest.mark.parametrize("target, mutant", [
    (None, None),
    ("_caliper_on_grid", _strict_caliper),
    ("_Problem._nearest_treated", _everyone_mutual),
    ("_FreeGroups._take", _take_without_using_up),
])
def test_the_reference_comparison_catches_a_wrong_matcher(monkeypatch, target, mutant):
    """Every comparison above could fail: matchers with a wrong rule disagree with the reference."""
    if target is None:
        assert disagreements() == 0
        return
    owner = match_module
    *path, name = target.split(".")
    for part in path:
        owner = getattr(owner, part)
    monkeypatch.setattr(owner, name, mutant)
    assert disagreements() > 0


# -- balance ------------------------------------------------------------------------------------

def test_smd_and_variance_ratio_against_hand_computation():
    columns = pd.DataFrame({"x": [1.0, 2.0, 3.0, 2.0, 4.0, 6.0, 8.0], "flag": [1, 1, 0, 0, 0, 1, 0]})
    treated = np.array([1, 1, 1, 0, 0, 0, 0], dtype=bool)
    weight = np.array([1, 1, 1, 1, 1, 0, 0], dtype=float)  # after: controls at 2 and 4 only
    table = balance_table(columns, treated, weight).set_index("covariate")
    # x: treated mean 2, var 1; controls mean 5, var 20/3; pooled SD sqrt((1 + 20/3) / 2)
    pooled = math.sqrt((1 + 20 / 3) / 2)
    assert table.loc["x", "smd_before"] == pytest.approx(-3 / pooled)
    assert table.loc["x", "smd_after"] == pytest.approx((2 - 3) / pooled)  # before-matching denominator
    assert table.loc["x", "var_ratio_before"] == pytest.approx(1 / (20 / 3))
    assert table.loc["x", "var_ratio_after"] == pytest.approx(1 / 2)  # controls 2, 4: variance 2
    # flag (0/1): p(1-p) variances; treated 2/3, controls 1/4; no variance ratio
    p1, p0 = 2 / 3, 1 / 4
    flag_sd = math.sqrt((p1 * (1 - p1) + p0 * (1 - p0)) / 2)
    assert table.loc["flag", "smd_before"] == pytest.approx((p1 - p0) / flag_sd)
    assert table.loc["flag", "smd_after"] == pytest.approx((p1 - 0) / flag_sd)
    assert math.isnan(table.loc["flag", "var_ratio_before"])
    treated_sd = balance_table(columns, treated, weight, denominator="treated").set_index("covariate")
    assert treated_sd.loc["x", "smd_before"] == pytest.approx(-3.0)
    assert treated_sd.loc["x", "smd_after"] == pytest.approx(-1.0)


def test_balance_keeps_every_level_of_a_categorical_covariate():
    frame = pd.DataFrame({"race": ["white", "black", "other", "white", "white", "black"],
                          "age": [60, 70, 65, 80, 75, 72]})
    design = design_matrix(frame, ["race", "age"])
    assert list(design.balance.columns) == ["race=black", "race=other", "race=white", "age"]
    assert list(design.model.columns) == ["race=other", "race=white", "age"]  # 'black' is the reference
    assert design.reference == {"race": "black"}
    table = balance_table(design.balance, np.array([1, 1, 1, 0, 0, 0], dtype=bool))
    assert table["covariate"].tolist() == ["race=black", "race=other", "race=white", "age"]
    assert table.set_index("covariate").loc["race=other", "smd_before"] > 0
    assert table["smd_after"].isna().all()


def test_preference_score_and_equipoise():
    ps = np.array([0.9, 0.5, 0.1, 0.5])
    treated = np.array([True, False, True, False])  # share 0.5: preference = ps
    assert preference_score(ps, treated) == pytest.approx(ps)
    assert equipoise(ps, treated) == 0.5
    assert equipoise(ps, treated, (0.05, 0.95)) == 1.0
    # share 0.25: a person with ps 0.25 has preference 0.5; with ps 0.5 it is 0.75
    treated = np.array([True, False, False, False])
    assert preference_score(np.array([0.25, 0.5, 0.25, 0.25]), treated) == pytest.approx([0.5, 0.75, 0.5, 0.5])
    assert equipoise(np.array([0.25, 0.5, 0.25, 0.25]), treated) == 0.75


def test_love_plot_shows_each_covariate_before_and_after_and_the_threshold(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    saved, original = [], Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda figure, *a, **k: (saved.append(figure), original(figure, *a, **k))[1])
    table = pd.DataFrame({"covariate": ["a", "b", "c"], "smd_before": [0.3, -0.05, 0.12],
                          "smd_after": [0.02, -0.01, np.nan]})
    path = love_plot(table, tmp_path / "love.png", threshold=0.1)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (axes,) = saved[0].axes
    # largest |SMD| before at the top: rows from the bottom are b, c, a
    assert [t.get_text() for t in axes.get_yticklabels()] == ["b", "c", "a"]
    before, after = axes.collections
    assert before.get_offsets().tolist() == [[0.05, 0], [0.12, 1], [0.3, 2]]
    # c has no SMD after matching: no point is drawn for it
    points = [p for p in after.get_offsets().tolist() if p[0] is not None]  # masked (NaN) rows draw nothing
    assert points == [[0.01, 0], [0.02, 2]]
    (threshold,) = [line for line in axes.get_lines() if line.get_linestyle() == "--"]
    assert list(threshold.get_xdata()) == [0.1, 0.1]
    assert [t.get_text() for t in axes.get_legend().get_texts()] == ["before", "after", "|SMD| = 0.1"]


# -- propensity model -----------------------------------------------------------------------

def test_fit_ps_recovers_the_true_model():
    frame = simulated(20000, seed=1)
    fit = fit_ps(frame, frame["arm"] == "sorafenib", ["age", "sex", "race", "cirrhosis"])
    coef = fit.coefficients.set_index("term")["coefficient"]
    assert coef["age"] == pytest.approx(0.05, abs=0.01)
    assert coef["sex=M"] == pytest.approx(0.6, abs=0.08)
    assert coef["cirrhosis"] == pytest.approx(0.8, abs=0.08)
    assert abs(coef["race=other"]) < 0.15 and abs(coef["race=white"]) < 0.15
    assert fit.ps == pytest.approx(1 / (1 + np.exp(-fit.logit)))
    assert "statsmodels Logit" in fit.method
    ridge = fit_ps(frame, frame["arm"] == "sorafenib", ["age", "sex", "race", "cirrhosis"], l2=0.05)
    ridge_coef = ridge.coefficients.set_index("term")["coefficient"]
    assert abs(ridge_coef["cirrhosis"]) < abs(coef["cirrhosis"]) - 0.05
    assert "L2 penalty 0.05" in ridge.method


def test_overlap_weights_balance_the_model_covariates_exactly():
    frame = simulated(3000, seed=2)
    treated = (frame["arm"] == "sorafenib").to_numpy()
    fit = fit_ps(frame, treated, ["age", "sex", "cirrhosis"])
    table = balance_table(fit.design.balance, treated, overlap_weights(fit.ps, treated)).set_index("covariate")
    assert table["smd_after"].abs().max() < 1e-6
    assert table.loc["cirrhosis", "smd_before"] > 0.1


def test_iptw_values():
    ps = np.array([0.2, 0.5, 0.8, 0.25])
    treated = np.array([True, True, False, False])
    assert iptw(ps, treated) == pytest.approx([5.0, 2.0, 5.0, 4 / 3])
    assert iptw(ps, treated, "att") == pytest.approx([1.0, 1.0, 4.0, 1 / 3])
    assert iptw(ps, treated, "ate", stabilized=True) == pytest.approx([2.5, 1.0, 2.5, 2 / 3])
    assert iptw(ps, treated, "att", stabilized=True) == pytest.approx([1.0, 1.0, 4.0, 1 / 3])
    assert overlap_weights(ps, treated) == pytest.approx([0.8, 0.5, 0.8, 0.25])
    with pytest.raises(UserError, match="not strictly between 0 and 1"):
        iptw(np.array([1.0, 0.5]), np.array([True, False]))


def test_constant_covariate_is_named():
    frame = simulated(200).assign(region="south")
    with pytest.raises(UserError, match="covariate 'region' is constant"):
        fit_ps(frame, frame["arm"] == "sorafenib", ["age", "region"])
    with pytest.raises(UserError, match="covariate 'one' is constant"):
        fit_ps(frame.assign(one=1.0), frame["arm"] == "sorafenib", ["age", "one"])


def test_missing_values_are_named_with_their_count():
    frame = simulated(200)
    frame.loc[[3, 7, 9], "age"] = np.nan
    with pytest.raises(UserError, match=r"'age' \(3 of 200 rows\)"):
        fit_ps(frame, frame["arm"] == "sorafenib", ["age", "sex"])


def test_separation_by_one_covariate_is_named():
    frame = simulated(400)
    treated = (frame["arm"] == "sorafenib").to_numpy()
    # a level only the treated have
    level = frame.assign(stage=np.where(treated & (np.arange(400) % 5 == 0), "distant", "local"))
    with pytest.raises(UserError, match=r"separation by stage=distant \(\d+ persons, all treated\)"):
        fit_ps(level, treated, ["age", "stage"])
    # a 0/1 flag every treated person has
    flag = frame.assign(prior_tace=np.where(treated, 1, (np.arange(400) % 3 == 0).astype(int)))
    with pytest.raises(UserError, match=r"separation by prior_tace=0 \(\d+ persons, all control\)"):
        fit_ps(flag, treated, ["age", "prior_tace"])
    # a number whose ranges do not overlap
    numeric = frame.assign(dose=np.where(treated, 10.0, 0.0) + np.arange(400) % 3)
    with pytest.raises(UserError, match="separation by dose .*do not overlap"):
        fit_ps(numeric, treated, ["age", "dose"])
    # an L2 penalty is allowed to fit through it
    assert fit_ps(level, treated, ["age", "stage"], l2=0.1).ps.max() < 1


def test_joint_separation_is_caught_after_the_fit():
    rng = np.random.default_rng(4)
    frame = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    treated = (frame["a"] + frame["b"]).to_numpy() > 0  # neither alone separates
    with pytest.raises(UserError, match="jointly separate"):
        fit_ps(frame, treated, ["a", "b"])


def test_collinear_covariates_are_named():
    frame = simulated(300)
    frame["age_months"] = frame["age"] * 12
    with pytest.raises(UserError, match="collinear covariates: age_months"):
        fit_ps(frame, frame["arm"] == "sorafenib", ["age", "age_months"])


def test_treatment_indicator_forms():
    assert treated_indicator(pd.Series([1, 0, 1], name="t")).tolist() == [True, False, True]
    assert treated_indicator(pd.Series([True, False], name="t")).tolist() == [True, False]
    assert treated_indicator(pd.Series(["true", "FALSE", "True"], name="t")).tolist() == [True, False, True]
    assert treated_indicator(pd.Series(["a", "b", "a"], name="arm"), "b").tolist() == [False, True, False]
    with pytest.raises(UserError, match="two text values .*--treated"):
        treated_indicator(pd.Series(["sorafenib", "untreated"], name="arm"))
    with pytest.raises(UserError, match="'arm' has no value 'x'"):
        treated_indicator(pd.Series(["a", "b"], name="arm"), "x")
    with pytest.raises(UserError, match="exactly two values, has 3"):
        treated_indicator(pd.Series(["a", "b", "c"], name="arm"))
    with pytest.raises(UserError, match="0/1, true/false"):
        treated_indicator(pd.Series([0, 1, 2], name="arm"))


# -- settings -------------------------------------------------------------------------------

def test_reference_definition_settings_and_defaults():
    from cohortlake.resources import reference_definition
    from cohortlake.matching import matching_settings
    from cohortlake.spec import load_definition

    settings_ = matching_settings(load_definition(reference_definition()))
    assert settings_.treatment.arm == "sorafenib" and settings_.caliper == 0.2 and settings_.ratio == 1
    assert settings_.caliper_in_sd and settings_.scale.value == "logit" and not settings_.replacement
    defaults = MatchingSettings()
    assert (defaults.order.value, defaults.caliper, defaults.smd_threshold, defaults.equipoise) == \
        ("nearest", 0.2, 0.1, (0.3, 0.7))
    assert parse_matching({"caliper": "none"}).caliper is None
    assert not parse_matching({"caliper": 3, "caliper_scale": "raw"}).caliper_in_sd


@pytest.mark.parametrize("section, message", [
    ({"caliper": 0}, "caliper must be > 0"),
    ({"order": "closest"}, "matching.order: Input should be 'nearest'"),
    ({"order": "random"}, "needs a seed"),
    ({"scale": "probability", "caliper_scale": "sd_of_logit"}, "needs scale: logit"),
    ({"method": "iptw", "ratio": 2}, "ratio only applies to method greedy_nearest_neighbor"),
    ({"l2": -1}, "matching.l2: Input should be greater than or equal to 0"),
    ({"equipoise": [0.7, 0.3]}, "0 <= low < high <= 1"),
    ({"ratoi": 2}, "matching.ratoi: unknown key"),
    ({"smd_denominator": "control"}, "matching.smd_denominator"),
])
def test_bad_settings_name_the_field(section, message):
    with pytest.raises(UserError, match=message):
        parse_matching(section)


# -- psmatch, library and CLI --------------------------------------------------------------

def run_cli(args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_psmatch_cli_end_to_end(tmp_path, suffix):
    frame = simulated(1500, seed=5).assign(person_id=lambda f: np.arange(len(f)) + 1000)
    data = tmp_path / f"persons.{suffix}"
    frame.to_csv(data, index=False) if suffix == "csv" else frame.to_parquet(data)
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(["psmatch", "--data", str(data), "--treatment", "arm", "--treated", "sorafenib",
                                    "--covariates", "age,sex,race,cirrhosis", "--out", str(out)])
    assert code == 0, stderr
    matched = pd.read_csv(out / "matched.csv")
    assert list(matched.columns) == list(frame.columns) + ["ps", "match_id", "weight"]
    assert matched["person_id"].tolist() == frame["person_id"].tolist()
    n_treated = int((frame["arm"] == "sorafenib").sum())
    pairs_of = matched.dropna(subset=["match_id"]).groupby("match_id")["arm"].agg(sorted)
    assert (pairs_of.map(tuple) == ("sorafenib", "untreated")).all()  # 1:1, one of each arm per match_id
    unmatched = matched["match_id"].isna()
    assert (matched.loc[unmatched, "weight"] == 0).all() and (matched.loc[~unmatched, "weight"] == 1).all()
    assert 0.6 * n_treated < (~unmatched & (matched["arm"] == "sorafenib")).sum() <= n_treated
    balance = pd.read_csv(out / "balance.csv")
    assert list(balance.columns) == BALANCE_COLUMNS
    assert balance["covariate"].tolist() == ["age", "sex=F", "sex=M", "race=black", "race=other", "race=white",
                                             "cirrhosis"]
    assert balance["smd_after"].abs().max() < 0.1 < balance["smd_before"].abs().max()
    assert (out / "love_plot.png").read_bytes()[:4] == b"\x89PNG"
    pairs = pd.read_csv(out / "pairs.csv")
    assert len(pairs) == (~unmatched & (matched["arm"] == "sorafenib")).sum()
    assert f"treated {n_treated:,}, controls {len(frame) - n_treated:,}" in stdout
    assert "matched treated" in stdout and "cirrhosis" in stdout


def test_psmatch_cli_options_reach_the_matcher(tmp_path):
    frame = simulated(800, seed=6)
    frame["treated"] = (frame["arm"] == "sorafenib").astype(int)
    data = tmp_path / "persons.csv"
    frame.drop(columns="arm").to_csv(data, index=False)
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(["psmatch", "--data", str(data), "--treatment", "treated",
                                    "--covariates", "age,sex,cirrhosis", "--ratio", "2", "--replace",
                                    "--caliper", "none", "--order", "largest", "--exact", "sex",
                                    "--smd-denominator", "treated", "--out", str(out)])
    assert code == 0, stderr
    matched = pd.read_csv(out / "matched.csv")
    pairs = pd.read_csv(out / "pairs.csv")
    assert len(pairs) == 2 * int(frame["treated"].sum())  # no caliper, with replacement: 2 each
    sex = matched["sex"].to_numpy()
    assert (sex[pairs["treated_row"]] == sex[pairs["control_row"]]).all()
    control_weight = matched.loc[matched["treated"] == 0, "weight"].sum()
    assert control_weight == pytest.approx(frame["treated"].sum())
    assert "1:2, with replacement, order largest, caliper none" in stdout


def test_psmatch_cli_errors_name_the_problem(tmp_path):
    frame = simulated(300, seed=7)
    data = tmp_path / "persons.csv"
    frame.to_csv(data, index=False)
    base = ["psmatch", "--treatment", "arm", "--treated", "sorafenib", "--out", str(tmp_path / "o")]
    code, _, err = run_cli(base + ["--data", str(tmp_path / "nope.csv"), "--covariates", "age"])
    assert code == 1 and "nope.csv: file not found" in err and "Traceback" not in err
    code, _, err = run_cli(base + ["--data", str(data), "--covariates", "age,weight_kg"])
    assert code == 1 and "weight_kg" in err
    code, _, err = run_cli(["psmatch", "--data", str(data), "--treatment", "group", "--covariates", "age",
                            "--out", str(tmp_path / "o")])
    assert code == 1 and "treatment column 'group' not in the data" in err
    code, _, err = run_cli(["psmatch", "--data", str(data), "--treatment", "arm", "--covariates", "age",
                            "--out", str(tmp_path / "o")])
    assert code == 1 and "--treated sorafenib" in err
    code, _, err = run_cli(base + ["--data", str(data), "--covariates", "age", "--order", "random"])
    assert code == 1 and "seed" in err
    text = tmp_path / "persons.txt"
    text.write_text("a,b\n")
    code, _, err = run_cli(base + ["--data", str(text), "--covariates", "age"])
    assert code == 1 and "use .csv or .parquet" in err
    with pytest.raises(SystemExit):
        run_cli(base + ["--data", str(data), "--covariates", "age", "--caliper", "-1"])


def test_run_psmatch_weighting_and_settings_treatment(tmp_path):
    frame = simulated(1000, seed=8)
    settings_ = MatchingSettings(method="overlap_weights", treatment={"arm": "sorafenib", "control": "untreated"})
    report = run_psmatch(frame, "arm", ["age", "sex", "cirrhosis"], settings_, out=tmp_path)
    assert report.data["match_id"].isna().all()
    assert report.balance["smd_after"].abs().max() < 1e-6
    treated = (frame["arm"] == "sorafenib").to_numpy()
    assert report.data["weight"].to_numpy() == pytest.approx(np.where(treated, 1 - report.data["ps"],
                                                                       report.data["ps"]))
    assert report.n_treated == int(treated.sum())
    assert 0 < report.equipoise <= 1
