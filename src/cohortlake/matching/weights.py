"""Propensity-score weights: IPTW (ATE, ATT; optionally stabilised) and overlap weights."""

from __future__ import annotations

import numpy as np

from cohortlake.errors import UserError
from cohortlake.spec.matching import Estimand


def _inputs(ps, treated):
    ps = np.asarray(ps, dtype=float)
    treated = np.asarray(treated, dtype=bool)
    if ps.shape != treated.shape:
        raise ValueError("ps and treated differ in length")
    outside = ~((ps > 0) & (ps < 1))
    if outside.any():
        raise UserError(f"{int(outside.sum()):,} propensity score(s) are not strictly between 0 and 1; "
                        "weights would be infinite")
    return ps, treated


def iptw(ps, treated, estimand: Estimand | str = Estimand.ate, stabilized: bool = False) -> np.ndarray:
    """Inverse probability of treatment weights.

    ATE: treated 1/ps, controls 1/(1-ps). ATT: treated 1, controls ps/(1-ps).
    Stabilised (Xu et al. 2010): ATE weights times the marginal probability of the arm
    received (P for treated, 1-P for controls, P = share treated), so each arm's weights
    sum to about its size; ATT control weights times (1-P)/P, so they sum to about the
    number of controls.
    """
    ps, treated = _inputs(ps, treated)
    estimand = Estimand(estimand)
    share = treated.mean()
    if estimand is Estimand.ate:
        weight = np.where(treated, 1.0 / ps, 1.0 / (1.0 - ps))
        if stabilized:
            weight = weight * np.where(treated, share, 1.0 - share)
    else:
        weight = np.where(treated, 1.0, ps / (1.0 - ps))
        if stabilized:
            weight = np.where(treated, weight, weight * (1.0 - share) / share)
    return weight


def overlap_weights(ps, treated) -> np.ndarray:
    """Overlap weights (Li, Morgan & Zaslavsky 2018): treated 1-ps, controls ps."""
    ps, treated = _inputs(ps, treated)
    return np.where(treated, 1.0 - ps, ps)
