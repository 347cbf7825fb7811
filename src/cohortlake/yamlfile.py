"""YAML loading that remembers where each value came from, and that cannot be abused.

Definitions and mapping files are read with ``yaml.SafeLoader``'s parser (no tags that
run code); every mapping key and sequence item keeps its line so a validation error can
say ``file:line: field: what is allowed``.

Whatever the file holds, loading ends in a value or one :class:`YamlError` naming the
file and line, within bounded time and memory: files above :data:`MAX_BYTES` are refused
unread, aliases may add at most :data:`MAX_ALIAS_VALUES` values (a "billion laughs" file
stops at once), nesting is capped at :data:`MAX_DEPTH`, and a recursive alias, a
non-text key, a merge key, a tag on a collection, an impossible date or bytes that are
not UTF-8 are each one located message.

``strict=True`` (cohort definitions and code-set files) reads scalars by the YAML 1.2
core schema: only ``true``/``false`` are booleans (``yes``, ``no``, ``on``, ``off`` stay
text) and only plain decimal numbers are numbers (``1:30``, ``0x1A``, ``1_000`` stay
text), so a value is never silently turned into something else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from cohortlake.errors import UserError

Location = tuple[Any, ...]
ModelT = TypeVar("ModelT", bound=BaseModel)

MAX_BYTES = 1_000_000
"""Largest YAML file read (a cohort definition is a few kB; the biggest shipped file is 30 kB)."""
MAX_ALIAS_VALUES = 10_000
"""Most values aliases (``*name``) may add beyond the file's own."""
MAX_DEPTH = 50
"""Deepest nesting of mappings and lists."""


class YamlError(UserError):
    """One or more problems in a YAML file, each with its line."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None, problem: str | None = None):
        super().__init__(message)
        self.path, self.line, self.problem = path, line, problem


class YamlDateError(YamlError, ValueError):
    """An impossible date (2008-02-30); a ValueError too, as YAML's own date parsing raises."""


def _fail(path: str, line: int | None, problem: str) -> YamlError:
    where = f"{path}:{line}" if line else path
    return YamlError(f"{where}: {problem}", path=path, line=line, problem=problem)


@dataclass(frozen=True)
class Problem:
    """One mistake, placed in a file."""

    path: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


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


def read_text(path: str | Path) -> str:
    """A YAML file's text: missing, a folder, unreadable, too large or not UTF-8 is one message."""
    name = str(path)
    path = Path(path)
    try:
        if path.is_dir():
            raise _fail(name, None, "is a folder, not a file")
        with path.open("rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise _fail(name, None, "file not found") from None
    except PermissionError:
        raise _fail(name, None, "cannot be read (permission denied)") from None
    except IsADirectoryError:
        raise _fail(name, None, "is a folder, not a file") from None
    except OSError as exc:
        raise _fail(name, None, f"cannot be read ({exc.strerror or exc})") from None
    if len(raw) > MAX_BYTES:
        raise _fail(name, None, f"is larger than {MAX_BYTES:,} bytes; a YAML file here is a few kB")
    return decode(name, raw)


def decode(name: str, raw: bytes) -> str:
    """UTF-8 text (a byte-order mark is dropped); other bytes name their line and column."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        column = exc.start - (before.rfind(b"\n") + 1) + 1
        raise _fail(name, line, f"not UTF-8 text: byte 0x{raw[exc.start]:02x} at column {column}; "
                                "save the file as UTF-8") from None


# --- scalars: YAML 1.2 core schema for strict files ---------------------------------------


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that stops at the first flow collection nested too deep (scanning them is quadratic)."""

    def fetch_flow_collection_start(self, TokenClass):
        if self.flow_level >= MAX_DEPTH:
            raise yaml.scanner.ScannerError(None, None, f"[ or {{ nested more than {MAX_DEPTH} levels deep",
                                            self.get_mark())
        super().fetch_flow_collection_start(TokenClass)


class _StrictLoader(_BoundedLoader):
    """SafeLoader whose plain scalars resolve by the YAML 1.2 core schema (plus dates)."""

    yaml_implicit_resolvers: dict = {}


_STRICT_RESOLVERS = [
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    ("tag:yaml.org,2002:int", r"^[-+]?[0-9]+$", list("-+0123456789")),
    ("tag:yaml.org,2002:float",
     r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
     list("-+0123456789.")),
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:merge", r"^(?:<<)$", ["<"]),
    ("tag:yaml.org,2002:timestamp",
     r"^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?"
     r"(?:(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?"
     r"(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)?)$", list("0123456789")),
]
for _tag, _pattern, _first in _STRICT_RESOLVERS:
    _StrictLoader.add_implicit_resolver(_tag, re.compile(_pattern), _first)

_SCALAR_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "timestamp")}
_MAP_TAG, _SEQ_TAG, _MERGE_TAG = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq", "tag:yaml.org,2002:merge"


def _short_tag(tag: str) -> str:
    return tag.replace("tag:yaml.org,2002:", "!!")


class _Builder:
    """Turns the composed node graph into Python values, keeping lines, within the limits."""

    def __init__(self, path: str, loader: yaml.SafeLoader):
        self.path, self.loader = path, loader
        self.lines: dict[Location, int] = {}
        self.seen: set[int] = set()
        self.visits = 0
        self.open: set[int] = set()

    def fail(self, node: yaml.Node, problem: str) -> YamlError:
        return _fail(self.path, node.start_mark.line + 1, problem)

    def build(self, node: yaml.Node, here: Location, depth: int = 0) -> Any:
        self.lines.setdefault(here, node.start_mark.line + 1)
        self.visits += 1
        self.seen.add(id(node))
        if self.visits - len(self.seen) > MAX_ALIAS_VALUES:
            raise self.fail(node, f"aliases (*name) expand to more than {MAX_ALIAS_VALUES:,} values; "
                                  "write the values out instead")
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node)
        if depth >= MAX_DEPTH:
            raise self.fail(node, f"nested more than {MAX_DEPTH} levels deep")
        if id(node) in self.open:
            raise self.fail(node, "a recursive alias: this anchor's value contains itself")
        self.open.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self.mapping(node, here, depth)
            if node.tag != _SEQ_TAG:
                raise self.fail(node, f"the tag {_short_tag(node.tag)} is not supported; write a plain list")
            return [self.build(item, here + (i,), depth + 1) for i, item in enumerate(node.value)]
        finally:
            self.open.discard(id(node))

    def mapping(self, node: yaml.MappingNode, here: Location, depth: int) -> dict:
        if node.tag != _MAP_TAG:
            raise self.fail(node, f"the tag {_short_tag(node.tag)} is not supported; write a plain mapping")
        result: dict = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == _MERGE_TAG:
                raise _fail(self.path, line, "merge keys (<<: *name) are not supported; write the keys out")
            if not isinstance(key_node, yaml.ScalarNode):
                kind = "a list" if isinstance(key_node, yaml.SequenceNode) else "a mapping"
                raise _fail(self.path, line, f"a key must be a name, not {kind} (a '? ' complex key)")
            key = self.scalar(key_node)
            if key in result:
                raise _fail(self.path, line, f"key '{key}' appears twice")
            self.lines[here + (key,)] = line
            result[key] = self.build(value_node, here + (key,), depth + 1)
        return result

    def scalar(self, node: yaml.ScalarNode) -> Any:
        if node.tag not in _SCALAR_TAGS:
            raise self.fail(node, f"the tag {_short_tag(node.tag)} is not supported; write a plain value")
        try:
            return self.loader.construct_object(node, deep=True)
        except (ValueError, OverflowError) as exc:
            if node.tag.endswith(":timestamp"):
                problem = f"'{node.value}' is not a real date ({exc})"
                line = node.start_mark.line + 1
                raise YamlDateError(f"{self.path}:{line}: {problem}", path=self.path, line=line,
                                    problem=problem) from None
            raise self.fail(node, f"'{node.value}' cannot be read as {_short_tag(node.tag)} ({exc})") from None


def load_located(path: str | Path, text: str | None = None, *, strict: bool = False) -> LocatedYaml:
    """Parse a YAML file safely, keeping line numbers; every problem names file and line.

    ``strict`` reads scalars by the YAML 1.2 core schema (see the module docstring).
    """
    path = str(path)
    if text is None:
        text = read_text(path)
    elif len(text) > MAX_BYTES:
        raise _fail(path, None, f"is larger than {MAX_BYTES:,} bytes; a YAML file here is a few kB")
    loader = None
    try:
        loader = (_StrictLoader if strict else _BoundedLoader)(text)  # its reader rejects control characters
        builder = _Builder(path, loader)
        node = loader.get_single_node()
        data = {} if node is None else builder.build(node, ())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "not valid YAML"
        raise _fail(path, mark.line + 1 if mark else None, f"not valid YAML: {problem}") from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        raise _fail(path, line, f"not valid YAML: character #x{exc.character:04x} is not allowed in YAML text") from None
    except yaml.YAMLError as exc:
        raise _fail(path, None, f"not valid YAML: {exc}") from None
    except RecursionError:
        raise _fail(path, None, f"nested too deeply (at most {MAX_DEPTH} levels)") from None
    finally:
        if loader is not None:
            loader.dispose()
    return LocatedYaml(path, data, builder.lines)


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
