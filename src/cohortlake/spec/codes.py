"""Code-set entries: how an analyst writes a code, and what it matches.

Every entry normalises to one of three kinds, which the Spark engine compiles to the
same semantics and the tests' reference evaluator checks with :func:`matches`:

* ``exact``  — the code equals ``value`` (``"V58.0"`` → ``V580``);
* ``prefix`` — the code starts with ``value`` (``"070.2x"``, ``"0702*"`` → ``0702``);
* ``range``  — the code's first ``len(low)`` characters lie in ``[low, high]``, compared
  as text (``"77401-77416"``; ``"401-405"`` covers 401 to 405 and every code under them).

Codes are stored without dots and in upper case, as the canonical tables hold them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from cohortlake.vocabulary import CodeSystem


class CodeError(ValueError):
    """A code-set entry that does not fit its system's syntax."""


@dataclass(frozen=True)
class CodeEntry:
    """One normalised code-set entry; ``as_written`` keeps the analyst's spelling for explain."""

    system: CodeSystem
    kind: Literal["exact", "prefix", "range"]
    as_written: str
    value: str | None = None
    low: str | None = None
    high: str | None = None


# Full codes, without dots. A range's bounds must be full codes of the system too (for
# ICD-9-CM a three-digit category such as 401 is one).
_FULL = {
    CodeSystem.icd9cm: (r"\d{3,5}|V\d{2,4}|E\d{3,4}", "3-5 digits, V + 2-4 digits or E + 3-4 digits (e.g. 571.5, V58.0, E935.2)"),
    CodeSystem.icd10cm: (r"[A-Z]\d[0-9A-Z]{1,5}", "a letter, a digit, then 1-5 letters or digits (e.g. K74.60)"),
    CodeSystem.icd9pcs: (r"\d{2,4}", "2-4 digits (e.g. 50.22)"),
    CodeSystem.icd10pcs: (r"[0-9A-HJ-NP-Z]{7}", "7 letters or digits, no I or O (e.g. 0FT00ZZ)"),
    CodeSystem.hcpcs: (r"\d{4}[0-9A-Z]|[A-Z]\d{4}", "5 characters: 4 digits + a digit or letter (CPT), or a letter + 4 digits (HCPCS level II)"),
    CodeSystem.ndc: (r"\d{11}", "11 digits, or 10 digits with dashes as 4-4-2, 5-3-2 or 5-4-1"),
    CodeSystem.icdo3_site: (r"C\d{2,3}", "C + 2-3 digits (e.g. C22.0)"),
    CodeSystem.icdo3_histology: (r"\d{4}", "4 digits (e.g. 8170)"),
}

# The JSON Schema's view of an entry: the characters and shape a system allows, dots, a
# trailing x/* prefix marker and a low-high range included. Looser than normalise (which
# also places dots, orders ranges and checks NDC layouts); editors flag the rest.
def _schema_pattern(exact: str, prefix: str, marker: str = r"(?:[xX]+|\*)") -> str:
    return rf"^\s*(?:{exact}(?:\s*-\s*{exact})?|{prefix}{marker})\s*$"


SCHEMA_PATTERNS = {
    CodeSystem.icd9cm: _schema_pattern(r"(?:[0-9]{3}|[Vv][0-9]{2}|[Ee][0-9]{3})(?:\.?[0-9]{1,2})?",
                                       r"(?:[0-9]{1,3}|[VvEe][0-9]{0,3})\.?(?:[0-9]{1,2})?"),
    CodeSystem.icd10cm: _schema_pattern(r"[A-Za-z][0-9][0-9A-Za-z](?:\.?[0-9A-Za-z]{1,4})?",
                                        r"[A-Za-z](?:[0-9][0-9A-Za-z]?\.?(?:[0-9A-Za-z]{1,3})?)?"),
    CodeSystem.icd9pcs: _schema_pattern(r"[0-9]{2}(?:\.?[0-9]{1,2})?", r"[0-9]{1,2}\.?[0-9]?"),
    CodeSystem.icd10pcs: _schema_pattern(r"[0-9A-HJ-NP-Za-hj-np-z]{7}", r"[0-9A-HJ-NP-Za-hj-np-z]{1,6}", r"\*"),
    CodeSystem.hcpcs: _schema_pattern(r"(?:[0-9]{4}[0-9A-Za-z]|[A-Za-z][0-9]{4})", r"(?:[0-9]{1,4}|[A-Za-z][0-9]{0,3})"),
    CodeSystem.ndc: r"^\s*(?:[0-9]{11}|[0-9]{4}-[0-9]{4}-[0-9]{2}|[0-9]{5}-[0-9]{3,4}-[0-9]{1,2}|[0-9]{1,10}\*)\s*$",
    CodeSystem.icdo3_site: _schema_pattern(r"[Cc][0-9]{2}(?:\.?[0-9])?", r"[Cc][0-9]{0,2}\.?"),
    CodeSystem.icdo3_histology: _schema_pattern(r"[0-9]{4}", r"[0-9]{1,3}"),
}

# What may start a full code: a prefix entry must be a non-empty start of some valid code.
_PREFIX = {
    CodeSystem.icd9cm: r"\d{1,4}|V\d{0,3}|E\d{0,3}",
    CodeSystem.icd10cm: r"[A-Z](\d[0-9A-Z]{0,4})?",
    CodeSystem.icd9pcs: r"\d{1,3}",
    CodeSystem.icd10pcs: r"[0-9A-HJ-NP-Z]{1,6}",
    CodeSystem.hcpcs: r"\d{1,4}|[A-Z]\d{0,3}",
    CodeSystem.ndc: r"\d{1,10}",
    CodeSystem.icdo3_site: r"C\d{0,2}",
    CodeSystem.icdo3_histology: r"\d{1,3}",
}

# Systems whose codes are written with a dot that the data does not carry.
_DOTTED = {CodeSystem.icd9cm, CodeSystem.icd10cm, CodeSystem.icd9pcs, CodeSystem.icd10pcs, CodeSystem.icdo3_site}

# ICD-10-PCS uses X as a real seventh character ("0DB68ZX" = diagnostic), so only '*'
# marks a prefix there; elsewhere a trailing run of x/X does too.
_TRAILING_X = re.compile(r"^(?P<stem>.*?)(?:\*|[xX]+)$")
_TRAILING_STAR = re.compile(r"^(?P<stem>.*?)\*$")

# Dashed 10-digit NDC layouts and where the zero goes to reach 11 digits (5-4-2).
_NDC_LAYOUTS = {(4, 4, 2): 0, (5, 3, 2): 1, (5, 4, 1): 2, (5, 4, 2): None}


def _fullmatch(pattern: str, text: str) -> bool:
    return re.fullmatch(pattern, text) is not None


# Where the dot sits when a code is written with one: a misplaced dot is a typo
# ("57.5" for "571.5"), not a different spelling.
_DOT_AFTER = {
    CodeSystem.icd9cm: 3, CodeSystem.icd10cm: 3, CodeSystem.icd9pcs: 2, CodeSystem.icdo3_site: 3,
}


def _clean(system: CodeSystem, text: str, check_dot: bool = False) -> str:
    text = text.strip().upper()
    if system in _DOTTED and "." in text:
        after = _DOT_AFTER.get(system)
        if after is not None and text.startswith("E") and system is CodeSystem.icd9cm:
            after = 4
        if check_dot and (text.count(".") > 1 or (after is not None and text.index(".") != after)):
            example = {3: "571.5", 2: "50.22", 4: "E935.2"}[after] if after else ""
            raise CodeError(f"misplaced dot in '{text}': a {system} code has it after {after} characters (e.g. {example})")
        text = text.replace(".", "")
    return text


def _ndc(written: str) -> str:
    """An NDC as written → 11 digits (5-4-2)."""
    text = written.strip()
    if "-" not in text:
        if _fullmatch(r"\d{11}", text):
            return text
        if _fullmatch(r"\d{10}", text):
            raise CodeError("a 10-digit NDC needs its dashes (4-4-2, 5-3-2 or 5-4-1) to be converted to 11 digits")
        raise CodeError(f"not an NDC; expected {_FULL[CodeSystem.ndc][1]}")
    parts = text.split("-")
    layout = tuple(len(p) for p in parts)
    if len(parts) != 3 or not all(p.isdigit() for p in parts) or layout not in _NDC_LAYOUTS:
        raise CodeError(f"not an NDC; expected {_FULL[CodeSystem.ndc][1]}")
    pad = _NDC_LAYOUTS[layout]
    if pad is not None:
        parts[pad] = "0" + parts[pad]
    return "".join(parts)


def normalise(system: CodeSystem | str, entry: str) -> CodeEntry:
    """Parse one entry as written into an exact code, a prefix or a range; raise CodeError if malformed."""
    system = CodeSystem(system)
    if not isinstance(entry, str) or not entry.strip():
        raise CodeError("a code must be a non-empty string (quote codes such as '0702')")
    written = entry
    pattern, expected = _FULL[system]

    if system is CodeSystem.ndc:
        star = _TRAILING_STAR.match(entry.strip())
        if star:
            stem = star["stem"]
            if not _fullmatch(_PREFIX[system], stem):
                raise CodeError("an NDC prefix is 1-10 digits without dashes followed by '*'")
            return CodeEntry(system, "prefix", written, value=stem)
        return CodeEntry(system, "exact", written, value=_ndc(entry))

    if "-" in entry:
        bounds = entry.split("-")
        if len(bounds) != 2:
            raise CodeError("a range is written low-high, e.g. 77401-77416")
        low, high = (_clean(system, b, check_dot=True) for b in bounds)
        for bound in (low, high):
            if not _fullmatch(pattern, bound):
                raise CodeError(f"range bound '{bound}' is not a {system} code; expected {expected}")
        if len(low) != len(high):
            raise CodeError(f"range bounds '{low}' and '{high}' must have the same length")
        if low > high:
            raise CodeError(f"range low '{low}' is after high '{high}'")
        return CodeEntry(system, "range", written, low=low, high=high)

    text = _clean(system, entry, check_dot=True)
    marker = _TRAILING_STAR if system is CodeSystem.icd10pcs else _TRAILING_X
    prefix = marker.match(text)
    # A bare "X" would strip to nothing; let the exact-code check below reject it.
    if prefix and prefix["stem"]:
        stem = prefix["stem"]
        if not _fullmatch(_PREFIX[system], stem):
            raise CodeError(f"'{stem}' cannot start a {system} code; expected {expected}")
        return CodeEntry(system, "prefix", written, value=stem)
    if not _fullmatch(pattern, text):
        raise CodeError(f"not a {system} code; expected {expected}, a prefix ending in x or *, or a range low-high")
    return CodeEntry(system, "exact", written, value=text)


def normalise_generic_name(pattern: str) -> str:
    """A generic-name pattern → the lower-case text searched for inside dispensing.generic_name."""
    if not isinstance(pattern, str) or not pattern.strip():
        raise CodeError("a generic name pattern must be a non-empty string")
    return pattern.strip().lower()


def canonical_code(system: CodeSystem | str, code: str) -> str:
    """A code as stored in the data (dots removed, upper case), for comparison."""
    return _clean(CodeSystem(system), code)


def matches(entry: CodeEntry, code: str | None) -> bool:
    """Whether a data code (any dots are ignored) falls under the entry."""
    if code is None:
        return False
    code = canonical_code(entry.system, code)
    if entry.kind == "exact":
        return code == entry.value
    if entry.kind == "prefix":
        return code.startswith(entry.value)
    head = code[: len(entry.low)]
    return len(head) == len(entry.low) and entry.low <= head <= entry.high


def matches_generic_name(pattern: str, generic_name: str | None) -> bool:
    """Case-insensitive substring match of a generic-name pattern on dispensing.generic_name."""
    return generic_name is not None and normalise_generic_name(pattern) in generic_name.lower()


@dataclass(frozen=True)
class NormalisedCodeSet:
    """A code set with its includes merged: normalised entries plus generic-name patterns."""

    name: str
    description: str | None
    entries: tuple[CodeEntry, ...]
    generic_names: tuple[str, ...] = ()

    def for_system(self, system: CodeSystem | str) -> tuple[CodeEntry, ...]:
        """Entries of one coding system."""
        return tuple(e for e in self.entries if e.system == system)

    @property
    def systems(self) -> set[str]:
        """Systems with at least one entry (generic_name included)."""
        found: set[str] = {e.system.value for e in self.entries}
        return found | ({"generic_name"} if self.generic_names else set())

    def matches(self, system: CodeSystem | str, code: str | None) -> bool:
        """Whether a data code of `system` is in the set."""
        return any(matches(e, code) for e in self.for_system(system))

    def matches_generic_name(self, generic_name: str | None) -> bool:
        """Whether a dispensing generic name contains one of the set's patterns."""
        return any(matches_generic_name(p, generic_name) for p in self.generic_names)
