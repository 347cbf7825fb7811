"""Greedy nearest-neighbour matching on a propensity score, in O(n log n).

Everything that can be done for all persons at once is numpy (sorting, positions,
first candidates, with-replacement matching, weights). Greedy matching *without*
replacement is sequential by nature — who is still free depends on every earlier
choice — so its core is one tight loop over treated persons with amortised
near-constant work each, over controls grouped by distinct score:

* Controls are sorted by (stratum, score, row) and grouped by equal (stratum, score).
  All members of a group are at the same distance from any treated person, so the
  tie-break "earlier row first" makes each group a queue consumed in row order.
* "Nearest free group to the right / left of position p" is a union-find over groups
  with path compression (a group points past itself once emptied).
* ``order: nearest`` (globally nearest pair first, CohortMethod's greedy and MatchIt's
  "closest") is first done in vectorised rounds: every pair whose treated person and
  control are each other's nearest is matched at once (the same pairs the sequential
  greedy would take; see ``_Problem.mutual_nearest``). When a round matches few, the
  rest goes to a heap holding each unmatched treated person's nearest free control; a
  popped pair whose control has been taken is looked up again and pushed back. On
  random data the rounds match all but a few hundred of a million treated persons.
* The other orders (largest, smallest, random, data) are a loop over treated persons
  in that order, each taking its nearest free control (union-find, above).

Rules (each checked against a plain O(n²) matcher in the tests):

* Distance = |score_t - score_c| on the matching scale, computed exactly: scores are
  first rounded to a common grid finer than one ulp of the largest |score| (``_on_grid``),
  so no two distances tie or differ by floating-point rounding alone. A pair is allowed
  when distance ≤ caliper (inclusive; CohortMethod uses strict <) and both are in the
  same exact-matching stratum.
* Ties: for one treated person, equal distances go to the control earlier in data
  order. In ``order: nearest`` equal-distance pairs are taken earlier treated row first.
  ``largest`` / ``smallest`` order treated persons by score, equal scores in data order.
* 1:k (``ratio`` k): in rounds, as CohortMethod and MatchIt do — every treated person
  gets its first control before any gets its second; a person unmatched in a round
  leaves the later rounds.
* With replacement every treated person takes its k nearest controls within the
  caliper, independently of the others; the order does not matter.

Weights (ATT, as MatchIt): a matched treated person 1, each of its k_t controls 1/k_t,
summed over every treated person a control serves when matching with replacement (so
control weights add up to the number of matched treated persons; MatchIt then rescales
control weights to sum to the number of distinct matched controls, which changes no
weighted mean). Unmatched persons weigh 0.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cohortlake.errors import UserError
from cohortlake.spec.matching import Order, Scale

INF = float("inf")


@dataclass(frozen=True)
class MatchResult:
    """Matches of one run. Row arrays are in the input's order."""

    match_id: np.ndarray
    """int64 per row: 1, 2, … shared by a treated person and its controls; 0 = unmatched.
    Ids follow the treated persons' data order. With replacement a control serving
    several treated persons carries the smallest of their ids (``pairs`` has them all)."""
    weight: np.ndarray
    """float per row (see the module docstring); 0 for unmatched persons."""
    pairs: pd.DataFrame
    """One row per (treated, control) pair: match_id, treated_row, control_row, distance, round."""
    treated: np.ndarray = field(repr=False)
    caliper: float | None = None
    """The caliper actually used, in units of the matching scale (None: no caliper)."""
    order: Order = Order.nearest
    ratio: int = 1
    replacement: bool = False

    @property
    def matched(self) -> np.ndarray:
        return self.match_id > 0

    @property
    def n_treated(self) -> int:
        return int(self.treated.sum())

    @property
    def n_controls(self) -> int:
        return int((~self.treated).sum())

    @property
    def n_matched_treated(self) -> int:
        return int((self.matched & self.treated).sum())

    @property
    def n_matched_controls(self) -> int:
        """Distinct controls used at least once."""
        return int((self.matched & ~self.treated).sum())


def logit(ps: np.ndarray) -> np.ndarray:
    ps = np.asarray(ps, dtype=float)
    with np.errstate(divide="ignore"):
        return np.log(ps) - np.log1p(-ps)


def caliper_width(score: np.ndarray, caliper: float | None, in_sd: bool = True) -> float | None:
    """The caliper in units of ``score``: ``caliper`` SDs of ``score`` over all persons, or as is.

    As CohortMethod (``sd()`` of the logit over the whole population) and MatchIt
    (``sd(distance)`` over all units): the SD of the matching scale in the pooled
    sample, not the average of the two groups' variances.
    """
    if caliper is None:
        return None
    if not in_sd:
        return float(caliper)
    score = np.asarray(score, dtype=float)
    return float(caliper) * float(np.std(score, ddof=1)) if len(score) > 1 else 0.0


def exact_strata(frame: pd.DataFrame, columns) -> np.ndarray | None:
    """Stratum code per row for exact matching on ``columns`` (None when there are none)."""
    columns = list(columns or [])
    if not columns:
        return None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise UserError(f"exact-matching column(s) not in the data: {', '.join(missing)}")
    for column in columns:
        nulls = int(frame[column].isna().sum())
        if nulls:
            raise UserError(f"exact-matching column '{column}' has {nulls:,} missing value(s)")
    return frame.groupby(columns, sort=True, observed=True).ngroup().to_numpy(dtype=np.int64)


def match_ps(ps, treated, *, scale: Scale | str = Scale.logit, caliper: float | None = 0.2,
             caliper_in_sd: bool = True, ratio: int = 1, replacement: bool = False,
             order: Order | str = Order.nearest, seed: int | None = None, strata=None,
             score: np.ndarray | None = None) -> MatchResult:
    """Match treated to control persons on their propensity score ``ps`` (CohortMethod defaults).

    ``score`` may give the matching-scale values directly (e.g. the model's linear
    predictor, exact where ps rounds to 0 or 1); otherwise logit(ps) or ps.
    """
    scale = Scale(scale)
    if score is None:
        score = logit(ps) if scale is Scale.logit else np.asarray(ps, dtype=float)
    width = caliper_width(score, caliper, caliper_in_sd)
    return match_on_score(score, treated, caliper=width, ratio=ratio, replacement=replacement,
                          order=order, seed=seed, strata=strata)


def match_on_score(score, treated, *, caliper: float | None, ratio: int = 1, replacement: bool = False,
                   order: Order | str = Order.nearest, seed: int | None = None, strata=None) -> MatchResult:
    """Greedy nearest-neighbour matching on ``score`` with an absolute ``caliper`` (or None)."""
    score = np.asarray(score, dtype=float)
    treated = np.asarray(treated, dtype=bool)
    order = Order(order)
    n = len(score)
    if treated.shape != (n,):
        raise ValueError("score and treated differ in length")
    if ratio < 1:
        raise UserError(f"ratio must be at least 1 (got {ratio})")
    bad = ~np.isfinite(score)
    if bad.any():
        raise UserError(f"{int(bad.sum()):,} person(s) have a propensity score of exactly 0 or 1 (or none); "
                        "they cannot be matched on the logit scale — check the model for separation")
    if caliper is not None and not caliper >= 0:
        raise UserError(f"caliper must be >= 0 (got {caliper})")
    if order is Order.random and seed is None and not replacement:
        raise UserError("order random needs a seed (the same seed gives the same matches)")
    strata = np.zeros(n, dtype=np.int64) if strata is None else np.asarray(strata)
    if strata.shape != (n,):
        raise ValueError("strata and score differ in length")
    if strata.dtype.kind not in "iu":
        strata = pd.factorize(strata, sort=True)[0]
    strata = strata.astype(np.int64) - (int(strata.min()) if n else 0)
    grid, quantum = _on_grid(score)
    cal = INF if caliper is None else _caliper_on_grid(float(caliper), quantum)

    problem = _Problem(grid, treated, _sort_key(grid, strata), strata)
    if replacement:
        taken = problem.with_replacement(ratio, cal)
    else:
        taken = problem.without_replacement(ratio, cal, order, seed)
    return _result(problem, taken, caliper, order, ratio, replacement, quantum)


# The vectorised phase of ``order: nearest`` runs rounds while each round still matches
# at least this share of the treated persons left (and this many); the sequential heap
# finishes. Both phases give the same matches; tests move these to exercise the split.
MUTUAL_ROUNDS_MIN_SHARE = 0.02
MUTUAL_ROUNDS_MIN_PAIRS = 256
# The sequential loops read Python lists when they will visit more than this share of
# the control groups, numpy arrays otherwise (same results; tests move it).
LISTS_ABOVE_SHARE = 1 / 16


def _sort_key(grid: np.ndarray, strata: np.ndarray) -> np.ndarray:
    """One key per person ordering (stratum, score) exactly; equal keys = exact ties."""
    top = int(strata.max(initial=0))
    if top == 0:
        return grid
    if top < 2**10:  # grid values are whole numbers with |value| <= 2**51
        return (strata << 52) + (grid.astype(np.int64) + 2**51)
    _, code = np.unique(grid, return_inverse=True)
    return strata * (int(code.max(initial=0)) + 2) + code.astype(np.int64)


def _positions(sorted_keys: np.ndarray, queries: np.ndarray, presorted: bool = False) -> np.ndarray:
    """``searchsorted(sorted_keys, queries, 'left')``; (nearly) sorted queries keep it cache-friendly."""
    if presorted or len(queries) < 2:
        return np.searchsorted(sorted_keys, queries, side="left")
    sort = np.argsort(queries)
    out = np.empty(len(queries), dtype=np.int64)
    out[sort] = np.searchsorted(sorted_keys, queries[sort], side="left")
    return out


def _on_grid(score: np.ndarray) -> tuple[np.ndarray, float]:
    """Scores as whole multiples of one quantum (held in float64, |value| <= 2**51).

    The quantum is the spacing of doubles just below 2**51 quanta at the largest |score|
    (about 4e-15 for logits up to 8), so rounding moves a score by less than one ulp of
    the largest score, and every difference of two scores is then exact: distances
    compare as real numbers, the caliper test is exact, and scores that differ only by
    floating-point noise of the linear predictor become ties.
    """
    largest = float(np.abs(score).max(initial=0.0))
    if largest == 0.0:
        return np.zeros_like(score), 1.0
    quantum = math.ldexp(1.0, math.frexp(largest)[1] - 51)
    return np.round(score / quantum), quantum


def _caliper_on_grid(caliper: float, quantum: float) -> float:
    quanta = caliper / quantum
    return INF if quanta >= 2.0 ** 53 else float(math.floor(quanta))


class _Problem:
    """Treated persons and grouped controls, sorted once."""

    def __init__(self, score, treated, key, strata):
        self.score, self.treated, self.key, self.strata = score, treated, key, strata
        self.t_rows = np.flatnonzero(treated)
        self.c_rows = np.flatnonzero(~treated)
        c_key = key[self.c_rows]
        sort = np.argsort(c_key, kind="stable")  # rows ascending within an equal key
        self.c_sorted_rows = self.c_rows[sort]
        self.c_sorted_key = c_key[sort]
        starts = np.flatnonzero(np.diff(self.c_sorted_key)) + 1
        self.g_start = np.concatenate(([0], starts)).astype(np.int64) if len(sort) else np.zeros(0, np.int64)
        self.g_size = np.diff(np.append(self.g_start, len(sort)))
        self.g_key = self.c_sorted_key[self.g_start]
        first = self.c_sorted_rows[self.g_start]
        self.g_value = score[first]
        self.g_stratum = strata[first]
        self.t_key = key[self.t_rows]
        self.t_value = score[self.t_rows]
        self.t_stratum = strata[self.t_rows]
        self.t_order = np.argsort(self.t_key, kind="stable")  # treated by (key, row)
        self.t_pos = np.empty(len(self.t_rows), dtype=np.int64)
        self.t_pos[self.t_order] = _positions(self.g_key, self.t_key[self.t_order], presorted=True)

    # -- with replacement: independent k nearest, fully vectorised -------------------------
    def with_replacement(self, ratio: int, cal: float):
        nt, nc = len(self.t_rows), len(self.c_rows)
        if nt == 0 or nc == 0:
            return _empty_taken()
        # Right side in (key, row ↑) order; left side in (key, row ↓) order so that, read
        # backwards from the position, equal scores come earliest row first.
        right_rows = self.c_sorted_rows
        left_rows = self.c_rows[np.lexsort((-self.c_rows, self.key[self.c_rows]))]
        pos = np.empty(nt, dtype=np.int64)
        pos[self.t_order] = _positions(self.c_sorted_key, self.t_key[self.t_order], presorted=True)
        steps = np.arange(ratio)
        cand_pos = np.concatenate([pos[:, None] + steps, pos[:, None] - 1 - steps], axis=1)
        from_right = np.zeros(cand_pos.shape, dtype=bool)
        from_right[:, :ratio] = True
        inside = (cand_pos >= 0) & (cand_pos < nc)
        clipped = np.clip(cand_pos, 0, nc - 1)
        rows = np.where(from_right, right_rows[clipped], left_rows[clipped])
        valid = inside & (self.strata[rows] == self.t_stratum[:, None])
        distance = np.where(valid, np.abs(self.score[rows] - self.t_value[:, None]), INF)
        rows = np.where(valid, rows, np.iinfo(np.int64).max)
        t_index = np.repeat(np.arange(nt), 2 * ratio)
        best = np.lexsort((rows.ravel(), distance.ravel(), t_index)).reshape(nt, 2 * ratio)[:, :ratio]
        distance = distance.ravel()[best]
        rows = rows.ravel()[best]
        keep = np.isfinite(distance) & (distance <= cal)
        t_of = np.broadcast_to(np.arange(nt)[:, None], best.shape)
        rounds = np.broadcast_to(np.arange(1, ratio + 1)[None, :], best.shape)
        return t_of[keep], rows[keep], distance[keep], rounds[keep]

    # -- without replacement ------------------------------------------------------------
    def _first_candidates(self, t_index, consumed):
        """Nearest free control group of each treated person in ``t_index`` (in (key, row) order)."""
        free = np.flatnonzero(consumed < self.g_size)
        m = len(t_index)
        if len(free) == 0 or m == 0:
            return np.full(m, INF), np.zeros(m, np.int64), np.zeros(m, bool)
        pos = _positions(self.g_key[free], self.t_key[t_index], presorted=True)
        right = free[np.minimum(pos, len(free) - 1)]
        left = free[np.maximum(pos - 1, 0)]
        stratum = self.t_stratum[t_index]
        value = self.t_value[t_index]
        ok_right = (pos < len(free)) & (self.g_stratum[right] == stratum)
        ok_left = (pos > 0) & (self.g_stratum[left] == stratum)
        d_right = np.where(ok_right, self.g_value[right] - value, INF)
        d_left = np.where(ok_left, value - self.g_value[left], INF)
        row_right = self.c_sorted_rows[self.g_start[right] + consumed[right]]
        row_left = self.c_sorted_rows[self.g_start[left] + consumed[left]]
        go_left = ok_left & (~ok_right | (d_left < d_right) | ((d_left == d_right) & (row_left < row_right)))
        return np.where(go_left, d_left, d_right), np.where(go_left, left, right), ok_left | ok_right

    def _nearest_treated(self, groups, t_index):
        """For each control group, the nearest of the treated persons ``t_index`` (ties: earlier row).

        ``t_index`` is in (key, row) order, and so, nearly, are the groups they chose.
        """
        ts = t_index
        tk = self.t_key[ts]
        m = len(ts)
        pos = _positions(tk, self.g_key[groups], presorted=True)
        right = ts[np.minimum(pos, m - 1)]
        # left: the last key below the group's, and of that key the earliest row
        left = ts[_positions(tk, tk[np.maximum(pos - 1, 0)], presorted=True)]
        stratum, value = self.g_stratum[groups], self.g_value[groups]
        ok_right = (pos < m) & (self.t_stratum[right] == stratum)
        ok_left = (pos > 0) & (self.t_stratum[left] == stratum)
        d_right = np.where(ok_right, self.t_value[right] - value, INF)
        d_left = np.where(ok_left, value - self.t_value[left], INF)
        go_left = ok_left & (~ok_right | (d_left < d_right) | ((d_left == d_right) & (left < right)))
        return np.where(go_left, left, right)

    def mutual_nearest(self, t_index, consumed, cal, found):
        """Vectorised rounds of ``order: nearest``: match every pair that is nearest for both.

        With edges ordered by (distance, treated row, control row), a pair that is the
        smallest edge at both of its ends is taken by the sequential greedy matcher
        whatever else happens (Preis's locally dominant edges), and removing it leaves
        the same greedy problem on the rest. ``t_index`` is in (key, row) order; returns
        the treated persons still unmatched, in the same order.
        """
        while len(t_index):
            distance, group, has = self._first_candidates(t_index, consumed)
            alive = has & (distance <= cal)  # no free control within the caliper: never will be
            t_index, distance, group = t_index[alive], distance[alive], group[alive]
            if not len(t_index):
                break
            mutual = self._nearest_treated(group, t_index) == t_index
            pairs = int(mutual.sum())
            g = group[mutual]  # distinct: a group has one nearest treated person
            found.append((t_index[mutual], g, consumed[g].copy(), distance[mutual]))
            consumed[g] += 1
            left_before = len(t_index)
            t_index = t_index[~mutual]
            if pairs < max(MUTUAL_ROUNDS_MIN_PAIRS, MUTUAL_ROUNDS_MIN_SHARE * left_before):
                break
        return t_index

    def without_replacement(self, ratio: int, cal: float, order: Order, seed):
        nt, groups = len(self.t_rows), len(self.g_key)
        if nt == 0 or groups == 0:
            return _empty_taken()
        consumed = np.zeros(groups, dtype=np.int64)
        if order is Order.largest:
            sequence = np.argsort(-self.t_value, kind="stable")
        elif order is Order.smallest:
            sequence = np.argsort(self.t_value, kind="stable")
        elif order is Order.random:
            sequence = np.random.default_rng(seed).permutation(nt)
        else:
            sequence = np.arange(nt)
        taken_t, taken_c, taken_d, taken_r = [], [], [], []
        eligible = np.ones(nt, dtype=bool)
        for round_no in range(1, ratio + 1):
            if not eligible.any() or (consumed >= self.g_size).all():
                break
            found = []
            if order is Order.nearest:
                rest = self.mutual_nearest(self.t_order[eligible[self.t_order]], consumed, cal, found)
                if len(rest):
                    state = _FreeGroups(self, consumed, work=len(rest))
                    found.append(state.nearest_pairs(rest, cal))
                    consumed = state.consumed_array()
            else:
                queue = sequence[eligible[sequence]]
                state = _FreeGroups(self, consumed, work=len(queue))
                found.append(state.in_sequence(queue, cal))
                consumed = state.consumed_array()
            found.append(_arrays([], [], [], []))
            t_index = np.concatenate([f[0] for f in found])
            group = np.concatenate([f[1] for f in found])
            member = np.concatenate([f[2] for f in found])
            taken_t.append(t_index)
            taken_c.append(self.c_sorted_rows[self.g_start[group] + member])
            taken_d.append(np.concatenate([f[3] for f in found]))
            taken_r.append(np.full(len(t_index), round_no))
            eligible = np.zeros(nt, dtype=bool)
            eligible[t_index] = True
        return (np.concatenate(taken_t), np.concatenate(taken_c), np.concatenate(taken_d),
                np.concatenate(taken_r))


class _FreeGroups:
    """Union-find over control groups: nearest group with a free member right / left of a position."""

    def __init__(self, problem: _Problem, consumed: np.ndarray, work: int):
        self.problem = problem
        groups = len(problem.g_key)
        free = consumed < problem.g_size
        index = np.arange(groups + 1)
        # right[g] = first free group >= g (groups = none); left[i] = 1 + last free group <= i-1 (0 = none)
        right = np.where(np.append(free, True), index, groups)
        right = np.minimum.accumulate(right[::-1])[::-1]
        left = np.where(np.concatenate(([True], free)), index, 0)
        left = np.maximum.accumulate(left)
        # Python lists index fastest, but converting millions of groups costs seconds; for
        # a few hundred treated persons left (after the vectorised rounds) arrays do.
        as_python = (lambda a: a.tolist()) if work > groups * LISTS_ABOVE_SHARE else (lambda a: a.copy())
        self.groups = groups
        self.right = as_python(right)
        self.left = as_python(left)
        self.consumed = as_python(consumed)
        read_only = (lambda a: a.tolist()) if work > groups * LISTS_ABOVE_SHARE else (lambda a: a)
        self.size = read_only(problem.g_size)
        self.start = read_only(problem.g_start)
        self.value = read_only(problem.g_value)
        self.stratum = read_only(problem.g_stratum)
        self.rows = problem.c_sorted_rows  # only read on exact ties
        self.t_pos, self.t_value, self.t_stratum = (read_only(a) for a in (problem.t_pos, problem.t_value,
                                                                           problem.t_stratum))

    def consumed_array(self) -> np.ndarray:
        return np.asarray(self.consumed, dtype=np.int64)

    def _nearest(self, t):
        """(distance, group) of treated ``t``'s nearest free control; distance INF when none."""
        right, left, value, stratum = self.right, self.left, self.value, self.stratum
        pos, x, s = self.t_pos[t], self.t_value[t], self.t_stratum[t]
        g = pos
        while right[g] != g:  # path halving
            right[g] = right[right[g]]
            g = right[g]
        d_right = value[g] - x if g < self.groups and stratum[g] == s else INF
        h = pos
        while left[h] != h:
            left[h] = left[left[h]]
            h = left[h]
        h -= 1
        d_left = x - value[h] if h >= 0 and stratum[h] == s else INF
        if d_left < d_right:
            return d_left, h
        if d_left == d_right and d_left != INF:
            rows, start, consumed = self.rows, self.start, self.consumed
            if rows[start[h] + consumed[h]] < rows[start[g] + consumed[g]]:
                return d_left, h
        return d_right, g

    def _take(self, g):
        c = self.consumed[g]
        self.consumed[g] = c + 1
        if c + 1 == self.size[g]:
            self.right[g] = g + 1
            self.left[g + 1] = g
        return c

    def in_sequence(self, sequence: np.ndarray, cal: float):
        """Each treated person in ``sequence`` takes its nearest free control within the caliper."""
        nearest, take = self._nearest, self._take
        out_t, out_group, out_member, out_d = [], [], [], []
        for t in sequence.tolist():
            d, g = nearest(t)
            if d == INF or d > cal:
                continue
            out_member.append(take(g))
            out_t.append(t)
            out_group.append(g)
            out_d.append(d)
        return _arrays(out_t, out_group, out_member, out_d)

    def nearest_pairs(self, t_index: np.ndarray, cal: float):
        """Globally nearest (treated, free control) pair first, until none is within the caliper.

        Every unmatched treated person has one entry (distance, row, group, member): first
        in a list sorted once with numpy, later (after its control was taken and it was
        looked up again) in a heap; the smaller head of the two is taken next.
        """
        p = self.problem
        consumed_np = np.asarray(self.consumed, dtype=np.int64)
        distance, group, has = p._first_candidates(t_index, consumed_np)
        keep = has & (distance <= cal)
        t_index, distance, group = t_index[keep], distance[keep], group[keep]
        sort = np.lexsort((t_index, distance))
        first_d = distance[sort].tolist()
        first_t = t_index[sort].tolist()
        first_g = group[sort].tolist()
        first_c = consumed_np[group[sort]].tolist()
        consumed, nearest, take = self.consumed, self._nearest, self._take
        out_t, out_group, out_member, out_d = [], [], [], []
        heap: list = []
        pop, push = heapq.heappop, heapq.heappush
        i, n_first = 0, len(first_d)
        while i < n_first or heap:
            if i < n_first and not (heap and (heap[0][0], heap[0][1]) < (first_d[i], first_t[i])):
                d, t, g, c = first_d[i], first_t[i], first_g[i], first_c[i]
                i += 1
            else:
                d, t, g, c = pop(heap)
            if consumed[g] == c:  # the promised control is still free: take it
                take(g)
                out_t.append(t)
                out_group.append(g)
                out_member.append(c)
                out_d.append(d)
                continue
            d, g = nearest(t)  # taken meanwhile: look again
            if d != INF and d <= cal:
                push(heap, (d, t, g, consumed[g]))
        return _arrays(out_t, out_group, out_member, out_d)


def _arrays(out_t, out_group, out_member, out_d):
    return (np.asarray(out_t, dtype=np.int64), np.asarray(out_group, dtype=np.int64),
            np.asarray(out_member, dtype=np.int64), np.asarray(out_d, dtype=float))


def _empty_taken():
    return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, float), np.zeros(0, np.int64)


def _result(problem: _Problem, taken, caliper, order, ratio, replacement, quantum) -> MatchResult:
    t_index, control_rows, distance, rounds = taken
    n = len(problem.score)
    t_rows = problem.t_rows
    matched_t = np.zeros(len(t_rows), dtype=bool)
    matched_t[t_index] = True
    ids_of_t = np.cumsum(matched_t) * matched_t  # 1.. in treated data order, 0 = unmatched
    pair_ids = ids_of_t[t_index]
    treated_rows = t_rows[t_index]
    pairs = pd.DataFrame({"match_id": pair_ids, "treated_row": treated_rows, "control_row": control_rows,
                          "distance": distance * quantum, "round": rounds})
    pairs = pairs.iloc[np.lexsort((rounds, pair_ids))].reset_index(drop=True)

    match_id = np.zeros(n, dtype=np.int64)
    match_id[t_rows] = ids_of_t
    if len(pairs):
        # with replacement a control keeps the smallest id it serves
        first = np.full(n, np.iinfo(np.int64).max)
        np.minimum.at(first, control_rows, pair_ids)
        used = first < np.iinfo(np.int64).max
        match_id[used] = first[used]
    weight = np.zeros(n, dtype=float)
    weight[t_rows[matched_t]] = 1.0
    if len(pairs):
        k_of_t = np.bincount(t_index, minlength=len(t_rows))
        weight += np.bincount(control_rows, weights=1.0 / k_of_t[t_index], minlength=n)
    return MatchResult(match_id=match_id, weight=weight, pairs=pairs, treated=problem.treated.copy(),
                       caliper=caliper, order=order, ratio=ratio, replacement=replacement)
