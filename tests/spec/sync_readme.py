"""Write every spec case into cohort_defs/README.md as the example of its rule kind.

    .venv/bin/python tests/spec/sync_readme.py            # rewrite the README's examples
    .venv/bin/python tests/spec/sync_readme.py --check    # exit 1 if they differ from the cases

The README holds one region per group of cases, ``<!-- spec-examples: GROUP -->`` ..
``<!-- /spec-examples: GROUP -->``, and ``<!-- spec-base -->`` .. ``<!-- /spec-base -->``
for tests/spec/base.yaml. Everything inside a region is generated from the case files:
each case as ``<!-- spec: GROUP/KIND/CASE -->`` followed by its file, verbatim, in a
```yaml block. Edit the case files, never the blocks; test_readme_examples.py fails
when the README and the cases differ.
"""

from __future__ import annotations

import html
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
from paths import REPO  # noqa: E402
from spec_runner import BASE, GROUPS, case_files, case_id  # noqa: E402

README = REPO / "src" / "cohortlake" / "cohort_defs" / "README.md"
COMMAND = ".venv/bin/python tests/spec/sync_readme.py"
REGION = re.compile(r"(<!-- spec-examples: (\w+) -->\n)(.*?)(<!-- /spec-examples: \2 -->)", re.S)
BASE_REGION = re.compile(r"(<!-- spec-base -->\n)(.*?)(<!-- /spec-base -->)", re.S)


class SyncError(Exception):
    """The README cannot take the cases as it stands (a group has no region)."""


def _summary(text: str) -> str:
    """The case's opening comment, up to its first full stop."""
    comment = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        comment.append(line.lstrip("#").strip())
    joined = " ".join(comment)
    match = re.match(r"(.+?[^.\s]\.)(\s|$)", joined)  # not the '..' of a date range
    return html.escape((match.group(1) if match else joined).rstrip("."), quote=False)


def _block(path: Path) -> str:
    text = path.read_text(encoding="utf-8").rstrip("\n")
    name = case_id(path)
    return (f"<!-- spec: {name} -->\n<details><summary><code>{name}</code>: {_summary(text)}</summary>\n\n"
            f"```yaml\n# tests/spec/{name}.yaml\n{text}\n```\n\n</details>\n\n")


def group_text(group: str) -> str:
    files = [p for p in case_files() if case_id(p).startswith(group + "/")]
    head = f"Examples: the spec cases in `tests/spec/{group}/` (copied by `{COMMAND}`).\n\n"
    return head + "".join(_block(p) for p in files)


def base_text() -> str:
    return f"```yaml\n# tests/spec/base.yaml\n{BASE.read_text(encoding='utf-8').rstrip()}\n```\n"


def render(readme: str) -> str:
    """The README with every region regenerated from the case files."""
    found = {m.group(2) for m in REGION.finditer(readme)}
    missing = [g for g in GROUPS if g not in found and any(case_id(p).startswith(g + "/") for p in case_files())]
    unknown = sorted(found - set(GROUPS))
    if missing or unknown or not BASE_REGION.search(readme):
        raise SyncError(f"{README}: needs one region per group of cases"
                        + (f"; add <!-- spec-examples: G --> .. <!-- /spec-examples: G --> for {', '.join(missing)}"
                           if missing else "")
                        + (f"; no case group {', '.join(unknown)}" if unknown else "")
                        + ("" if BASE_REGION.search(readme) else "; add <!-- spec-base --> .. <!-- /spec-base -->"))
    readme = REGION.sub(lambda m: m.group(1) + group_text(m.group(2)) + m.group(4), readme)
    return BASE_REGION.sub(lambda m: m.group(1) + base_text() + m.group(3), readme)


def main(argv: list[str]) -> int:
    current = README.read_text(encoding="utf-8")
    wanted = render(current)
    if "--check" in argv:
        if wanted != current:
            print(f"{README} differs from the spec cases; run {COMMAND}", file=sys.stderr)
            return 1
        return 0
    if wanted != current:
        README.write_text(wanted, encoding="utf-8")
        print(f"rewrote the examples in {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
