"""Hypothesis mutates the shipped definitions (types, keys, values, structure, encodings,
anchors, tags) and check must answer every one with exit 0 or 1 and located messages, never
a traceback, within a second. COHORTLAKE_FUZZ_EXAMPLES raises the number of examples."""

from __future__ import annotations

import os
import time
from datetime import date
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cohortlake.spec.check import check_file

from paths import REPO
DEFS = REPO / "cohort_defs"
SHIPPED = sorted(DEFS.glob("*.yaml"))
TEXTS = {path.name: path.read_text(encoding="utf-8") for path in SHIPPED}
DATA = {name: yaml.safe_load(text) for name, text in TEXTS.items()}
EXAMPLES = int(os.environ.get("COHORTLAKE_FUZZ_EXAMPLES", "60"))

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["yes", "no", "on", "60", "1:30", "0x1A", "2008-02-30", "", " ", "index", "landmark",
                     "death", "C22.0", "571.5", "ABC", "Ω", "a" * 300, "none", "null", "~"]),
    st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 1, 1)),
    st.text(max_size=12),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                      max_leaves=6)


def _paths(node, here=()):
    yield here
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, here + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, here + (i,))


def _parent(data, path):
    for part in path[:-1]:
        data = data[part]
    return data


@st.composite
def mutated_data(draw):
    import copy

    name = draw(st.sampled_from(sorted(DATA)))
    data = copy.deepcopy(DATA[name])
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(data) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = _parent(data, path)
        action = draw(st.sampled_from(["replace", "delete", "rename", "wrap", "duplicate"]))
        key = path[-1]
        if action == "replace":
            parent[key] = draw(values)
        elif action == "delete":
            del parent[key]
        elif action == "rename" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=10))] = parent.pop(key)
        elif action == "wrap":
            parent[key] = [parent[key]]
        elif action == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[key]))
    return name, yaml.safe_dump(data, allow_unicode=True, sort_keys=False).encode("utf-8")


@st.composite
def mutated_text(draw):
    name = draw(st.sampled_from(sorted(TEXTS)))
    raw = TEXTS[name].encode("utf-8")
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(raw)))
        insert = draw(st.sampled_from([
            b"\xff\xfe", b"\xe9", b"&a ", b"*a", b"*nowhere", b"!!set ", b"!!binary ", b"!python/object ",
            b"<<: *a\n", b"? [a, b]\n: 1\n", b"[" * 60, b"{", b"\t", b"\x00", b"---\n", b"%YAML 1.1\n",
            b"'", b'"', b"\n  - ", b": ", b"2008-02-30", b"x: &r [*r]\n",
        ]))
        action = draw(st.sampled_from(["insert", "truncate", "delete"]))
        if action == "insert":
            raw = raw[:at] + insert + raw[at:]
        elif action == "truncate":
            raw = raw[:at]
        else:
            raw = raw[:at] + raw[at + draw(st.integers(1, 40)):]
    return name, raw


def _check(tmp_path: Path, name: str, raw: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(raw)
    codesets = tmp_path / "codesets"
    if not codesets.exists():
        codesets.symlink_to(DEFS / "codesets")
    started = time.process_time()  # CPU time: other work on a shared machine does not count
    result = check_file(path)  # any exception fails the test: that would be a traceback
    assert time.process_time() - started < 1.0, raw.decode("utf-8", "replace")
    for problem in result.problems:
        assert problem.path and str(problem).startswith(problem.path)
        assert problem.message and "Traceback" not in problem.message
        assert problem.line is not None or problem.path != str(path) or problem.field in ("", "(top level)") \
            or problem.message, problem


fuzz = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])


@fuzz
@given(case=mutated_data())
def test_mutated_values_and_structure(tmp_path, case):
    _check(tmp_path, *case)


@fuzz
@given(case=mutated_text())
def test_mutated_text_encodings_anchors_and_tags(tmp_path, case):
    _check(tmp_path, *case)
