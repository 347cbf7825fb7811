"""Fixed-record-length layouts as NCI ships them: the INFILE/INPUT part of a SAS program.

Only the subset real SEER-Medicare layout programs use is understood:

- ``INFILE 'file' LRECL=n`` with ``MISSOVER``, ``PAD``, ``TRUNCOVER`` (and ``RECFM=F|V``);
- ``INPUT`` with absolute and relative column pointers (``@1``, ``@00013``, ``+2``),
  column ranges (``NAME $ 1-10``, ``NAME 11-14``, ``NAME 15``) and informats
  (``$CHARw.``, ``$w.``, ``w.``, ``w.d``, ``YYMMDDw.``, ``MMDDYYw.``, ``DATEw.``);
- ``/* comments */``, ``* comment;`` statements, and ``DATA``, ``FILENAME``, ``LIBNAME``,
  ``LABEL``, ``LENGTH``, ``FORMAT``, ``RUN`` statements, which say nothing about positions
  and are skipped.

Anything else is a user error naming the file, the line and the construct. This module
imports no Spark: it only turns the program text into field positions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from cohortlake.errors import UserError

IGNORED_STATEMENTS = {"DATA", "FILENAME", "LIBNAME", "LABEL", "LENGTH", "FORMAT", "RUN"}
INFILE_OPTIONS = {"MISSOVER", "PAD", "TRUNCOVER"}
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,31}$")
INFORMAT = re.compile(r"(\$?)([A-Za-z]*)(\d*)\.(\d*)$")
DATE_INFORMATS = {"YYMMDD": (8, 8), "MMDDYY": (8, 10), "DATE": (9, 9)}
"""Date informat name: (smallest, largest) width read here."""


@dataclass(frozen=True)
class Field:
    """One column of a record: 1-based first position, width, and how SAS would read it."""

    name: str
    start: int
    width: int
    kind: str
    """``char`` (``$CHARw.``: blanks kept in front), ``char_left`` (``$w.``: leading blanks
    dropped), ``numeric`` (``w.``/``w.d``), or a date informat ``yymmdd``, ``mmddyy``, ``date``."""
    decimals: int = 0
    informat: str = ""

    @property
    def end(self) -> int:
        return self.start + self.width - 1


@dataclass(frozen=True)
class RecordLayout:
    """The fields of a fixed-length record and its length (LRECL, or the last field's end)."""

    path: str
    fields: tuple[Field, ...]
    record_length: int

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fields]


def _strip_block_comments(text: str) -> str:
    """``/* … */`` replaced by blanks of the same shape, so offsets keep their line numbers."""
    return re.sub(r"/\*.*?\*/", lambda m: re.sub(r"[^\n]", " ", m.group(0)), text, flags=re.S)


def _statements(text: str):
    """(offset, statement text) of each ``;``-terminated statement; quotes may hold ``;``."""
    start, quote = 0, None
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == ";":
            yield start, text[start:i]
            start = i + 1
    if text[start:].strip():
        yield start, text[start:]


def _tokens(statement: str, offset: int):
    """(offset, token) of blank-separated tokens; a quoted string is one token."""
    for match in re.finditer(r"'[^']*'|\"[^\"]*\"|[^\s]+", statement):
        yield offset + match.start(), match.group(0)


def parse_layout(path: str | Path, text: str | None = None) -> RecordLayout:
    """The record layout a SAS program's INFILE and INPUT statements describe."""
    path = Path(path)
    if text is None:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as error:
            raise UserError(f"{path}: cannot read the SAS layout ({error.strerror})") from None
    source = _strip_block_comments(text)

    def line_of(offset: int) -> int:
        return source.count("\n", 0, offset) + 1

    def fail(offset: int, what: str) -> UserError:
        return UserError(f"{path}: line {line_of(offset)}: {what}")

    record_length = None
    fields: list[Field] = []
    for offset, statement in _statements(source):
        tokens = list(_tokens(statement, offset))
        if not tokens:
            continue
        first_offset, first = tokens[0]
        if first.startswith("*"):
            continue  # a `* comment;` statement
        keyword = first.upper()
        if keyword in IGNORED_STATEMENTS:
            continue
        if keyword == "INFILE":
            record_length = _infile(tokens[1:], fail)
        elif keyword == "INPUT":
            if fields:
                raise fail(first_offset, "unsupported SAS construct 'a second INPUT statement'")
            fields = _input(tokens[1:], fail)
        else:
            raise fail(first_offset, f"unsupported SAS construct '{first}' (a layout may hold DATA, INFILE, "
                                     "INPUT, LABEL, LENGTH, FORMAT and RUN statements and comments)")
    if not fields:
        raise UserError(f"{path}: no INPUT statement with column positions")
    seen = set()
    for f in fields:
        if f.name.upper() in seen:
            raise UserError(f"{path}: column {f.name} appears twice in the INPUT statement")
        seen.add(f.name.upper())
    last = max(f.end for f in fields)
    if record_length is not None and last > record_length:
        raise UserError(f"{path}: column {max(fields, key=lambda f: f.end).name} ends at position {last}, "
                        f"beyond LRECL={record_length}")
    return RecordLayout(str(path), tuple(fields), record_length or last)


def _infile(tokens, fail) -> int | None:
    record_length = None
    for i, (offset, token) in enumerate(tokens):
        upper = token.upper()
        if i == 0 and not ("=" in token or upper in INFILE_OPTIONS):
            continue  # the file reference or quoted path
        if upper in INFILE_OPTIONS:
            continue
        key, _, value = upper.partition("=")
        if key == "LRECL" and value.isdigit() and int(value) > 0:
            record_length = int(value)
        elif key == "RECFM" and value in ("F", "V"):
            continue
        else:
            raise fail(offset, f"unsupported SAS construct '{token}' in INFILE "
                               "(understood: LRECL=n, RECFM=F|V, MISSOVER, PAD, TRUNCOVER)")
    return record_length


def _informat(offset: int, token: str, dollar: bool, fail) -> tuple[str, int, int]:
    """(kind, width, decimals) of an informat token such as ``$CHAR10.``, ``8.2``, ``YYMMDD8.``."""
    match = INFORMAT.match(token)
    if not match:
        raise fail(offset, f"unsupported SAS construct '{token}' in INPUT")
    char = dollar or match.group(1) == "$"
    name, width, decimals = match.group(2).upper(), match.group(3), match.group(4)
    if not width:
        raise fail(offset, f"unsupported SAS construct '{token}': the informat needs a width")
    width_value = int(width)
    if char and name in ("", "CHAR") and not decimals:
        return ("char" if name == "CHAR" else "char_left"), width_value, 0
    if not char and name == "":
        return "numeric", width_value, int(decimals or 0)
    if not char and name in DATE_INFORMATS and not decimals:
        low, high = DATE_INFORMATS[name]
        if not low <= width_value <= high or (name == "MMDDYY" and width_value == 9):
            raise fail(offset, f"unsupported SAS construct '{token}': widths read are "
                               + ("8 and 10" if name == "MMDDYY" else str(low)))
        return name.lower(), width_value, 0
    raise fail(offset, f"unsupported SAS construct '{token}' (informats read: $CHARw., $w., w., w.d, "
                       "YYMMDD8., MMDDYY8., MMDDYY10., DATE9.)")


def _input(tokens, fail) -> list[Field]:
    fields: list[Field] = []
    pointer = 1
    i = 0
    while i < len(tokens):
        offset, token = tokens[i]
        if token in ("@", "+") and i + 1 < len(tokens) and tokens[i + 1][1].isdigit():
            i += 1  # `@ 1`: pointer and position written apart
            token = token + tokens[i][1]
        if token.startswith("@") or token.startswith("+"):
            number = token[1:]
            if not number.isdigit():
                raise fail(offset, f"unsupported SAS construct '{token}' (pointers read: @n and +n)")
            pointer = int(number) if token[0] == "@" else pointer + int(number)
            if pointer < 1:
                raise fail(offset, f"column pointer '{token}' before position 1")
            i += 1
            continue
        if not NAME.match(token):
            raise fail(offset, f"unsupported SAS construct '{token}' in INPUT (expected @n, a column name, "
                               "a range such as 1-10, or an informat such as $CHAR10.)")
        name = token
        i += 1
        dollar = False
        if i < len(tokens) and tokens[i][1] == "$":
            dollar = True
            i += 1
        if i >= len(tokens):
            raise fail(offset, f"column {name} has no position range or informat")
        spec_offset, spec = tokens[i]
        range_match = re.fullmatch(r"(\d+)(?:-(\d+))?", spec)
        if range_match:
            first = int(range_match.group(1))
            last = int(range_match.group(2) or first)
            if first < 1 or last < first:
                raise fail(spec_offset, f"column range '{spec}' of {name} is empty")
            decimals = 0
            if i + 1 < len(tokens) and re.fullmatch(r"\.\d+", tokens[i + 1][1]):
                i += 1
                decimals = int(tokens[i][1][1:])
            kind = "char_left" if dollar else "numeric"
            fields.append(Field(name, first, last - first + 1, kind, decimals, f"{'$ ' if dollar else ''}{spec}"))
            pointer = last + 1
        else:
            kind, width, decimals = _informat(spec_offset, spec, dollar, fail)
            fields.append(Field(name, pointer, width, kind, decimals, spec))
            pointer += width
        i += 1
    return fields
