"""`cohortlake check`: lint every cohort file under the given paths, reporting all problems.

A path is a file or a folder (its *.yaml and *.yml files, recursively). Each file is
recognised by its shape: a **definition** (``cohort:``, ``index:``, ``criteria:``, ...),
a **code-set file** (set name → ``{icd9cm: [...], include: [...], ...}``) or a
**test-patient file** (``patients:``, ``templates:``). Every file is checked; one that
cannot be read or parsed is one problem, never a trace.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from cohortlake.errors import UserError
from cohortlake.spec.followup import definition_warnings
from cohortlake.spec.library import Library, codeset_search_path
from cohortlake.spec.load import load_definition
from cohortlake.spec.messages import field_path
from cohortlake.spec.model import CodeSet
from cohortlake.yamlfile import LocatedYaml, Problem, YamlError, load_located, read_text

DEFINITION_KEYS = {"cohort", "title", "study_period", "index", "criteria", "followup"}
TEST_KEYS = {"patients", "templates"}
CODESET_KEYS = set(CodeSet.model_fields)
KINDS = ("definition", "codesets", "tests")
FORMATS = ("text", "json", "github")


@dataclass
class FileResult:
    """What check found in one file."""

    path: str
    kind: str | None
    problems: list[Problem] = field(default_factory=list)
    summary: str | None = None
    warnings: list[Problem] = field(default_factory=list)
    """Findings that do not stop the file (e.g. follow-up that can start after the study end)."""

    @property
    def ok(self) -> bool:
        return not self.problems


def collect(paths: list[str]) -> tuple[list[Path], list[FileResult]]:
    """The YAML files under the paths, in order; paths that do not exist are results with a problem."""
    files: list[Path] = []
    missing: list[FileResult] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()
                           and not any(part.startswith(".") for part in p.relative_to(path).parts))
            if not found:
                missing.append(FileResult(given, None, [Problem(given, None, "", "folder holds no .yaml files")]))
            files += found
        elif path.exists():
            files.append(path)
        else:
            missing.append(FileResult(given, None, [Problem(given, None, "", "file not found")]))
    return list(dict.fromkeys(files)), missing


def kind_of(located: LocatedYaml, path: Path) -> str | None:
    """definition, codesets or tests, by the file's keys (its folder's name when it has none)."""
    data = located.data
    if isinstance(data, dict) and data:
        keys = {str(k) for k in data}
        if keys & DEFINITION_KEYS:
            return "definition"
        if keys & TEST_KEYS or "definition" in keys:
            return "tests"
        if all(isinstance(v, dict) and {str(k) for k in v} <= CODESET_KEYS for v in data.values()):
            return "codesets"
        if all(isinstance(v, dict) for v in data.values()) and path.parent.name == "codesets":
            return "codesets"
    folder = path.parent.name
    return {"codesets": "codesets", "tests": "tests"}.get(folder)


_LINE = re.compile(r"^(?P<path>.+?):(?P<line>\d+): (?P<rest>.*)$")


def problems_of(error: UserError, default_path: str) -> list[Problem]:
    """A YamlError's problems: its structured list, or its message's lines parsed."""
    if getattr(error, "problems", None):
        return list(error.problems)
    if isinstance(error, YamlError) and error.problem and "\n" not in str(error):
        return [Problem(error.path or default_path, error.line, "", error.problem)]
    out = []
    for text in str(error).splitlines():
        match = _LINE.match(text)
        if match:
            out.append(Problem(match["path"], int(match["line"]), "", match["rest"]))
        elif text.startswith(default_path + ": "):
            out.append(Problem(default_path, None, "", text[len(default_path) + 2:]))
        else:
            out.append(Problem(default_path, None, "", text))
    return out


def check_definition(path: Path, located: LocatedYaml, codesets_dir) -> FileResult:
    result = FileResult(str(path), "definition")
    try:
        d = load_definition(path, codesets_dir=codesets_dir)
    except UserError as error:
        result.problems = problems_of(error, str(path))
        return result
    result.summary = (f"cohort '{d.cohort}', {len(d.criteria)} criteria, {len(d.codesets)} code sets, "
                      f"{len(d.covariates)} covariates")
    result.warnings = [Problem(str(path), located.line_of(w.path), field_path(located.data, w.path), w.message)
                       for w in definition_warnings(d)]
    return result


def check_codesets(path: Path, codesets_dir) -> FileResult:
    result = FileResult(str(path), "codesets")
    places = [path.parent] + codeset_search_path(path, codesets_dir)[1:]
    library = Library(places, result.problems)
    sets = library.file(path.stem)
    if sets is not None and not result.problems:
        result.summary = f"code-set file, {len(sets)} code set{'s' if len(sets) != 1 else ''}"
    return result


def check_tests(path: Path) -> FileResult:
    from cohortlake.assure import load_suite  # reads and checks the file; starts no Spark

    result = FileResult(str(path), "tests")
    try:
        suite = load_suite(path)
    except UserError as error:
        result.problems = problems_of(error, str(path))
        return result
    result.summary = f"test patients, {len(suite.patients)} for cohort '{suite.definition.cohort}'"
    return result


def check_file(path: Path, codesets_dir=None) -> FileResult:
    """Recognise one file's kind and check it."""
    try:
        located = load_located(str(path), read_text(path), strict=True)
    except YamlError as error:
        return FileResult(str(path), None, problems_of(error, str(path)))
    kind = kind_of(located, path)
    if kind == "definition":
        return check_definition(path, located, codesets_dir)
    if kind == "codesets":
        return check_codesets(path, codesets_dir)
    if kind == "tests":
        return check_tests(path)
    return FileResult(str(path), None, [Problem(str(path), located.line_of(()), "", (
        "not a cohort definition (cohort:, index:, criteria:, ...), a code-set file (set name: {icd10cm: [...]}) "
        "or a test-patient file (patients:, templates:)"))])


def check_paths(paths: list[str], codesets_dir=None) -> list[FileResult]:
    """Check every file under the paths; problems found in one file while checking another
    (a test file's definition, an included code-set file) are reported once."""
    files, results = collect(paths)
    seen: set[str] = {str(p) for r in results for p in r.problems}
    for path in files:
        result = check_file(path, codesets_dir)
        unique = []
        for problem in result.problems:
            if str(problem) not in seen:
                seen.add(str(problem))
                unique.append(problem)
        if result.problems and not unique:
            result.summary = None
            result.problems = [Problem(str(path), None, "", "has problems in the files it uses (reported above)")]
        else:
            result.problems = unique or result.problems
        results.append(result)
    return results


def render(results: list[FileResult], fmt: str) -> tuple[str, str]:
    """(stdout, stderr) of check in the given format."""
    problems = [p for r in results for p in r.problems]
    warnings = [w for r in results for w in r.warnings]
    bad = sum(1 for r in results if not r.ok)
    if fmt == "json":
        def listed(items):
            return [{"path": p.path, "line": p.line, "field": p.field or None, "message": p.message} for p in items]

        payload = {
            "files": [{"path": r.path, "kind": r.kind, "ok": r.ok, "summary": r.summary} for r in results],
            "problems": listed(problems),
            "warnings": listed(warnings),
            "ok": not problems,
        }
        return json.dumps(payload, indent=2) + "\n", ""
    if fmt == "github":
        def escape(text: str) -> str:
            return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")

        lines = []
        for level, items in (("error", problems), ("warning", warnings)):
            for p in items:
                where = f"file={escape(p.path).replace(',', '%2C').replace(':', '%3A')}"
                if p.line:
                    where += f",line={p.line}"
                lines.append(f"::{level} {where},title=cohortlake check::"
                             f"{escape((p.field + ': ' if p.field else '') + p.message)}")
        summary = f"{len(results)} file(s) checked, {bad} with problems ({len(problems)} problem(s))"
        return "\n".join(lines + [summary]) + "\n", ""
    out = [f"{r.path}: ok: {r.summary}" for r in results if r.ok]
    err = [str(p) for p in problems] + [_warning_line(w) for w in warnings]
    summary = f"{len(results)} file(s) checked, {bad} with problems" + (f" ({len(problems)} problem(s))" if problems else "")
    if problems:
        err.append(summary)
    elif len(results) > 1:
        out.append(summary)
    return "\n".join(out) + "\n" if out else "", "\n".join(err) + "\n" if err else ""


def _warning_line(w: Problem) -> str:
    where = f"{w.path}:{w.line}" if w.line else w.path
    return f"{where}: warning: {w.field + ': ' if w.field else ''}{w.message}"
