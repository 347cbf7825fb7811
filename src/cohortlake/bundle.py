"""The ``--py-files`` bundle: the package (code and package data) as one reproducible zip.

``cohortlake bundle`` writes it; spark-submit ships it to the driver and the executors,
and :func:`package_origin` tells a job which zip (or folder) it runs from. Beside it goes the
driver's log configuration, which the driver JVM reads before any Python runs, so it must be
a file on the submitting machine (``--driver-java-options -Dlog4j2.configurationFile=...``).
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from cohortlake.resources import SPARK_LOG_CONFIG, package_data, package_root

DRIVER_LOG_CONFIG = "cohortlake-log4j2.properties"


def package_origin() -> str:
    """Where the running cohortlake was imported from: a zip given to --py-files, or a folder."""
    text = str(package_root())
    marker = ".zip" + os.sep
    return text[: text.index(marker) + 4] if marker in text else text


def write_bundle(out: str | os.PathLike) -> tuple[Path, int]:
    """Zip the importable package (code and package data, no bytecode) for --py-files.

    Entries are sorted and dated 1980-01-01, so the same source gives the same bytes; a
    link in the package is zipped as the files it points to. Returns the zip's path and
    the number of files in it.
    """
    package = package_root()
    if not package.is_dir():
        raise RuntimeError(f"cohortlake runs from {package_origin()}, not a folder; bundle from an installed copy")
    out = Path(out)
    if out.suffix != ".zip":
        raise ValueError(f"{out}: the bundle must be a .zip (Spark puts .zip, .egg and .jar files on executors' "
                         "Python path; a .whl it ships but does not import from)")
    out.parent.mkdir(parents=True, exist_ok=True)
    files = sorted(
        Path(folder, name).relative_to(package)
        for folder, subfolders, names in os.walk(package, followlinks=True)
        if "__pycache__" not in Path(folder).parts
        for name in names if Path(name).suffix not in (".pyc", ".pyo")
    )
    partial = out.with_name(out.name + ".partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for path in files:
            info = zipfile.ZipInfo((Path("cohortlake") / path).as_posix(), date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            bundle.writestr(info, (package / path).read_bytes())
    partial.replace(out)
    return out, len(files)


def write_driver_log_config(folder: str | os.PathLike) -> Path:
    """Copy the driver's log4j2.properties (lake/session.py) into ``folder``, named so it replaces no other."""
    target = Path(folder) / DRIVER_LOG_CONFIG
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(package_data(SPARK_LOG_CONFIG).read_bytes())
    return target
