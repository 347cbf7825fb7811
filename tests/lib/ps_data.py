"""A simulated treatment assignment with a known propensity model, for the matching tests."""

from __future__ import annotations

import numpy as np
import pandas as pd


def simulated(n=4000, seed=0):
    """n persons; P(sorafenib) is logistic in age (0.05/year), male sex (0.6) and cirrhosis (0.8)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "age": rng.normal(70, 8, n).round(),
        "sex": rng.choice(["F", "M"], n),
        "race": rng.choice(["white", "black", "other"], n, p=[0.7, 0.15, 0.15]),
        "cirrhosis": rng.random(n) < 0.3,
    })
    linear = -1 + 0.05 * (frame["age"] - 70) + 0.6 * (frame["sex"] == "M") + 0.8 * frame["cirrhosis"]
    frame["arm"] = np.where(rng.random(n) < 1 / (1 + np.exp(-linear)), "sorafenib", "untreated")
    return frame
