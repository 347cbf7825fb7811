"""YAML loading that remembers where each value came from, for error messages.

Definitions and mapping files are read with ``yaml.SafeLoader`` (no tags that run
code); every mapping key and sequence item keeps its line so a validation error can
say ``file:line: field: what is allowed``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from cohortlake.errors import UserError

Location = tuple[Any, ...]
ModelT = TypeVar("ModelT", bound=BaseModel)


class YamlError(UserError):
    """One or more problems in a YAML file, each with its line."""


@dataclass
class LocatedYaml:
    """Parsed YAML data plus the line (1-based) of every path in it."""

    path: str
    data: Any
    lines: dict[Location, int] = field(default_factory=dict)

    def line_of(self, loc: Location) -> int | None:
        """Line of the deepest known prefix of ``loc``."""
        loc = tuple(loc)
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.lines.get(())


def _construct(node: yaml.Node, loader: yaml.SafeLoader, here: Location, lines: dict) -> Any:
    lines.setdefault(here, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        result = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if key in result:
                raise YamlError(f"line {key_node.start_mark.line + 1}: key '{key}' appears twice")
            lines[here + (key,)] = key_node.start_mark.line + 1
            result[key] = _construct(value_node, loader, here + (key,), lines)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, loader, here + (i,), lines) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def load_located(path: str | Path, text: str | None = None) -> LocatedYaml:
    """Parse a YAML file safely, keeping line numbers; syntax errors name file and line."""
    path = str(path)
    if text is None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise UserError(f"{path}: file not found") from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        lines: dict[Location, int] = {}
        data = {} if node is None else _construct(node, loader, (), lines)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}" if mark else path
        raise YamlError(f"{where}: not valid YAML: {exc.problem}") from None
    except YamlError as exc:
        raise YamlError(f"{path}: {exc}".replace(f"{path}: line ", f"{path}:")) from None
    finally:
        loader.dispose()
    return LocatedYaml(path, data, lines)


def describe_validation_error(located: LocatedYaml, error: ValidationError) -> str:
    """Turn pydantic's errors into ``file:line: field: message`` lines."""
    out = []
    for item in error.errors():
        loc = tuple(part for part in item["loc"] if not (isinstance(part, str) and part.startswith("function-")))
        line = located.line_of(loc)
        where = f"{located.path}:{line}" if line else located.path
        field_name = ".".join(str(p) for p in loc) or "(top level)"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown field"
        elif item["type"] == "missing":
            message = "required field is missing"
        out.append(f"{where}: {field_name}: {message}")
    return "\n".join(out)


def parse_model(model: type[ModelT], located: LocatedYaml) -> ModelT:
    """Validate located YAML into a pydantic model, raising YamlError with file:line messages."""
    try:
        return model.model_validate(located.data)
    except ValidationError as exc:
        raise YamlError(describe_validation_error(located, exc)) from None
