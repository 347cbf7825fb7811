"""Where cohortlake finds its own files: one rule for the package and its data.

The shipped cohort definitions (``cohort_defs/``: definitions, ``codesets/``, ``tests/``),
the expectation suites (``expectations/``) and the Data Docs assets are package data,
under ``src/cohortlake/``, read through :mod:`importlib.resources`. So an editable
install, a wheel (``pip install .``) and the ``--py-files`` zip all find them the same way,
wherever the command runs from. The repository root's ``cohort_defs`` and
``expectations`` are links to these folders, for paths typed in a clone.

Callers get real folders (:class:`pathlib.Path`): the package's own for a package
imported from a folder; when it is imported from a zip (``spark-submit --py-files``), the
folder asked for is copied out of the zip once per process, into a temporary folder
removed at exit. Nothing else in the package locates files from ``__file__``.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

PACKAGE = "cohortlake"
DEFINITIONS = "cohort_defs"
EXPECTATIONS = "expectations"
DOCS_ASSETS = "quality/docs_assets"
SPARK_LOG_CONFIG = "lake/log4j2.properties"
REFERENCE = "hcc_sorafenib_landmark.yaml"

_lock = threading.Lock()
_copied: dict[str, Path] = {}


def package_root() -> Path:
    """The folder the package is imported from; inside a zip, ``<zip>/cohortlake``."""
    return Path(__file__).resolve().parent


def package_data(relative: str) -> Path:
    """A folder (or file) of package data, ``relative`` to the package with ``/``, as a real path."""
    resource = files(PACKAGE).joinpath(*relative.split("/"))
    if isinstance(resource, Path):
        return resource
    with _lock:  # in a zip: copy it out once
        if relative not in _copied:
            scratch = Path(tempfile.mkdtemp(prefix="cohortlake-data-"))
            atexit.register(shutil.rmtree, scratch, True)
            target = scratch.joinpath(*relative.split("/"))
            _copy(resource, target)
            _copied[relative] = target
        return _copied[relative]


def _copy(source: Traversable, target: Path) -> None:
    if source.is_dir():
        target.mkdir(parents=True, exist_ok=True)
        for child in source.iterdir():
            _copy(child, target / child.name)
    elif source.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())


def definitions_dir() -> Path:
    """The shipped cohort definitions, with their ``codesets/`` and ``tests/``."""
    return package_data(DEFINITIONS)


def reference_definition() -> Path:
    """The reference study's definition (what ``cohortlake demo`` builds)."""
    return definitions_dir() / REFERENCE


def shipped_codesets() -> Path:
    """The shipped code-set library, searched after every other (see ``spec.library.codeset_search_path``)."""
    return definitions_dir() / "codesets"


def shipped_expectations() -> Path:
    """The shipped expectation suites; ``quality.suites.suites_dir`` lets $COHORTLAKE_EXPECTATIONS override them."""
    return package_data(EXPECTATIONS)


def docs_assets() -> Path:
    """The vendored scripts and stylesheets Data Docs pages load (``quality/docs_assets/``)."""
    return package_data(DOCS_ASSETS)
