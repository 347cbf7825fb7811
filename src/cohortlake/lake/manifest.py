"""Run manifests: what a step read and wrote, with which code, and how long it took.

A manifest pins every input by its Delta version, so re-running a step against the
same versions with the same package, seed and definition reproduces its output.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

import cohortlake
from cohortlake.errors import UserError


def _utc_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def definition_sha256(text: str) -> str:
    """Hex sha256 of a definition's text (UTF-8)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


_STANDARD_FIELDS = ("step", "started_utc", "finished_utc", "package_version", "spark_version", "backend",
                    "spark_master", "seed", "definition_sha256", "tables_read", "tables_written", "row_counts",
                    "timings_seconds", "extra")


class RunManifest:
    """Record of one step run; fill it while the step runs, then :meth:`write` it."""

    def __init__(
        self,
        step: str,
        *,
        seed: int | None = None,
        definition_text: str | None = None,
        extra: dict[str, Any] | None = None,
    ):
        self.step = step
        self.seed = seed
        self.definition_sha256 = definition_sha256(definition_text) if definition_text is not None else None
        self.extra: dict[str, Any] = dict(extra or {})
        self.started_utc = _utc_iso()
        self.finished_utc: str | None = None
        self.package_version = cohortlake.__version__
        self.spark_version: str | None = None
        self.backend: str | None = None
        self.spark_master: str | None = None
        self.tables_read: dict[str, int] = {}
        self.tables_written: dict[str, int] = {}
        self.row_counts: dict[str, int] = {}
        self.timings_seconds: dict[str, float] = {}
        # Fields a reader of this kind of manifest looks up first (a run's cohort, its steps'
        # seconds and manifests): written at the top level, beside the standard ones.
        self.headline: dict[str, Any] = {}

    @contextmanager
    def phase(self, name: str):
        """Time the block; a phase entered twice adds up."""
        started = time.perf_counter()
        try:
            yield self
        finally:
            elapsed = time.perf_counter() - started
            self.timings_seconds[name] = round(self.timings_seconds.get(name, 0.0) + elapsed, 6)

    def record_lake(self, lake, count_rows: bool = True) -> None:
        """Take table versions, backend and Spark version from a Lakehouse.

        With ``count_rows`` each written table's row count at the written version is
        added too (from the Delta log's statistics, so no data is scanned).
        """
        self.tables_read.update(lake.reads)
        self.tables_written.update(lake.writes)
        self.backend = lake.backend
        self.spark_version = lake.spark.version
        self.spark_master = lake.spark.sparkContext.master
        if count_rows:
            for name, version in lake.writes.items():
                self.row_counts[name] = lake.row_count(name, version)

    def record_rows(self, name: str, count: int) -> None:
        """Add a row count (a table, an attrition step, anything worth pinning)."""
        self.row_counts[name] = int(count)

    def finish(self, lake=None) -> None:
        """Stamp the end time, taking the lake's versions first when given."""
        if lake is not None:
            self.record_lake(lake)
        self.finished_utc = _utc_iso()

    def to_dict(self) -> dict[str, Any]:
        standard = {
            "step": self.step,
            "started_utc": self.started_utc,
            "finished_utc": self.finished_utc,
            "package_version": self.package_version,
            "spark_version": self.spark_version,
            "backend": self.backend,
            "spark_master": self.spark_master,
            "seed": self.seed,
            "definition_sha256": self.definition_sha256,
            "tables_read": dict(self.tables_read),
            "tables_written": dict(self.tables_written),
            "row_counts": dict(self.row_counts),
            "timings_seconds": dict(self.timings_seconds),
            "extra": dict(self.extra),
        }
        clash = sorted(set(standard) & set(self.headline))
        if clash:
            raise ValueError(f"headline fields {clash} would replace the manifest's own")
        return {**standard, **self.headline}

    def write(self, path: str | os.PathLike) -> str:
        """Write pretty JSON atomically (readers see the old file or the new one, never half)."""
        if self.finished_utc is None:
            self.finish()
        path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True, default=str) + "\n"
        # The temp file sits beside the target so os.replace stays a same-filesystem rename.
        handle, temp = tempfile.mkstemp(prefix=".manifest-", suffix=".tmp", dir=folder)
        try:
            os.chmod(temp, 0o644)  # mkstemp makes it private; a manifest is for everyone to read
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, path)
        except BaseException:
            if os.path.exists(temp):
                os.unlink(temp)
            raise
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunManifest:
        manifest = cls(data["step"], seed=data.get("seed"), extra=data.get("extra"))
        manifest.definition_sha256 = data.get("definition_sha256")
        manifest.started_utc = data.get("started_utc")
        manifest.finished_utc = data.get("finished_utc")
        manifest.package_version = data.get("package_version")
        manifest.spark_version = data.get("spark_version")
        manifest.backend = data.get("backend")
        manifest.spark_master = data.get("spark_master")
        manifest.tables_read = {k: int(v) for k, v in (data.get("tables_read") or {}).items()}
        manifest.tables_written = {k: int(v) for k, v in (data.get("tables_written") or {}).items()}
        manifest.row_counts = {k: int(v) for k, v in (data.get("row_counts") or {}).items()}
        manifest.timings_seconds = {k: float(v) for k, v in (data.get("timings_seconds") or {}).items()}
        manifest.headline = {k: v for k, v in data.items() if k not in _STANDARD_FIELDS}
        return manifest

    @classmethod
    def read(cls, path: str | os.PathLike) -> RunManifest:
        """Load a manifest written by :meth:`write`."""
        path = os.fspath(path)
        try:
            with open(path, encoding="utf-8") as source:
                data = json.load(source)
        except FileNotFoundError:
            raise UserError(f"no run manifest at {path}") from None
        except json.JSONDecodeError as error:
            raise UserError(f"run manifest {path} is not valid JSON: {error}") from None
        if not isinstance(data, dict) or "step" not in data:
            raise UserError(f"{path} is not a run manifest (no 'step')")
        return cls.from_dict(data)

    def __eq__(self, other) -> bool:
        return isinstance(other, RunManifest) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"RunManifest(step={self.step!r}, finished={self.finished_utc!r})"


def ingested_layout(lake) -> str | None:
    """The raw layout the lake's last ingest loaded (its manifest says), or None before any ingest."""
    from cohortlake.lake.layout import ingest_manifest

    path = ingest_manifest(lake.root)
    return RunManifest.read(path).extra.get("layout") if os.path.exists(path) else None
