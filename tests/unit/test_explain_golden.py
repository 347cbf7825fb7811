"""explain renders every shipped definition exactly as the golden files say (plain English,
defaults shown, no Python reprs). After an intended change, regenerate with
COHORTLAKE_UPDATE_GOLDEN=1 and read the diff."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from cohortlake.spec import explain, load_definition

from paths import GOLDEN as GOLDEN_ROOT, REPO
GOLDEN = GOLDEN_ROOT / "explain"
SHIPPED = sorted((REPO / "cohort_defs").glob("*.yaml"))


def _render(path: Path) -> str:
    # The hash changes with any shared code-set file; the rules are what the golden file pins.
    return re.sub(r"definition sha256 `[0-9a-f]+`", "definition sha256 `…`", explain(load_definition(path)))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_explain_matches_golden(path):
    text = _render(path)
    golden = GOLDEN / f"{path.stem}.md"
    if os.environ.get("COHORTLAKE_UPDATE_GOLDEN"):
        golden.write_text(text, encoding="utf-8")
    assert golden.is_file(), f"no golden file {golden}; run with COHORTLAKE_UPDATE_GOLDEN=1"
    assert text == golden.read_text(encoding="utf-8")


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_explain_has_no_python_reprs_or_garbled_phrases(path):
    text = _render(path)
    for bad in ("{'", "['", "True", "False", "None", " + -", "the the ", "first from index", "index + 1 days"):
        assert bad not in text, bad


def test_explain_says_what_the_engine_does_for_a_tumor_index():
    text = _render(REPO / "cohort_defs" / "hcc_sorafenib_landmark.yaml")
    assert "1. HCC tumor — has an index tumor" in text
    assert "unknown passes this rule but gives no index date" in text
    assert "[default]" in text  # matching defaults are shown and marked
