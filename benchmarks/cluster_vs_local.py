"""Wall time of one spark-submit job on local[N] and on an N-worker standalone cluster.

    .venv/bin/python benchmarks/cluster_vs_local.py --lake DIR [--definition FILE] [--workers 2]

Both runs are `spark-submit --py-files dist/cohortlake.zip jobs/run_study.py DEF --lake DIR
--out …` over the same ingested lakehouse, so they read the same silver versions; the
cluster is a master and WORKERS one-core workers started from the installed pyspark on
127.0.0.1 (the test suite's helper, tests/lib/standalone.py), so both runs get the same cores.
Prints each run's wall time and step times (from the jobs' logs) and the ratio, and checks
that the two runs' cohort and matched sets are equal.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "lib"))

from standalone import SPARK_HOME, StandaloneCluster, free_port  # noqa: E402

STEP = re.compile(r"^(build \S+|match \S+|analyze \S+|report|validate \S+): (\d+\.\d)s", re.M)


def submit(master, bundle, definition, lake, out, log, extra):
    """One spark-submit of run_study; (wall seconds, step seconds from its log)."""
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable,
           "SPARK_LOCAL_IP": "127.0.0.1"}
    argv = [str(SPARK_HOME / "bin" / "spark-submit"), "--master", master, "--py-files", str(bundle),
            "--conf", f"spark.ui.port={free_port()}", *extra,
            str(REPO / "jobs" / "run_study.py"), str(definition), "--lake", str(lake), "--out", str(out)]
    started = time.monotonic()
    with open(log, "w") as sink:
        code = subprocess.run(argv, stdout=sink, stderr=subprocess.STDOUT, env=env).returncode
    seconds = time.monotonic() - started
    text = Path(log).read_text(errors="replace")
    if code != 0:
        sys.exit(f"{master}: exit {code}; log {log}:\n{text[-3000:]}")
    return seconds, {m.group(1): float(m.group(2)) for m in STEP.finditer(text)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lake", required=True, help="an ingested lakehouse (cohortlake ingest / demo)")
    parser.add_argument("--definition", default=str(REPO / "cohort_defs" / "hcc_sorafenib_landmark.yaml"))
    parser.add_argument("--workers", type=int, default=2, help="workers of one core each; local[N] gets as many")
    parser.add_argument("--executor-memory", default="6g")
    parser.add_argument("--driver-memory", default="4g")
    parser.add_argument("--work", default=None, help="folder for logs and outputs (default: a temp folder)")
    args = parser.parse_args()

    work = Path(args.work or tempfile.mkdtemp(prefix="cluster-vs-local-"))
    work.mkdir(parents=True, exist_ok=True)
    bundle = work / "cohortlake.zip"
    subprocess.run([sys.executable, "-m", "cohortlake.cli", "bundle", "--out", str(bundle)], check=True,
                   capture_output=True)
    n = args.workers
    # local: the driver is the only executor, so it gets the executors' memory too
    local_memory = f"{int(args.executor_memory[:-1]) * n}{args.executor_memory[-1]}"
    local = submit(f"local[{n}]", bundle, args.definition, args.lake, work / "local", work / "local.log",
                   ["--driver-memory", local_memory])
    with StandaloneCluster(work / "standalone", workers=n, cores=1,
                           memory=f"{int(args.executor_memory[:-1]) + 1}{args.executor_memory[-1]}") as cluster:
        clustered = submit(cluster.master_url, bundle, args.definition, args.lake, work / "cluster",
                           work / "cluster.log", ["--driver-memory", args.driver_memory,
                                                  "--executor-memory", args.executor_memory])

    import pandas as pd

    for name, keys in (("cohort.parquet", ["person_id"]), ("matched.parquet", ["match_id", "person_id"])):
        a, b = (pd.read_parquet(work / run / name).sort_values(keys).reset_index(drop=True)
                for run in ("local", "cluster"))
        pd.testing.assert_frame_equal(a[sorted(a.columns)], b[sorted(b.columns)], check_exact=False, rtol=1e-9)
    results = json.loads((work / "cluster" / "results.json").read_text())
    hr = results["survival"]["cox"]["adjusted"]["hazard_ratios"]
    print(f"definition {args.definition}\nlake {args.lake}")
    width = max(28, *(len(step) + 2 for step in set(local[1]) | set(clustered[1])))
    print(f"{'':<{width}}{'local[' + str(n) + ']':>14}{str(n) + ' workers':>14}{'ratio':>8}")
    print(f"{'wall time (s)':<{width}}{local[0]:>14.1f}{clustered[0]:>14.1f}{clustered[0] / local[0]:>8.2f}")
    for step in sorted(set(local[1]) | set(clustered[1])):
        a, b = local[1].get(step), clustered[1].get(step)
        ratio = f"{b / a:>8.2f}" if a and b else ""
        print(f"{step:<{width}}{a if a is not None else float('nan'):>14.1f}{b if b is not None else float('nan'):>14.1f}"
              f"{ratio}")
    print(f"outputs equal (cohort, matched set); adjusted HR {json.dumps(hr)}")
    print(f"logs and outputs: {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
