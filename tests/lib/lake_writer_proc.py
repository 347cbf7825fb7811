"""Overwrite one lake table with generated rows, in a process of its own.

test_lake.py runs this in a subprocess and SIGKILLs it mid-write to check that an
overwrite is atomic. Usage: ``python lake_writer_proc.py ROOT TABLE ROWS``; prints
``{"version": N, "rows": ROWS}`` on the last line of stdout when the commit landed.
"""

from __future__ import annotations

import json
import sys


def generated_claims(spark, rows: int):
    """``rows`` claim-like rows; several tasks and a hash per row make a big write slow."""
    from pyspark.sql import functions as F

    return spark.range(0, rows, 1, numPartitions=8).select(
        F.col("id").alias("claim_id"),
        (F.col("id") % 1000).alias("person_id"),
        F.sha2(F.col("id").cast("string"), 256).alias("code"),
    )


def main(argv: list[str]) -> int:
    root, table, rows = argv[1], argv[2], int(argv[3])
    from cohortlake.lake.delta import Lakehouse
    from cohortlake.lake.session import get_spark

    spark = get_spark("lake-writer-proc", master="local[2]", conf={"spark.sql.shuffle.partitions": "4"})
    version = Lakehouse(root, spark).write(table, generated_claims(spark, rows), mode="overwrite")
    print(json.dumps({"version": version, "rows": rows}), flush=True)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
