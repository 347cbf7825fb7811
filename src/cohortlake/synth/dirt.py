"""Dirt as real extracts have it, injected into the claim and fill tables.

About ``dirty_rate`` of a table's rows per kind: a trailing blank on a code, an
impossible date, a non-numeric quantity, a duplicated row. A ``DirtySpec`` per table
names the fields that may carry each kind; ``inject_dirty`` flags every changed row
(``DIRTY_FLAGS``), and the writer counts the flags while it writes the files
(truth.json's ``dirty_counts``). The structural dirt of the enrollment file (persons
without it, missing years, stale death dates) is drawn with the persons
(``synth.model``); ``mbsf_dirty`` reports it from the person counts.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cohortlake.synth.random import RandomSource, uniform_int
from cohortlake.synth.sql import stage


@dataclass(frozen=True)
class DirtySpec:
    """Which fields of a table may carry each kind of injected error."""

    code_cols: tuple[str, ...] = ()
    date_cols: tuple[str, ...] = ()
    quantity_cols: tuple[str, ...] = ()
    duplicates: bool = True


DIRTY_KINDS = ("duplicate_row", "trailing_blank_code", "impossible_date", "non_numeric_quantity")
DIRTY_FLAGS = ("__dup", "__tb", "__bad_date", "__non_numeric")
BAD_MONTH_DAYS = ["0231", "0230", "0431", "0631", "0931", "1131"]
NON_NUMERIC = ["3O", "thirty", "1O", "N/A"]


def inject_dirty(df: DataFrame, spec: DirtySpec, rate: float, seed: int, table: str) -> DataFrame:
    """Corrupt about ``rate`` of rows per kind, flagging them in __tb, __bad_date, __non_numeric, __dup.

    Needs ``__row`` (unique row key) and ``__year`` (a plausible year for bad dates).
    Duplicates are made last, so a duplicated row repeats its other corruptions too.
    """
    rng = RandomSource(seed, "__row")
    u = rng.uniform

    def which(kind, n):
        return uniform_int(u(f"dirty/{table}/{kind}/col"), 0, n - 1)

    def hit(kind, cols):
        return f"{u(f'dirty/{table}/{kind}')} < {float(rate)!r}D" if cols and rate > 0 else "FALSE"

    # a blank appended to an empty field would not show in the file: count only real changes
    tb_present = " OR ".join(f"({which('trailing', len(spec.code_cols))} = {i} AND `{c}` IS NOT NULL)"
                             for i, c in enumerate(spec.code_cols)) or "FALSE"
    df = stage(df, {"__tb": f"{hit('trailing', spec.code_cols)} AND ({tb_present})",
                    "__bad_date": hit("date", spec.date_cols), "__non_numeric": hit("quantity", spec.quantity_cols)})
    updates = {}
    for i, c in enumerate(spec.code_cols):
        updates[c] = (f"CASE WHEN __tb AND {which('trailing', len(spec.code_cols))} = {i} "
                      f"THEN concat(`{c}`, '  ') ELSE `{c}` END")
    bad_date = f"concat(CAST(__year AS STRING), {rng.pick(f'dirty/{table}/date/value', BAD_MONTH_DAYS)})"
    for i, c in enumerate(spec.date_cols):
        updates[c] = (f"CASE WHEN __bad_date AND {which('date', len(spec.date_cols))} = {i} "
                      f"THEN {bad_date} ELSE `{c}` END")
    bad_qty = rng.pick(f"dirty/{table}/quantity/value", NON_NUMERIC)
    for i, c in enumerate(spec.quantity_cols):
        updates[c] = (f"CASE WHEN __non_numeric AND {which('quantity', len(spec.quantity_cols))} = {i} "
                      f"THEN {bad_qty} ELSE `{c}` END")
    if updates:
        df = df.withColumns({c: F.expr(e) for c, e in updates.items()})
    copies = (f"CASE WHEN {u(f'dirty/{table}/duplicate')} < {float(rate)!r}D "
              f"THEN array(FALSE, TRUE) ELSE array(FALSE) END"
              if spec.duplicates and rate > 0 else "array(FALSE)")
    return df.selectExpr("*", f"explode({copies}) AS __dup")


def mbsf_dirty(counts: dict) -> dict:
    """The structural dirt of the enrollment file, from the person counts."""
    return {"person_not_in_mbsf": counts["persons_without_mbsf"], "missing_mbsf_year": counts["missing_mbsf_years"],
            "differing_death_date": counts["stale_death_rows"]}
