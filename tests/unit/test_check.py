"""The analyst's surface (issue 14): every input that once gave a traceback, ran unbounded or
was silently coerced now ends in located messages, fast; check covers many files and kinds;
includes find the shared library; psmatch chains into survival; init scaffolds a cohort."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cohortlake.cli import build_parser, main

from paths import REPO
DEFS = REPO / "cohort_defs"
REFERENCE = DEFS / "hcc_sorafenib_landmark.yaml"


def _check(capsys, *args) -> tuple[int, str, str]:
    code = main(["check", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _copy_reference(folder: Path, old: str = "", new: str = "", name: str = "def.yaml") -> Path:
    text = REFERENCE.read_text(encoding="utf-8")
    if old:
        assert old in text, old
        text = text.replace(old, new, 1)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def _line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


# --- no tracebacks, bounded time ------------------------------------------------------------

BILLION_LAUGHS = "".join(
    f"{a}: &{a} [{', '.join([f'*{b}'] * 9) if b else ', '.join(['lol'] * 9)}]\n"
    for a, b in zip("abcdefghi", ["", *"abcdefgh"])
)

BROKEN = {
    "impossible_date.yaml": ("study_period: {start: 2008-02-30, end: 2013-12-31}\n", 1,
                             "'2008-02-30' is not a real date (day is out of range for month)"),
    "recursive_alias.yaml": ("x: &l [*l]\n", 1, "recursive alias"),
    "complex_key.yaml": ("? [a, b]\n: 1\n", 1, "a key must be a name, not a list"),
    "billion_laughs.yaml": (BILLION_LAUGHS, None, "aliases (*name) expand to more than 10,000 values"),
    "merge_key.yaml": ("base: &b {from: 0, to: 1}\nw:\n  <<: *b\n", 3, "merge keys (<<: *name) are not supported"),
    "set_tag.yaml": ("cohort: !!set {a, b}\n", 1, "the tag !!set is not supported"),
    "custom_tag.yaml": ("cohort: !python/name:os.system x\n", 1, "the tag !python/name:os.system is not supported"),
    "deep_flow.yaml": ("x: " + "[" * 100_000 + "\n", 1, "nested more than 50 levels deep"),
    "deep_block.yaml": ("".join(" " * i + f"k{i}:\n" for i in range(400)), None, "nested"),
    "tab_indent.yaml": ("cohort: x\n\ttitle: y\n", 2, "not valid YAML"),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_yaml_is_one_located_message_fast(tmp_path, capsys, name):
    text, line, message = BROKEN[name]
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    started = time.monotonic()
    code, out, err = _check(capsys, path)
    assert time.monotonic() - started < 10.0  # a guard against parsing that blows up, not a timing (1 s flaked on a loaded machine)
    assert code == 1 and "Traceback" not in err
    assert message in err
    if line is not None:
        assert f"{path}:{line}: " in err


def test_not_utf8_definition_and_included_file(tmp_path, capsys):
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("cohort: x\ntitle: caf\xe9\n".encode("latin-1"))
    code, _, err = _check(capsys, latin)
    assert code == 1 and f"{latin}:2: not UTF-8 text: byte 0xe9 at column 11" in err
    (tmp_path / "codesets").mkdir()
    (tmp_path / "codesets" / "mine.yaml").write_bytes(b"hcc:\n  description: caf\xe9\n  icd9cm: ['155.0']\n")
    definition = _copy_reference(tmp_path, "  cirrhosis: {include: [liver_disease.cirrhosis]}",
                                 "  cirrhosis: {include: [liver_disease.cirrhosis, mine.hcc]}")
    code, _, err = _check(capsys, definition)
    assert code == 1 and f"{tmp_path / 'codesets' / 'mine.yaml'}:2: not UTF-8 text" in err


def test_a_folder_given_as_the_definition(tmp_path, capsys):
    assert main(["explain", str(tmp_path)]) == 1
    assert f"{tmp_path}: is a folder, not a file" in capsys.readouterr().err


def test_a_huge_file_is_refused_unread(tmp_path, capsys):
    path = tmp_path / "huge.yaml"
    with path.open("w") as handle:
        handle.write("cohort: x\npad: '")
        handle.write("a" * 52_000_000)
        handle.write("'\n")
    started = time.monotonic()
    code, _, err = _check(capsys, path)
    assert time.monotonic() - started < 1.0
    assert code == 1 and "is larger than 1,000,000 bytes" in err


def test_survival_out_pointing_at_a_file(tmp_path, capsys):
    data = tmp_path / "d.csv"
    data.write_text("time,event\n1,1\n2,0\n")
    out = tmp_path / "exists.txt"
    out.write_text("")
    assert main(["survival", "--data", str(data), "--time", "time", "--event", "event", "--out", str(out)]) == 1
    assert "--out must be a folder; a file of that name exists" in capsys.readouterr().err


# --- strict scalars -------------------------------------------------------------------------


@pytest.mark.parametrize("old, new, field, message", [
    ("    days: 60", "    days: yes", 'landmarks[1] "landmark".days', "expected a whole number, got text 'yes'"),
    ("    grace_days: 30", "    grace_days: true", "exposures.sorafenib.grace_days", "expected a whole number, got true"),
    ("    days: 60", '    days: "60"', 'landmarks[1] "landmark".days',
     "expected a whole number, got text '60' (a number in quotes; write it without quotes)"),
    ("    days: 60", "    days: 1:00", 'landmarks[1] "landmark".days', "expected a whole number, got text '1:00'"),
    ("    days: 60", "    days: 60.5", 'landmarks[1] "landmark".days', "expected a whole number, got the number 60.5"),
    ("title: ", "title: 2008-01-01 #", "title", "expected text, got text"),
])
def test_no_silent_coercion(tmp_path, capsys, old, new, field, message):
    path = _copy_reference(tmp_path, old, new)
    (tmp_path / "codesets").symlink_to(DEFS / "codesets")
    code, _, err = _check(capsys, path)
    if field == "title":  # a date where text is expected is read as the text it was written as
        assert code == 0
        return
    assert code == 1
    assert f"{path}:{_line_of(path, new.strip())}: {field}: {message}" in err.splitlines()


def test_yes_is_not_a_boolean(tmp_path, capsys):
    path = _copy_reference(tmp_path, "    require_alive: true", "    require_alive: yes")
    code, _, err = _check(capsys, path)
    assert code == 1 and "require_alive: expected true or false, got text 'yes' (write true or false" in err


# --- check over many files and kinds --------------------------------------------------------


def test_check_a_folder_of_every_kind(capsys):
    code, out, err = _check(capsys, DEFS)
    assert code == 0, err
    assert "cohort_defs/codesets/nci_comorbidity.yaml: ok: code-set file, 16 code sets" in out
    assert "cohort_defs/tests/hcc_sorafenib_landmark.yaml: ok: test patients, 75 for cohort" in out
    assert "16 file(s) checked, 0 with problems" in out


def test_check_reports_every_file_and_exits_1(tmp_path, capsys):
    (tmp_path / "codesets").symlink_to(DEFS / "codesets")
    a = _copy_reference(tmp_path, "    days: 60", "    days: yes", "a.yaml")
    b = _copy_reference(tmp_path, name="b.yaml")
    c = _copy_reference(tmp_path, "study_period:", "colour: red\nstudy_period:", "c.yaml")
    code, out, err = _check(capsys, a, b, c)
    assert code == 1
    assert f"{a}:" in err and f"{c}:" in err and f"{b}: ok:" in out
    assert "3 file(s) checked, 2 with problems (2 problem(s))" in err


def test_check_lints_code_set_and_test_patient_files(tmp_path, capsys):
    (tmp_path / "codesets").mkdir()
    shared = tmp_path / "codesets" / "drugs.yaml"
    shared.write_text("sorafenib:\n  ndc: ['5041948858', '50419-488-58']\n  include: [nowhere.x]\n")
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "def.yaml").write_text(f"definition: {REFERENCE}\npatients:\n  - id: p1\n    like: nobody\n"
                                    "    expect: {excluded_at: HCC tumor}\n")
    code, out, err = _check(capsys, tmp_path)
    assert code == 1
    assert f"{shared}:2: sorafenib.ndc[1]: a 10-digit NDC needs its dashes" in err
    assert f"{tests / 'def.yaml'}:4: " in err and "nobody" in err


def test_check_json_and_github_formats(tmp_path, capsys):
    path = _copy_reference(tmp_path, "    days: 60", "    days: yes")
    (tmp_path / "codesets").symlink_to(DEFS / "codesets")
    assert main(["check", "--format", "json", str(path)]) == 1
    payload = json.loads(capsys.readouterr().out)
    assert payload["ok"] is False
    assert payload["problems"] == [{"path": str(path), "line": _line_of(path, "days: yes"),
                                    "field": 'landmarks[1] "landmark".days',
                                    "message": "expected a whole number, got text 'yes'"}]
    assert main(["check", "--format", "github", str(path)]) == 1
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith(f"::error file={str(path).replace(':', '%3A')},line={_line_of(path, 'days: yes')},")


def test_paths_number_and_name_criteria_as_explain_does(tmp_path, capsys):
    path = _copy_reference(tmp_path, "window: {from: -30, to: 60}", "window: {from: 60, to: -30}")
    (tmp_path / "codesets").symlink_to(DEFS / "codesets")
    code, _, err = _check(capsys, path)
    assert code == 1
    assert 'criteria[10] "No other HCC-directed therapy in [-30, +60]".occurrence.window: from (60) is after to' in err
    main(["explain", str(REFERENCE)])
    assert "10. No other HCC-directed therapy in [-30, +60]" in capsys.readouterr().out


def test_errors_inside_included_files_carry_their_line(tmp_path, capsys):
    (tmp_path / "codesets").mkdir()
    (tmp_path / "codesets" / "mine.yaml").write_text("hcc:\n  icd9cm: ['155.0'\n")
    definition = _copy_reference(tmp_path, "  cirrhosis: {include: [liver_disease.cirrhosis]}",
                                 "  cirrhosis: {include: [liver_disease.cirrhosis, mine.hcc]}")
    code, _, err = _check(capsys, definition)
    assert code == 1
    assert f"{tmp_path / 'codesets' / 'mine.yaml'}:3: not valid YAML" in err


def test_one_top_level_typo_is_one_problem(tmp_path, capsys):
    path = _copy_reference(tmp_path, "\ncodesets:\n", "\ncodeset:\n")
    code, _, err = _check(capsys, path)
    problems = err.splitlines()[:-1]
    assert code == 1 and len(problems) == 1, err
    assert "codeset: unknown field; did you mean 'codesets'?" in problems[0]


# --- the code-set library -------------------------------------------------------------------


def test_a_copied_definition_finds_the_shipped_library(tmp_path, capsys):
    path = _copy_reference(tmp_path)  # no codesets/ beside it
    code, out, err = _check(capsys, path)
    assert code == 0, err


def test_library_order_option_and_environment(tmp_path, capsys, monkeypatch):
    library = tmp_path / "library"
    library.mkdir()
    (library / "local.yaml").write_text("hcc:\n  icd9cm: ['155.0']\n")
    path = _copy_reference(tmp_path, "  cirrhosis: {include: [liver_disease.cirrhosis]}",
                           "  cirrhosis: {include: [liver_disease.cirrhosis, local.hcc]}")
    code, _, err = _check(capsys, path)
    assert code == 1
    assert (f"no code-set file local.yaml; looked in {tmp_path / 'codesets'}, {(DEFS / 'codesets').resolve()}") in err
    assert _check(capsys, path, "--codesets", library)[0] == 0
    monkeypatch.setenv("COHORTLAKE_CODESETS", str(library))
    assert _check(capsys, path)[0] == 0
    # beside the definition wins over the library
    (tmp_path / "codesets").mkdir()
    (tmp_path / "codesets" / "local.yaml").write_text("other:\n  icd9cm: ['155.0']\n")
    code, _, err = _check(capsys, path)
    assert code == 1 and "no set 'hcc' in local.yaml; it has: other" in err


# --- psmatch → survival, python -m, help, init ----------------------------------------------


def _persons(path: Path) -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(7)
    n = 300
    age = rng.normal(70, 8, n).round(1)
    treated = (rng.random(n) < 1 / (1 + np.exp(-(age - 72) / 5))).astype(int)
    pd.DataFrame({"age": age, "treated": treated, "time": rng.exponential(300, n).round(),
                  "event": (rng.random(n) < 0.7).astype(int)}).to_csv(path, index=False)


def test_psmatch_then_survival_as_written(tmp_path, capsys):
    _persons(tmp_path / "persons.csv")
    assert main(["psmatch", "--data", str(tmp_path / "persons.csv"), "--treatment", "treated",
                 "--covariates", "age", "--out", str(tmp_path / "ps")]) == 0
    capsys.readouterr()
    matched = tmp_path / "ps" / "matched.csv"
    assert main(["survival", "--data", str(matched), "--time", "time", "--event", "event", "--group", "treated",
                 "--cluster", "match_id", "--weights", "weight", "--out", str(tmp_path / "km")]) == 0
    out = capsys.readouterr().out
    import pandas as pd

    rows = pd.read_csv(matched)
    unmatched = int(rows["match_id"].isna().sum())
    assert unmatched > 0 and f"left out {unmatched:,} unmatched row(s)" in out
    results = json.loads((tmp_path / "km" / "results.json").read_text())
    assert results["n"] == len(rows) - unmatched and results["input"]["left_out_unmatched"] == unmatched


def test_survival_time_unit(tmp_path, capsys):
    import pandas as pd

    days = pd.DataFrame({"t": [30.4375, 60.875, 91.3125, 121.75], "e": [1, 1, 0, 1]})
    days.to_csv(tmp_path / "days.csv", index=False)
    days.assign(t=[1, 2, 3, 4]).to_csv(tmp_path / "months.csv", index=False)
    for name, unit in (("days", "days"), ("months", "months")):
        assert main(["survival", "--data", str(tmp_path / f"{name}.csv"), "--time", "t", "--event", "e",
                     "--time-unit", unit, "--out", str(tmp_path / name)]) == 0
    capsys.readouterr()
    a = json.loads((tmp_path / "days" / "results.json").read_text())
    b = json.loads((tmp_path / "months" / "results.json").read_text())
    assert a["groups"] == b["groups"] and b["input"]["time_unit"] == "months"


def test_python_m_cohortlake_and_every_command_has_help_and_an_example():
    result = subprocess.run([sys.executable, "-m", "cohortlake", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "init" in result.stdout and "check" in result.stdout
    commands = build_parser()._subparsers._group_actions[0].choices
    for name, sub in commands.items():
        assert sub.description, name
        assert sub.epilog and sub.epilog.startswith("example:\n  cohortlake "), name


def test_init_scaffolds_a_cohort_that_checks_and_explains(tmp_path, capsys):
    assert main(["init", "liver_first", "--dir", str(tmp_path)]) == 0
    capsys.readouterr()
    code, out, err = _check(capsys, tmp_path)
    assert code == 0, err
    assert "3 file(s) checked, 0 with problems" in out
    assert main(["explain", str(tmp_path / "liver_first.yaml")]) == 0
    assert "1. Has a diagnosis of the condition" in capsys.readouterr().out
    assert main(["init", "liver_first", "--dir", str(tmp_path)]) == 1
    assert "already exist" in capsys.readouterr().err
    assert main(["init", "Liver-First", "--dir", str(tmp_path)]) == 1
