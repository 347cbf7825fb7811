"""The repository stands alone: no file reaches outside it, and the public fixtures are unchanged."""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

from paths import REPO
FIXTURES = REPO / "tests" / "fixtures" / "desynpuf"

# A path into a folder beside the checkout, or into the steering material that once lay there.
OUTSIDE = re.compile(r"\.\./shared|(?<![/\w])shared/(study|fixtures|data-contracts)|REFERENCE_STUDY\.md|SEED_STUDIES\.md")


def _tracked() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    return [REPO / name for name in listed.decode().split("\0") if name]


def test_no_tracked_file_names_a_folder_beside_the_repository():
    offending = []
    for path in _tracked():
        if path.suffix in {".png", ".zip", ".gz"} or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        offending += [f"{path.relative_to(REPO)}:{n}" for n, line in enumerate(text.splitlines(), 1)
                      if OUTSIDE.search(line) and path.name != "test_repository.py"]
    assert offending == []


def test_desynpuf_fixtures_are_the_published_bytes():
    note = (FIXTURES / "PROVENANCE.md").read_text(encoding="utf-8")
    listed = dict(line.split()[::-1] for line in note.splitlines() if re.fullmatch(r"[0-9a-f]{64}  \S+\.csv", line))
    assert len(listed) == 8
    assert sorted(listed) == sorted(p.name for p in FIXTURES.glob("*.csv"))
    for name, digest in listed.items():
        assert hashlib.sha256((FIXTURES / name).read_bytes()).hexdigest() == digest, name


def test_the_study_documents_are_in_the_repository():
    for doc in ("docs/reference-study.md", "docs/seed-designs.md"):
        assert (REPO / doc).is_file(), doc
    reference = (REPO / "docs" / "reference-study.md").read_text(encoding="utf-8")
    assert "The Oncologist 2016;21(9):1113-1120" in reference
    assert "0.95 (95% CI 0.78-1.16)" in reference
    assert reference.count("\n1. **HCC tumor.**") == 1 and "12. **Alive at landmark.**" in reference
