"""Counter-based random draws as Spark SQL expressions.

Every draw is a pure function of (seed, key, stream name, indices), hashed with
``xxhash64``. Nothing depends on partitioning, task order or the number of cores, so
the same seed gives the same values on any machine and any cluster size, and a new
draw can be added under a new stream name without shifting any existing one.

The helpers return SQL text, not ``Column`` objects: a generator builds thousands of
expressions, and SQL text crosses from Python to the JVM in one call per stage
(``selectExpr``) instead of one call per operator. ``Sql`` marks text that is an
expression; any other ``str`` handed to a helper as a value is a string literal.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from cohortlake.sqltext import Sql, lit

_UNIT = 2**53  # doubles carry 53 bits of mantissa: the finest exact uniform grid


def num(value: Any) -> Sql:
    """A numeric argument: numbers become literals, any text is taken as an expression."""
    return Sql(value) if isinstance(value, str) else lit(value)


def _index(value: Any) -> str:
    # xxhash64 hashes an int and a long of the same value differently; cast every
    # index to long so a draw does not change when an expression's type does.
    return f"CAST({num(value)} AS BIGINT)"


class RandomSource:
    """Draws keyed by (seed, key column): ``rng.uniform("stream", "i")`` and friends.

    Indices and numeric bounds may be numbers or SQL text (column names, expressions).
    """

    def __init__(self, seed: int, key: str = "id"):
        self.seed = int(seed)
        self.key = key

    def hash(self, stream: str, *idx: Any) -> Sql:
        """The raw 64-bit hash behind every draw of a stream."""
        args = [f"{self.seed}L", f"CAST({self.key} AS BIGINT)", lit(stream), *[_index(i) for i in idx]]
        return Sql(f"xxhash64({', '.join(args)})")

    def uniform(self, stream: str, *idx: Any) -> Sql:
        """Uniform double in [0, 1)."""
        return Sql(f"(pmod({self.hash(stream, *idx)}, {_UNIT}L) / {float(_UNIT)!r}D)")

    def uniform_int(self, stream: str, low: Any, high: Any, *idx: Any) -> Sql:
        """Uniform integer in [low, high], bounds inclusive (numbers or expressions)."""
        return uniform_int(self.uniform(stream, *idx), low, high)

    def bernoulli(self, stream: str, p: Any, *idx: Any) -> Sql:
        """True with probability p."""
        return Sql(f"({self.uniform(stream, *idx)} < {num(p)})")

    def normal(self, stream: str, *idx: Any, mean: Any = 0.0, sd: Any = 1.0) -> Sql:
        """Normal draw by Box-Muller from two independent uniforms of the stream."""
        u1 = self.uniform(stream + "#bm1", *idx)
        u2 = self.uniform(stream + "#bm2", *idx)
        z = f"(sqrt(-2.0D * log1p(-{u1})) * cos({2 * math.pi!r}D * {u2}))"
        return Sql(f"({num(mean)} + {num(sd)} * {z})")

    def exponential(self, stream: str, *idx: Any, rate: Any = 1.0) -> Sql:
        """Exponential draw with the given rate (inverse CDF)."""
        return exponential(self.uniform(stream, *idx), rate)

    def choice(self, stream: str, options: Sequence[tuple[Any, float]], *idx: Any) -> Sql:
        """One value from a weighted list [(value, weight), ...]."""
        return choice(self.uniform(stream, *idx), options)

    def pick(self, stream: str, values: Sequence[Any], *idx: Any) -> Sql:
        """One value from a list, all equally likely."""
        return pick(self.uniform(stream, *idx), values)

    def poisson(self, stream: str, lam: float, *idx: Any, max_k: int = 30) -> Sql:
        """Poisson count (inverse CDF, capped at max_k)."""
        return poisson(self.uniform(stream, *idx), lam, max_k)

    def geometric(self, stream: str, p: float, *idx: Any, max_k: int | None = None) -> Sql:
        """Failures before the first success, success probability p."""
        return geometric(self.uniform(stream, *idx), p, max_k)


def uniform_int(u: Any, low: Any, high: Any) -> Sql:
    """Map a uniform to an integer in [low, high] (inclusive)."""
    lo, hi = num(low), num(high)
    return Sql(f"CAST(floor({u} * (({hi}) - ({lo}) + 1)) + ({lo}) AS INT)")


def exponential(u: Any, rate: Any = 1.0) -> Sql:
    """Map a uniform to an exponential draw."""
    return Sql(f"(-log1p(-{u}) / {num(rate)})")


def _cut_points(weights: Sequence[float]) -> list[float]:
    total = float(sum(weights))
    cuts, cumulative = [], 0.0
    for w in weights[:-1]:
        cumulative += w / total
        cuts.append(cumulative)
    return cuts


def choice(u: Any, options: Sequence[tuple[Any, float]]) -> Sql:
    """Map a uniform to a value of a weighted list; weights need not sum to 1.

    ``u`` appears once per option: pass a column name (a draw stored earlier) when the
    list is long, so the hash is computed once.
    """
    if not options:
        raise ValueError("choice needs at least one option")
    if len(options) == 1:
        return lit(options[0][0])
    cuts = _cut_points([w for _, w in options])
    branches = " ".join(f"WHEN {u} < {c!r}D THEN {lit(v)}" for c, (v, _) in zip(cuts, options))
    return Sql(f"(CASE {branches} ELSE {lit(options[-1][0])} END)")


def pick(u: Any, values: Sequence[Any]) -> Sql:
    """Map a uniform to one of the values, all equally likely."""
    array = ", ".join(lit(v) for v in values)
    return Sql(f"element_at(array({array}), CAST(floor({u} * {len(values)}) AS INT) + 1)")


def poisson(u: Any, lam: float, max_k: int = 30) -> Sql:
    """Map a uniform to a Poisson(lam) count by inverse CDF, capped at max_k.

    The count is the number of CDF points at or below u, so u is evaluated once.
    """
    p = math.exp(-lam)
    cdf, cuts = p, []
    for k in range(max_k):
        cuts.append(cdf)
        p *= lam / (k + 1)
        cdf += p
    points = ", ".join(f"{c!r}D" for c in cuts)
    return Sql(f"size(filter(array({points}), cut__ -> cut__ <= {u}))")


def geometric(u: Any, p: float, max_k: int | None = None) -> Sql:
    """Map a uniform to a geometric count (failures before the first success)."""
    k = f"CAST(floor(log1p(-{u}) / {math.log1p(-p)!r}D) AS INT)"
    return Sql(f"least({k}, {max_k})" if max_k is not None else k)


def indices(n: Any) -> Sql:
    """Array [0, 1, ..., n-1]; empty when n <= 0 (``sequence`` alone would count down)."""
    return Sql(f"(CASE WHEN ({n}) > 0 THEN sequence(0, CAST(({n}) - 1 AS INT)) ELSE CAST(array() AS ARRAY<INT>) END)")
