"""Shared code-set files: where includes are looked up, and the library of sets they resolve to."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import ValidationError

from cohortlake import resources
from cohortlake.spec.messages import CODESET_FILE, Loc, as_json, _from_pydantic, _problem
from cohortlake.spec.model import CodeSet
from cohortlake.yamlfile import LocatedYaml, Problem, YamlError, load_located, read_text


# ---------------------------------------------------------------------------------------
# Shared code-set files
# ---------------------------------------------------------------------------------------


CODESETS_ENV = "COHORTLAKE_CODESETS"


def codeset_search_path(definition: str | Path, codesets_dir=None) -> list[Path]:
    """Where includes are looked up, in order: codesets/ beside the definition, then the library
    (``codesets_dir``, or the folders in $COHORTLAKE_CODESETS separated by the OS path separator),
    then the shipped library."""
    places = [Path(definition).parent / "codesets"]
    if codesets_dir is None:
        codesets_dir = [p for p in os.environ.get(CODESETS_ENV, "").split(os.pathsep) if p]
    elif isinstance(codesets_dir, (str, Path)):
        codesets_dir = [codesets_dir]
    places += [Path(p) for p in codesets_dir]
    shipped = resources.shipped_codesets()  # the package's cohort_defs/codesets
    if shipped.is_dir():
        places.append(shipped.resolve())
    unique: list[Path] = []
    for place in places:
        if not any(_same_dir(place, seen) for seen in unique):
            unique.append(place)
    return unique


def _same_dir(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return a == b


class Library:
    """Shared code-set files read for one definition, keyed "<stem>.<set>"."""

    def __init__(self, places: list[Path], problems: list[Problem]):
        self.places = places
        self.problems = problems
        self.sets: dict[str, CodeSet] = {}
        self.texts: dict[str, str] = {}  # file path → text, for the definition hash
        self.located: dict[str, LocatedYaml] = {}
        self.paths: dict[str, Path] = {}  # stem → the file found
        self.broken: set[str] = set()  # stems whose file has problems of its own
        self.files: dict[str, dict[str, CodeSet] | None] = {}  # stem → sets, None if unreadable

    def searched(self) -> str:
        return ", ".join(str(place) for place in self.places)

    def file(self, stem: str) -> dict[str, CodeSet] | None:
        """The sets of <stem>.yaml, the first found along the search path, read and validated once."""
        if stem in self.files:
            return self.files[stem]
        self.files[stem] = None
        path = next((place / f"{stem}.yaml" for place in self.places if (place / f"{stem}.yaml").is_file()), None)
        if path is None:
            return None
        self.paths[stem] = path
        try:
            text = read_text(path)
            self.texts[str(path)] = text
            located = load_located(path, text, strict=True)
        except YamlError as exc:
            self.broken.add(stem)
            self.problems.append(Problem(str(path), exc.line, "", exc.problem or str(exc)))
            return None
        self.located[stem] = located
        problems = codeset_file_problems(located)
        if problems:
            self.broken.add(stem)
            self.problems.extend(problems)
            return None
        sets = CODESET_FILE.validate_json(as_json(located.data), strict=True)
        self.files[stem] = sets
        for name, codeset in sets.items():
            self.sets[f"{stem}.{name}"] = codeset
        for name, codeset in sets.items():
            self._follow_includes(located, (name,), codeset)
        return sets

    def resolve(self, ref: str) -> str | None:
        """Why an include "<stem>.<set>" cannot be resolved, or None if it can."""
        stem, name = ref.split(".", 1)
        sets = self.file(stem)
        if sets is None:
            if stem in self.broken:
                return f"{stem}.yaml has errors (reported separately)"
            return f"no code-set file {stem}.yaml; looked in {self.searched()}"
        if name not in sets:
            return f"no set '{name}' in {stem}.yaml; it has: {', '.join(sets) or 'none'}"
        return None

    def _follow_includes(self, located: LocatedYaml, loc: Loc, codeset: CodeSet) -> None:
        for i, ref in enumerate(codeset.include):
            why = self.resolve(ref)
            if why:
                self.problems.append(_problem(located, loc + ("include", i), why))


def codeset_file_problems(located: LocatedYaml) -> list[Problem]:
    """Problems of a shared code-set file on its own (its includes are followed by the Library)."""
    data = located.data if located.data is not None else {}
    if not isinstance(data, dict):
        return [_problem(located, (), "a code-set file is a mapping of set name → code set")]
    try:
        CODESET_FILE.validate_json(as_json(data), strict=True)
    except ValidationError as exc:
        return _from_pydantic(located, exc, root=CodeSet)
    return []


def _find_cycle(start: str, lookup) -> list[str] | None:
    """An include path from `start` back to itself, if any."""
    stack = [(start, [start])]
    while stack:
        name, path = stack.pop()
        codeset = lookup(name)
        for ref in codeset.include if codeset else ():
            if ref == start:
                return path + [ref]
            if ref not in path:
                stack.append((ref, path + [ref]))
    return None
