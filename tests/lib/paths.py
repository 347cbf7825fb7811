"""Where things are, for every test module: the repository root and the tests' own data.

Test modules live one or two folders below ``tests/``; they take these paths from here
instead of counting parents from their own file.
"""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent
FIXTURES = TESTS / "fixtures"
GOLDEN = TESTS / "golden"
LIB = TESTS / "lib"
