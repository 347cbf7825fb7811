"""The project as a user installs it: a wheel built from the repository, installed into a
fresh virtual environment, and its demo run from there (tests/integration/test_packaging.py).

The three steps run one after the other in a background thread that the session starts
before its first test (conftest.installed_copy). The demo is a process of its own, one
core's worth of work for a minute or more; started early, it runs beside the unit tests,
which conftest puts first and which keep one core busy, not two. A test asks for a step's
result and waits for it; a step that failed raises its error there.

The wheel is built offline from a copy of the build's inputs (pyproject.toml, README.md,
src/), so a stale build/ folder in the checkout can add nothing to it, and installed into a
fresh virtual environment whose only other packages are the project environment's
(reached by a .pth line, which does not read that environment's .pth files: the editable
install's path to src/ stays out).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
from importlib.metadata import version
from pathlib import Path

from paths import REPO

DEMO_TIMEOUT = 900
STEPS = ("wheel", "installed", "demo")
# The demo the installed copy runs: the smallest that goes through every gate.
DEMO_ARGS = ("demo", "--no-study", "--patients", "1", "--seed", "7", "--lake", "lake", "--master", "local[2]")


def run(*argv, cwd: Path, env: dict, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def clean_env() -> dict:
    """The environment without anything that points at the source tree or overrides the shipped files."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV",
                        "COHORTLAKE_EXPECTATIONS", "COHORTLAKE_CODESETS")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def build_wheel(root: Path) -> Path:
    setuptools = tuple(int(p) for p in version("setuptools").split(".")[:2])
    assert setuptools >= (77, 0), f"setuptools {version('setuptools')}: the dev extras need >= 77 (pip install -e '.[dev]')"
    source = root / "source"
    source.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    built = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                "-w", root / "dist", source, cwd=root, env=clean_env())
    assert built.returncode == 0, built.stdout + built.stderr
    [path] = (root / "dist").glob("cohortlake-*.whl")
    return path


def install(wheel: Path, root: Path) -> tuple[Path, Path, dict]:
    """(the new environment's bin folder, a working folder outside the source tree, the environment)."""
    root.mkdir(parents=True)
    venv = root / "venv"
    env = clean_env()
    made = run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=root, env=env)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                    cwd=root, env=env).stdout.strip())
    project = {sysconfig.get_paths()[k] for k in ("purelib", "platlib")}
    (site / "_project_environment.pth").write_text("".join(f"{p}\n" for p in sorted(project)))
    done = run(python, "-m", "pip", "install", "--no-deps", "--no-index", "-q", wheel, cwd=root, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    work = root / "work"
    work.mkdir()
    env["COHORTLAKE_CLASS_ARCHIVE"] = str(root / "class-archive")  # as a user's first run: none there yet
    assert REPO not in work.parents and REPO.resolve() not in work.resolve().parents
    return venv / "bin", work, env


class InstalledCopy:
    """Wheel, installation and demo, made in order in a background thread; ``result(step)`` waits."""

    def __init__(self, root: Path, demo: bool = True):
        self.root = Path(root)
        self.steps = STEPS if demo else STEPS[:2]
        self._done = {step: threading.Event() for step in STEPS}
        self._results: dict[str, object] = {}
        self._thread = threading.Thread(target=self._make, name="installed-copy", daemon=True)
        self._demo: subprocess.Popen | None = None
        self._stopped = False

    def start(self) -> InstalledCopy:
        self._thread.start()
        return self

    def _make(self) -> None:
        makers = {
            "wheel": lambda: build_wheel(self.root / "wheel"),
            "installed": lambda: install(self._results["wheel"], self.root / "installed"),
            "demo": self._run_demo,
        }
        failed: BaseException | None = None
        for step in STEPS:
            if failed is None and step in self.steps:
                try:
                    self._results[step] = makers[step]()
                except BaseException as error:  # handed to the test that asks for this step or a later one
                    failed = error
            if step not in self._results:
                self._results[step] = failed or RuntimeError(f"step '{step}' was not asked for when the session started")
            self._done[step].set()

    def _run_demo(self) -> subprocess.CompletedProcess:
        bin_, work, env = self._results["installed"]
        argv = [str(bin_ / "cohortlake"), *DEMO_ARGS]
        # Its own process group: stop() ends the demo and its JVM together.
        self._demo = subprocess.Popen(argv, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, start_new_session=True)
        if self._stopped:
            self.stop()
        try:
            stdout, stderr = self._demo.communicate(timeout=DEMO_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.stop()
            raise
        return subprocess.CompletedProcess(argv, self._demo.returncode, stdout, stderr)

    def stop(self) -> None:
        """End the demo if it still runs (a session that stops early leaves no process behind)."""
        self._stopped = True
        if self._demo is not None and self._demo.poll() is None:
            try:
                os.killpg(self._demo.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def result(self, step: str):
        # The demo's own timeout bounds the wait; the margin covers the wheel and the install.
        if not self._done[step].wait(timeout=DEMO_TIMEOUT + 600):
            raise TimeoutError(f"the installed copy's step '{step}' did not end")
        value = self._results[step]
        if isinstance(value, BaseException):
            raise value
        return value
