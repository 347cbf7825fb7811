"""Load a cohort definition: YAML → Definition, with included code sets, checked across sections.

Every problem is collected and raised once as a YamlError whose lines read
``file:line: field: what is allowed``. When one section of the file is malformed the
others are still validated and cross-checked, so an analyst sees all mistakes at once.
"""

from __future__ import annotations

import hashlib
import typing
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any

from pydantic import TypeAdapter, ValidationError

from cohortlake.spec.library import Library, codeset_search_path
from cohortlake.spec.messages import as_json, _from_pydantic, _problem
from cohortlake.spec.model import Definition
from cohortlake.spec.references import _Checker
from cohortlake.yamlfile import LocatedYaml, Problem, YamlError, load_located, read_text



# ---------------------------------------------------------------------------------------
# Validation by section, so one broken section does not hide the others' problems
# ---------------------------------------------------------------------------------------


def _validate(located: LocatedYaml, problems: list[Problem]) -> tuple[Definition | None, SimpleNamespace]:
    data = located.data
    if not isinstance(data, dict):
        problems.append(_problem(located, (), "a definition is a mapping of keys (cohort:, title:, index:, ...)"))
        return None, SimpleNamespace(**{name: None for name in Definition.model_fields})
    try:
        definition = Definition.model_validate_json(as_json(data), strict=True)
        return definition, SimpleNamespace(**{name: getattr(definition, name) for name in Definition.model_fields})
    except ValidationError as exc:
        problems.extend(_from_pydantic(located, exc))
    sections = {}
    for name, info in Definition.model_fields.items():
        if name not in data:
            sections[name] = None if info.is_required() else info.get_default(call_default_factory=True)
        else:
            sections[name] = _section(info, data[name])
    return None, SimpleNamespace(**sections)


def _section(info, value: Any) -> Any:
    """A top-level section validated alone; entries of a mapping or list one by one (None = invalid).

    Its errors were already reported by the whole-model validation; this only recovers
    the valid parts so the cross-reference checks can still run on them.
    """
    annotation = info.annotation
    origin = typing.get_origin(annotation)

    def attempt(tp: Any, item: Any) -> Any:
        try:
            return TypeAdapter(tp).validate_json(as_json(item), strict=True)
        except ValidationError:
            return None

    if origin is dict and isinstance(value, dict):
        item_type = typing.get_args(annotation)[1]
        return {key: attempt(item_type, item) for key, item in value.items()}
    if origin is tuple and isinstance(value, list):
        item_type = typing.get_args(annotation)[0]
        return tuple(attempt(item_type, item) for item in value)
    return attempt(Annotated[annotation, *info.metadata] if info.metadata else annotation, value)



# ---------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------


def load_definition(path: str | Path, *, codesets_dir=None) -> Definition:
    """Load and check a cohort definition; raise YamlError listing every problem as file:line: field: message.

    Includes resolve in :func:`codeset_search_path` order; ``codesets_dir`` (a folder or a
    list of folders) is the library searched after ``codesets/`` beside the definition.
    """
    path = Path(path)
    text = read_text(path)
    located = load_located(str(path), text, strict=True)
    problems: list[Problem] = []
    definition, sections = _validate(located, problems)
    library = Library(codeset_search_path(path, codesets_dir), problems)
    _Checker(located, sections, library, problems).run()
    if problems:
        # The definition's own problems first, in file order; then those of shared files.
        problems = list(dict.fromkeys(problems))
        problems.sort(key=lambda p: (p.path != located.path, p.path, p.line or 0))
        error = YamlError("\n".join(dict.fromkeys(str(p) for p in problems)))
        error.problems = problems
        raise error

    digest = hashlib.sha256(text.encode("utf-8"))
    for file_path in sorted(library.texts):
        digest.update(f"\0{Path(file_path).name}\0".encode() + library.texts[file_path].encode("utf-8"))
    definition._library = dict(library.sets)
    definition._sha256 = digest.hexdigest()
    definition._path = str(path)
    return definition
