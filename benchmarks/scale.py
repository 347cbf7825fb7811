"""Scale: synth, ingest and build at several patient counts, and how time grows with size.

    python benchmarks/scale.py [--patients 100000 --patients 1000000] [--work DIR [--reuse-raw]]
                               [--repeat N] [--keep-going] [--json PATH]
    python benchmarks/scale.py --show PATH     (print a run saved with --json again)

For each size (default 100,000 and 1,000,000 patients, smallest first): generates the
synthetic seer-medicare set, ingests it into a fresh lakehouse with the bronze and silver
gates (as `cohortlake ingest` does), then builds the reference definition with the cohort
gate (as `cohortlake build` does) N times, the first cold (its plan compiled for the first
time in the session), and measures the build's floor in the same run as
benchmarks/build_cohort.py does (a bare scan of the columns the plan reads). Printed per
size: raw and silver rows, wall time of each phase, ingest raw rows/s, build persons/s
(population of the first attrition step), build/floor ratio, and the peak memory: the
driver JVM's peak RSS (VmHWM; per phase too where the kernel lets the peak be reset), its
max heap, spark.driver.memory and the Python driver's peak RSS. Then the growth between
consecutive sizes, time(big) / time(small) for ingest and build next to the size ratio
(issue 16's target: at most 1.05 x the size ratio, 10.5 for 10x patients), and a table
to paste into the README.

Each size runs in its own process (its own Spark session and driver JVM, so memory peaks
are per size) on a fresh lake folder. Without --work the raw files and lakes go to a
temporary folder deleted as soon as a size is done; with --work DIR they are kept in
DIR/<patients>/{raw,lake}, and --reuse-raw reuses raw files of an earlier run. If a size
fails, the phase and the error are printed and larger sizes are skipped (--keep-going
runs them anyway); the exit status is then 1. COHORTLAKE_DRIVER_MEMORY overrides the
driver memory that local_conf chooses, as for every command.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "cohort_defs" / "hcc_sorafenib_landmark.yaml"
DEFAULT_SIZES = (100_000, 1_000_000)
TARGET_SLACK = 1.05  # time may grow at most 5% faster than the data: 10.5x for 10x patients
MARK = "@@scale "  # prefix of the lines a --one-size process reports on


# ---------------------------------------------------------------- figures (no Spark)

def memory_bytes(text: str) -> int:
    """A JVM/Spark memory setting in bytes: '8g', '512m', '1536k', '2t'; a bare number is MiB (Spark's unit)."""
    match = re.fullmatch(r"\s*(\d+)\s*([kmgt]?)b?\s*", text.lower())
    if not match:
        raise ValueError(f"not a memory size: {text!r}")
    unit = match.group(2) or "m"
    return int(match.group(1)) * 1024 ** "kmgt".index(unit) * 1024


def human_bytes(count: float | None) -> str:
    if count is None:
        return "-"
    if count >= 1024**3:
        return f"{count / 1024**3:.1f} GiB"
    return f"{count / 1024**2:.0f} MiB"


def seconds_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def growth(small: dict, big: dict) -> dict:
    """time(big) / time(small) for ingest and build (cold and best warm) next to the size ratio."""
    size = big["patients"] / small["patients"]
    limit = TARGET_SLACK * size

    def ratio(key):
        return big[key] / small[key] if small.get(key) and big.get(key) is not None else None

    figures = {"from": small["patients"], "to": big["patients"], "size": size, "limit": limit,
               "raw_rows": ratio("raw_rows"), "ingest": ratio("ingest_seconds"),
               "build_cold": ratio("build_cold_seconds"), "build_warm": ratio("build_warm_seconds")}
    figures["within"] = {k: figures[k] <= limit for k in ("ingest", "build_warm") if figures[k] is not None}
    return figures


def growths(results: list[dict]) -> list[dict]:
    """Growth between consecutive sizes that both finished."""
    done = sorted((r for r in results if not r.get("failed_phase")), key=lambda r: r["patients"])
    return [growth(small, big) for small, big in zip(done, done[1:])]


def with_overhead(driver_bytes: int) -> int:
    """spark.driver.memory plus Spark's default memoryOverhead (10%, at least 384 MiB): a container's size for it."""
    return driver_bytes + max(384 * 1024**2, driver_bytes // 10)


def within_memory(result: dict, overhead: bool = False) -> bool | None:
    """Did the size finish with the driver JVM's peak RSS at most spark.driver.memory (plus the default overhead)?"""
    if result.get("failed_phase"):
        return False
    peak, setting = result.get("jvm_peak_rss"), result.get("driver_memory")
    if peak is None or not setting:
        return None
    limit = memory_bytes(setting)
    return peak <= (with_overhead(limit) if overhead else limit)


def markdown_table(results: list[dict], steps: list[dict]) -> list[str]:
    """The figures as two Markdown tables (per size, growth between sizes) for the README."""
    lines = ["| patients | raw rows | silver rows | synth | ingest | raw rows/s | build cold / warm | persons/s "
             "| floor | build/floor | JVM peak RSS | Python peak RSS |",
             "|" + "---:|" * 12]
    for r in sorted(results, key=lambda r: r["patients"]):
        if r.get("failed_phase"):
            lines.append(f"| {r['patients']:,} | failed in {r['failed_phase']} |" + " |" * 10)
            continue
        lines.append(
            f"| {r['patients']:,} | {r['raw_rows']:,} | {r['silver_rows']:,} | {seconds_text(r.get('synth_seconds'))} "
            f"| {seconds_text(r['ingest_seconds'])} | {r['raw_rows'] / r['ingest_seconds']:,.0f} "
            f"| {r['build_cold_seconds']:.1f} / {r['build_warm_seconds']:.1f} s "
            f"| {r['population'] / r['build_warm_seconds']:,.0f} | {r['floor_warm_seconds']:.2f} s "
            f"| {r['build_warm_seconds'] / r['floor_warm_seconds']:.1f}x | {human_bytes(r.get('jvm_peak_rss'))} "
            f"| {human_bytes(r.get('python_peak_rss'))} |")
    if steps:
        lines += ["", "| patients | size | ingest time | build time (warm) | target |", "|---|---:|---:|---:|---:|"]
        for g in steps:
            lines.append(f"| {g['from']:,} → {g['to']:,} | {g['size']:.1f}x | {ratio_text(g['ingest'])} "
                         f"| {ratio_text(g['build_warm'])} | ≤ {g['limit']:.1f}x |")
    return lines


def ratio_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}x"


# ---------------------------------------------------------------- one size (own process)

def jvm_peak_rss(pid: int) -> int | None:
    """The process's peak resident set (VmHWM) in bytes, None where /proc has no such line."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def process_alive(pid: int) -> bool:
    """False once the process has ended (a zombie waiting for its parent counts as ended)."""
    try:
        state = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("State:"))
    except (OSError, StopIteration):
        return False
    return state.split()[1] not in ("Z", "X")


def reset_peak_rss(pid: int) -> bool:
    """Start a new VmHWM high-water mark (Linux: '5' to clear_refs); False where that is not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def python_peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def error_summary(error: BaseException) -> str:
    """One or two lines of an error: its first line, and the JVM's OutOfMemoryError if it mentions one."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    summary = f"{type(error).__name__}: {lines[0] if lines else ''}"[:300]
    oom = next((line for line in lines if "OutOfMemoryError" in line), None)
    if oom and oom not in summary:
        summary += f" / {oom[:200]}"
    return summary


def report(kind: str, payload) -> None:
    print(f"{MARK}{kind} {json.dumps(payload)}", flush=True)


def one_size(patients: int, folder: Path, args) -> dict:
    """Synth, ingest and build one size in this process; the figures, or the phase that failed and why."""
    from buildfloor import bare_scans, columns_to_scan, warm_ratio
    from cohortlake.engine.store import build_and_store
    from cohortlake.lake.delta import Lakehouse
    from cohortlake.lake.session import get_spark
    from cohortlake.progress import Progress
    from cohortlake.sources.ingest import ingest
    from cohortlake.spec import load_definition
    from cohortlake.synth import generate

    result: dict = {"patients": patients, "folder": str(folder)}
    raw, lake_root = folder / "raw", folder / "lake"
    phase, pid, phase_peaks = "spark start-up", None, {}

    def enter(name: str) -> None:
        nonlocal phase
        if pid is not None:  # the phase that ends gets its peak; the next one starts a new high-water mark
            phase_peaks["start" if phase == "spark start-up" else phase] = jvm_peak_rss(pid)
            result["per_phase_peaks"] = reset_peak_rss(pid)
        phase = name
        report("phase", name)

    try:
        spark = get_spark(f"cohortlake-bench-scale-{patients}", master=args.master)
        conf = spark.sparkContext.getConf()
        pid = int(spark._jvm.java.lang.ProcessHandle.current().pid())
        result.update(spark=spark.version, master=spark.sparkContext.master,
                      parallelism=spark.sparkContext.defaultParallelism, jvm_pid=pid,
                      driver_memory=conf.get("spark.driver.memory", "1g"),
                      jvm_max_heap=int(spark._jvm.java.lang.Runtime.getRuntime().maxMemory()))

        enter("synth")
        started = time.perf_counter()
        if args.reuse_raw and (raw / "truth.json").exists():
            result["synth_seconds"] = None
        else:
            generate(spark, "seer-medicare", str(raw), patients, args.seed)
            result["synth_seconds"] = time.perf_counter() - started
        result["raw_bytes"] = sum(p.stat().st_size for p in raw.rglob("*") if p.is_file())

        enter("ingest")
        if lake_root.exists():
            shutil.rmtree(lake_root)
        lake = Lakehouse(str(lake_root), spark)
        started = time.perf_counter()
        ingested = ingest(spark, lake, "seer-medicare", raw, progress=Progress(quiet=True))
        result["ingest_seconds"] = time.perf_counter() - started
        result["raw_rows"] = sum(c.rows_in for c in ingested.raw)
        result["silver"] = dict(ingested.silver)
        result["silver_rows"] = sum(ingested.silver.values())
        result["gates"] = {q.stage: q.passed for q in ingested.quality}

        enter("build")
        definition = load_definition(str(REFERENCE))
        builds = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            built = build_and_store(definition, lake)
            builds.append(time.perf_counter() - started)
        result.update(builds=builds, population=built.attrition[0][2], cohort_rows=built.cohort_rows,
                      build_gate=None if built.quality is None else built.quality.passed,
                      build_cold_seconds=builds[0], build_warm_seconds=min(builds[1:] or builds))

        enter("floor")
        read = columns_to_scan(lake, definition)
        scans = bare_scans(lake, read, len(builds))
        ratio = warm_ratio(builds, scans)
        result.update(floor_columns={t: len(c) for t, c in sorted(read.items())}, scans=scans,
                      floor_cold_seconds=ratio["cold_scan"], floor_warm_seconds=ratio["warm_scan"])
        enter("done")
    except Exception as error:  # noqa: BLE001 - reported to the parent with its phase
        result.update(failed_phase=phase, error=error_summary(error))
        if pid is not None and not process_alive(pid):
            result["error"] += (f" -- the driver JVM (pid {pid}) is gone: killed, by the kernel's out-of-memory "
                                "killer if the kernel log says so")
        traceback.print_exc(file=sys.stderr)
    if pid is not None:
        peak = jvm_peak_rss(pid)
        if phase != "done":
            phase_peaks["start" if phase == "spark start-up" else phase] = peak
        result["jvm_phase_peaks"] = phase_peaks
        # with resets, the size's peak is the largest phase peak; without, VmHWM is already the lifetime peak
        result["jvm_peak_rss"] = max((p for p in [peak, *phase_peaks.values()] if p is not None), default=None)
    result["python_peak_rss"] = python_peak_rss()
    return result


def run_child(patients: int, folder: Path, args) -> dict:
    """Run one size in a fresh Python process; pass its output through and collect its figures."""
    command = [sys.executable, str(Path(__file__).resolve()), "--one-size", str(patients), "--work", str(folder),
               "--seed", str(args.seed), "--repeat", str(args.repeat)]
    if args.master:
        command += ["--master", args.master]
    if args.reuse_raw:
        command.append("--reuse-raw")
    phase, result = "spark start-up", None
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, bufsize=1)
    for line in process.stdout:
        if line.startswith(MARK + "phase "):
            phase = json.loads(line[len(MARK + "phase "):])
            if phase != "done":
                print(f"  {time.perf_counter() - started:7.1f} s  {phase} starts", flush=True)
        elif line.startswith(MARK + "result "):
            result = json.loads(line[len(MARK + "result "):])
        else:
            print("    " + line, end="", flush=True)
    code = process.wait()
    if result is None:
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
        hint = " (SIGKILL: the kernel's out-of-memory killer?)" if code == -signal.SIGKILL else ""
        result = {"patients": patients, "failed_phase": phase,
                  "error": f"the size's process ended with {how} before reporting{hint}"}
    return result


# ---------------------------------------------------------------- printing

def print_size(r: dict) -> None:
    print(f"\n{r['patients']:,} patients" + (f": Spark {r['spark']}, {r['master']}, parallelism {r['parallelism']}"
                                            if "spark" in r else ""))
    if r.get("raw_rows") is not None:
        print(f"  raw rows      {r['raw_rows']:>14,}   ({r['raw_bytes'] / 1e6:,.1f} MB of raw files)")
        print(f"  silver rows   {r['silver_rows']:>14,}   (" + ", ".join(f"{t} {n:,}" for t, n in r["silver"].items()) + ")")
    if "synth_seconds" in r:
        print(f"  synth         {seconds_text(r['synth_seconds']):>14}" + ("   (raw files reused)" if r["synth_seconds"] is None else ""))
    if r.get("ingest_seconds") is not None:
        gates = ", ".join(f"{stage} {'passed' if ok else 'FAILED'}" for stage, ok in r["gates"].items())
        print(f"  ingest        {seconds_text(r['ingest_seconds']):>14}   {r['raw_rows'] / r['ingest_seconds']:,.0f} raw rows/s"
              f"   (gates: {gates or 'none'})")
    if r.get("builds"):
        print(f"  build cold    {seconds_text(r['builds'][0]):>14}   {r['population'] / r['builds'][0]:,.0f} persons/s   "
              f"(population {r['population']:,}, cohort {r['cohort_rows']:,}, gate "
              f"{'passed' if r['build_gate'] else 'off' if r['build_gate'] is None else 'FAILED'})")
    if r.get("build_warm_seconds") is not None:
        print(f"  build warm    {seconds_text(r['build_warm_seconds']):>14}   "
              f"{r['population'] / r['build_warm_seconds']:,.0f} persons/s   (best of builds "
              + ", ".join(f"{s:.1f}" for s in r["builds"][1:] or r["builds"]) + " s)")
    if r.get("floor_warm_seconds") is not None:
        columns = sum(r["floor_columns"].values())
        print(f"  floor         {r['floor_warm_seconds']:>12.2f} s   bare scan of the {columns} columns the plan reads "
              f"from {len(r['floor_columns'])} tables (scans " + ", ".join(f"{s:.2f}" for s in r["scans"]) + " s)")
        print(f"  build/floor   {r['build_warm_seconds'] / r['floor_warm_seconds']:>13.1f}x   best warm build / best warm "
              f"scan (cold {r['build_cold_seconds'] / r['floor_cold_seconds']:.1f}x; target 3x)")
    if r.get("jvm_peak_rss") is not None:
        phases = ", ".join(f"{p} {human_bytes(b)}" for p, b in r.get("jvm_phase_peaks", {}).items())
        print(f"  driver JVM peak RSS {human_bytes(r['jvm_peak_rss']):>8}   "
              + (f"(per phase: {phases}) " if r.get("per_phase_peaks") and phases else "")
              + f"max heap {human_bytes(r['jvm_max_heap'])}, spark.driver.memory {r['driver_memory']}")
        def verdict(value):
            return "yes" if value else "unknown" if value is None else "no"

        container = with_overhead(memory_bytes(r["driver_memory"]))
        if r.get("failed_phase"):
            print("  within the memory settings: no, the size did not finish (peaks are up to the failure)")
        else:
            print(f"  peak RSS within spark.driver.memory: {verdict(within_memory(r))}; within it plus Spark's "
                  f"default overhead ({human_bytes(container)}, a container's size for this setting): "
                  f"{verdict(within_memory(r, overhead=True))}")
        print("    (RSS counts the heap, which the JVM lets grow toward its max before collecting hard, so it shows what"
              " the JVM took rather than the least it needs, and off-heap memory: metaspace, code cache, buffers)")
    if r.get("python_peak_rss") is not None:
        print(f"  Python driver peak RSS {human_bytes(r['python_peak_rss'])}")
    if r.get("failed_phase"):
        print(f"  FAILED in {r['failed_phase']}: {r['error']}")


def print_growth(steps: list[dict]) -> None:
    if not steps:
        return
    print("\ngrowth between consecutive sizes (target: time ratio ≤ 1.05 x size ratio):")
    for g in steps:
        verdict = ", ".join(f"{k.replace('_warm', '')} {'within' if ok else 'OVER'}" for k, ok in g["within"].items())
        print(f"  {g['from']:,} → {g['to']:,} patients: size {g['size']:.1f}x (raw rows {ratio_text(g['raw_rows'])}), "
              f"ingest {ratio_text(g['ingest'])}, build warm {ratio_text(g['build_warm'])} "
              f"(cold {ratio_text(g['build_cold'])}); limit {g['limit']:.1f}x: {verdict}")


def print_report(results: list[dict]) -> list[dict]:
    """The growth between sizes and the README table; returns the growth figures."""
    steps = growths(results)
    print_growth(steps)
    print("\nfor the README:\n")
    print("\n".join(markdown_table(results, steps)))
    return steps


def machine() -> dict:
    from cohortlake.lake.session import local_conf

    setting = os.environ.pop("COHORTLAKE_DRIVER_MEMORY", None)
    try:
        default = local_conf()["spark.driver.memory"]
    finally:
        if setting is not None:
            os.environ["COHORTLAKE_DRIVER_MEMORY"] = setting
    return {"cpus": os.cpu_count(), "memory_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
            "load_average": os.getloadavg(), "default_driver_memory": default, "driver_memory_env": setting}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, action="append",
                        help="a size (repeatable; default 100000 and 1000000)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="builds per size, the first cold (default 3)")
    parser.add_argument("--work", metavar="DIR", help="keep raw files and lakes in DIR/<patients>/ (default: a temporary folder)")
    parser.add_argument("--reuse-raw", action="store_true",
                        help="with --work: reuse raw files generated by an earlier run (synth not timed)")
    parser.add_argument("--keep-going", action="store_true", help="run larger sizes after a size failed")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument("--show", metavar="PATH", help="print the figures and table of a run saved with --json (no Spark)")
    parser.add_argument("--master", default=None)
    parser.add_argument("--one-size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reuse_raw and not args.work:
        parser.error("--reuse-raw needs --work DIR")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    if args.show:
        saved = json.loads(Path(args.show).read_text())
        for result in saved["sizes"]:
            print_size(result)
        print_report(saved["sizes"])
        return
    if args.one_size is not None:
        result = one_size(args.one_size, Path(args.work), args)
        report("result", result)
        sys.exit(1 if result.get("failed_phase") else 0)

    sizes = sorted(set(args.patients or DEFAULT_SIZES))
    host = machine()
    work = Path(args.work).resolve() if args.work else Path(tempfile.mkdtemp(prefix="cohortlake-scale-"))
    print(f"sizes {', '.join(f'{n:,}' for n in sizes)} patients; {host['cpus']} CPUs, "
          f"{host['memory_bytes'] / 1024**3:.1f} GiB memory, load average "
          + " ".join(f"{x:.1f}" for x in host["load_average"]))
    print(f"spark.driver.memory: local_conf's default here {host['default_driver_memory']}"
          + (f"; this run {host['driver_memory_env']} (COHORTLAKE_DRIVER_MEMORY)" if host["driver_memory_env"] else ""))
    print("each size runs in its own process, so its own Spark session and driver JVM (memory peaks are per size), "
          f"on a fresh lake; builds: {args.repeat} (the first cold); definition {REFERENCE.relative_to(REPO)}")
    results = []
    try:
        for index, patients in enumerate(sizes):
            folder = work / str(patients)
            print(f"\n{patients:,} patients → {folder if args.work else 'a temporary folder'}", flush=True)
            result = run_child(patients, folder, args)
            if not args.work:
                shutil.rmtree(folder, ignore_errors=True)
            results.append(result)
            print_size(result)
            if result.get("failed_phase") and index + 1 < len(sizes) and not args.keep_going:
                print(f"\nstopping: {', '.join(f'{n:,}' for n in sizes[index + 1:])} patients not run "
                      "(--keep-going runs them anyway)")
                break
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)

    steps = print_report(results)
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": host, "sizes": results, "growth": steps}, indent=2) + "\n")
        print(f"\nfigures written to {args.json}")
    sys.exit(1 if any(r.get("failed_phase") for r in results) else 0)


if __name__ == "__main__":
    main()
