"""docker-compose.yml, Dockerfile and .dockerignore, checked without Docker (none runs here).

:func:`problems` reads the three files as data and lists every mismatch between them, the
repository and the CLI; it must find none in the real files and must flag each mutation.
"""

import copy
import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.specifiers import SpecifierSet

from cohortlake.cli import build_parser
from cohortlake.job import JOBS

from paths import REPO as ROOT
WORKERS = ("spark-worker-1", "spark-worker-2")
SERVICES = ("spark-master", *WORKERS, "spark-history", "runner")
EXACT_VERSION = re.compile(r"\d+\.\d+\.\d+")
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def files() -> tuple[dict, str, str]:
    return (yaml.safe_load((ROOT / "docker-compose.yml").read_text()), (ROOT / "Dockerfile").read_text(),
            (ROOT / ".dockerignore").read_text())


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per Dockerfile instruction, comments dropped, continuation lines joined."""
    text = "\n".join(line for line in dockerfile.splitlines() if not line.lstrip().startswith("#"))
    return [(kind.upper(), args) for kind, args in
            (line.split(None, 1) for line in text.replace("\\\n", " ").splitlines() if line.strip())]


def option(tokens: list[str], name: str) -> str | None:
    return tokens[tokens.index(name) + 1] if name in tokens else None


def mounts(service: dict) -> dict[str, str]:
    """Container path -> volume name (short "src:dst[:mode]" or long syntax)."""
    pairs = [(v["source"], v["target"]) if isinstance(v, dict) else v.split(":")[:2]
             for v in service.get("volumes", [])]
    return {target: source for source, target in pairs}


def published(service: dict) -> dict[int, int]:
    """Host port -> container port."""
    pairs = [(p["published"], p["target"]) if isinstance(p, dict) else str(p).split(":")[-2:]
             for p in service.get("ports", []) if isinstance(p, dict) or ":" in str(p)]
    return {int(host): int(container) for host, container in pairs}


def script_lines(service: dict) -> list[list[str]]:
    """The runner's `bash -c` script as tokenised lines (line continuations joined)."""
    script = service["command"][-1].replace("\\\n", " ")
    return [tokens for line in script.splitlines() if (tokens := shlex.split(line, comments=True))]


def spark_submit(tokens: list[str]) -> tuple[dict[str, str], dict[str, str], str, list[str]]:
    """spark-submit's options, --conf settings, primary script and the script's arguments."""
    rest, options, conf = tokens[tokens.index("spark-submit") + 1:], {}, {}
    while rest and rest[0].startswith("--"):
        if rest[0] in ("--verbose", "--supervise"):  # spark-submit's only options without a value
            rest = rest[1:]
            continue
        name, value, rest = rest[0], rest[1], rest[2:]
        if name == "--conf":
            key, _, value = value.partition("=")
            conf[key] = value
        else:
            options[name] = value
    return options, conf, rest[0], rest[1:]


def gib(size: str) -> float:
    return float(size[:-1]) / (1024 if size[-1].lower() == "m" else 1)


def under(path: str, mount: str | None) -> bool:
    return mount is not None and (path + "/").startswith(mount.rstrip("/") + "/")


def problems(compose: dict, dockerfile: str, dockerignore: str) -> list[str]:
    """Every way the compose file, the Dockerfile and the repository disagree."""
    found, services = [], compose.get("services", {})
    if missing := [name for name in SERVICES if name not in services]:
        return [f"services missing: {missing}"]
    # Images: one project image, pinned to the package version; base images pinned exactly.
    for name, svc in services.items():
        if svc.get("image") != f"cohortlake:{PYPROJECT['version']}" or svc.get("build") != ".":
            found.append(f"{name}: image {svc.get('image')!r} is not the pinned project image built from .")
    steps = instructions(dockerfile)
    for kind, args in steps:
        if kind == "FROM" and (":" not in args or not EXACT_VERSION.search(args.split(":", 1)[1])):
            found.append(f"Dockerfile: FROM {args} is not pinned to an exact version")
    build_args = dict(a.split("=", 1) for k, a in steps if k == "ARG" and "=" in a)
    spark = build_args.get("SPARK_VERSION", "")
    if not EXACT_VERSION.fullmatch(spark) or not any('"pyspark==${SPARK_VERSION}"' in a for k, a in steps):
        found.append(f"Dockerfile: pyspark is not installed pinned to SPARK_VERSION ({spark!r})")
    pin = next(d for d in PYPROJECT["dependencies"] if d.startswith("pyspark"))
    if EXACT_VERSION.fullmatch(spark) and spark not in SpecifierSet(pin.removeprefix("pyspark")):
        found.append(f"Dockerfile: Spark {spark} outside pyproject's {pin}")
    workdir = next(a for k, a in steps if k == "WORKDIR")
    copies = [a.split() for k, a in steps if k == "COPY"]
    copied = {c[-1].rstrip("/"): c[0].rstrip("/") for c in copies if len(c) == 2}
    bundle = next(shlex.split(a) for k, a in steps if k == "RUN" and "cohortlake bundle" in a)
    let_in = {line.strip().rstrip("/") for line in dockerignore.splitlines() if line.startswith("!")}
    allowed = {e[1:] for e in let_in}

    def let_in_path(source: str) -> bool:  # the path or a folder above it is let back in
        parts = source.split("/")
        return any("/".join(parts[:n]) in allowed for n in range(1, len(parts) + 1))

    if left_out := sorted(s.rstrip("/") for c in copies for s in c[:-1] if not let_in_path(s.rstrip("/"))):
        found.append(f".dockerignore leaves out {left_out}, which the Dockerfile copies")
    # Master and workers.
    master_cmd = services["spark-master"]["command"]
    master_url = f"spark://{option(master_cmd, '--host')}:{option(master_cmd, '--port')}"
    if option(master_cmd, "--host") != "spark-master":
        found.append(f"spark-master advertises {option(master_cmd, '--host')}, not its service name")
    ports = {name: published(svc) for name, svc in services.items()}
    wanted = {"spark-master": [7077, int(option(master_cmd, "--webui-port"))], "spark-history": [18080]}
    for worker in WORKERS:
        cmd = services[worker]["command"]
        wanted[worker] = [int(option(cmd, "--webui-port"))]
        if cmd[-1] != master_url:
            found.append(f"{worker} connects to {cmd[-1]}, the master is {master_url}")
        if "spark-master" not in services[worker].get("depends_on", []):
            found.append(f"{worker} does not depend on spark-master")
    for name, container_ports in wanted.items():
        if missing := [p for p in container_ports if p not in ports[name].values()]:
            found.append(f"{name} does not publish {missing}")
    host_ports = [p for name in ports for p in ports[name]]
    if len(host_ports) != len(set(host_ports)):
        found.append(f"a host port is published twice: {sorted(host_ports)}")
    # Volumes: one lakehouse at one path for driver and executors; one event-log folder.
    runner = services["runner"]
    lake_mount = next((t for t, v in mounts(runner).items() if v == "lakehouse"), None)
    for name in ("lakehouse", "spark-events"):
        if name not in (compose.get("volumes") or {}):
            found.append(f"volume {name} is not declared")
    for worker in WORKERS:
        if mounts(services[worker]).get(lake_mount) != "lakehouse":
            found.append(f"{worker} does not mount the lakehouse at {lake_mount} as the runner does")
    lines = script_lines(runner)
    submit = next(t for t in lines if "spark-submit" in t)
    options, conf, script, job_args = spark_submit(submit)
    history_opts = services["spark-history"]["environment"]["SPARK_HISTORY_OPTS"].split()
    history_dir = next(o.split("=", 1)[1] for o in history_opts if o.startswith("-Dspark.history.fs.logDirectory="))
    if conf.get("spark.eventLog.enabled") != "true" or conf.get("spark.eventLog.dir") != history_dir:
        found.append(f"runner logs events to {conf.get('spark.eventLog.dir')}, the history server reads {history_dir}")
    for name in ("runner", "spark-history"):
        if not any(v == "spark-events" and under(history_dir.removeprefix("file://"), t)
                   for t, v in mounts(services[name]).items()):
            found.append(f"{name} does not mount the spark-events volume at {history_dir}")
    # The runner's job: the master, the bundle, the script and its CLI arguments.
    if options.get("--master") != master_url:
        found.append(f"runner submits to {options.get('--master')}, the master is {master_url}")
    if conf.get("spark.driver.host") != "runner" or conf.get("spark.driver.bindAddress") != "0.0.0.0":
        found.append("runner: executors cannot reach the driver (spark.driver.host/bindAddress)")
    if options.get("--py-files") != option(bundle, "--out"):
        found.append(f"runner ships {options.get('--py-files')}, the image builds {option(bundle, '--out')}")
    if runner.get("working_dir") != workdir or not set(WORKERS) | {"spark-master"} <= set(runner["depends_on"]):
        found.append(f"runner must start in {workdir} after the master and both workers")
    if script != f"jobs/{next(j for j, c in JOBS.items() if c == 'run')}.py" or not (ROOT / script).is_file():
        found.append(f"runner runs {script}, not the repo's run job")
    for path in (script, job_args[0] if job_args else ""):
        top = path.split("/")[0]
        source = copied.get(top)
        # the image's folder holds what the repository's does (a root link is copied by its target)
        if source is None or (ROOT / source).resolve() != (ROOT / top).resolve() or not (ROOT / path).is_file():
            found.append(f"runner: {path!r} is not a repo file the image copies to {workdir}")
    try:
        run = build_parser().parse_args(["run", *job_args])
        synth = build_parser().parse_args(next(t for t in lines if "synth" in t)[1:])
    except SystemExit:
        return [*found, f"runner: arguments do not parse as cohortlake commands: {job_args}"]
    for path in (run.lake, run.out, run.raw or "(none)"):
        if not under(path, lake_mount):
            found.append(f"runner: {path} is not under the lakehouse mount {lake_mount}")
    if (synth.out, synth.layout) != (run.raw, run.layout):
        found.append(f"synth writes {synth.layout} to {synth.out}, the job reads {run.layout} from {run.raw}")
    for worker in WORKERS:
        cmd = services[worker]["command"]
        if gib(conf.get("spark.executor.memory", "1g")) > gib(option(cmd, "--memory")) or \
                int(conf.get("spark.executor.cores", "1")) > int(option(cmd, "--cores")):
            found.append(f"{worker} is too small for one executor; the job would wait forever")
    return found


def test_the_real_files_have_no_problems():
    """The files as committed agree with each other, the repository and the CLI."""
    assert problems(*files()) == []


def test_the_runner_submits_the_reference_study_to_the_master():
    """The values the study depends on, spelled out (so a silently parsed wrong value shows)."""
    compose, dockerfile, _ = files()
    options, conf, script, job_args = spark_submit(next(
        t for t in script_lines(compose["services"]["runner"]) if "spark-submit" in t))
    assert (options["--master"], options["--py-files"], script) == \
        ("spark://spark-master:7077", "dist/cohortlake.zip", "jobs/run_study.py")
    run = build_parser().parse_args(["run", *job_args])
    assert (run.definition, run.lake, run.out, run.raw, run.layout) == (
        "cohort_defs/hcc_sorafenib_landmark.yaml", "/lakehouse/lake", "/lakehouse/study", "/lakehouse/raw",
        "seer-medicare")
    assert conf["spark.eventLog.dir"] == "file:///spark-events"
    assert [a for k, a in instructions(dockerfile) if k == "FROM"] == ["python:3.11.15-slim-bookworm"]


def in_command(service, old, new):
    """A mutation replacing text in every item of a service's command (the runner's script included)."""
    def mutate(compose, dockerfile, dockerignore):
        svc = compose["services"][service]
        svc["command"] = [item.replace(old, new) for item in svc["command"]]
        return compose, dockerfile, dockerignore
    return mutate


def in_service(service, **changes):
    """A mutation replacing keys of a service."""
    def mutate(compose, dockerfile, dockerignore):
        compose["services"][service].update(changes)
        return compose, dockerfile, dockerignore
    return mutate


def in_text(index, old, new):
    """A mutation of the Dockerfile (index 1) or .dockerignore (index 2)."""
    return lambda *triple: tuple(t.replace(old, new) if n == index else t for n, t in enumerate(triple))


MUTATIONS = {
    "master port": (in_command("runner", "spark-master:7077", "spark-master:7078"), "runner submits to"),
    "worker master": (in_command("spark-worker-1", "spark-master:7077", "master:7077"), "spark-worker-1 connects to"),
    "worker lake path": (in_service("spark-worker-2", volumes=["lakehouse:/data"]), "spark-worker-2 does not mount"),
    "host port twice": (in_service("spark-worker-2", ports=["8081:8082"]), "published twice"),
    "event dir": (in_command("runner", "dir=file:///spark-events", "dir=file:///tmp/events"), "logs events to"),
    "synth elsewhere": (in_command("runner", "--out /lakehouse/raw", "--out /tmp/raw"), "synth writes"),
    "bad job option": (in_command("runner", "--layout seer-medicare\n", "--layout csv\n"), "do not parse"),
    "big executor": (in_command("runner", "executor.memory=2g", "executor.memory=4g"), "too small"),
    "latest image": (in_service("spark-master", image="cohortlake:latest"), "pinned project image"),
    "floating base": (in_text(1, "python:3.11.15-slim-bookworm", "python:3.11-slim"), "not pinned"),
    "spark too new": (in_text(1, "SPARK_VERSION=4.2.0", "SPARK_VERSION=4.3.0"), "outside pyproject"),
    "other bundle": (in_text(1, "--out dist/cohortlake.zip", "--out dist/other.zip"), "the image builds"),
    "jobs ignored": (in_text(2, "!jobs/\n", ""), ".dockerignore leaves out ['jobs']"),
}


@pytest.mark.parametrize("mutation", MUTATIONS)
def test_each_mistake_is_flagged(mutation):
    """The checker is not vacuous: each plausible mistake in the three files is reported."""
    mutate, expected = MUTATIONS[mutation]
    real = files()
    mutated = mutate(copy.deepcopy(real[0]), *real[1:])
    assert mutated != real, f"{mutation}: the mutation changed nothing"
    assert any(expected in p for p in problems(*mutated)), mutation
