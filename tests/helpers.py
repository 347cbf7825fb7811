"""Small helpers shared by test modules."""

from __future__ import annotations


def delta_rows(path, version=None) -> list[dict]:
    """Rows of a Delta table as the deltalake package reads them (its own reader, not Spark's)."""
    import deltalake
    from pyarrow import fs as pafs

    # A pyarrow filesystem instead of deltalake's default Python-wrapped object store:
    # the latter aborts the interpreter at exit now and then (delta-io/delta-rs#2184).
    local = pafs.SubTreeFileSystem(str(path), pafs.LocalFileSystem())
    return deltalake.DeltaTable(str(path), version=version).to_pyarrow_table(filesystem=local).to_pylist()
