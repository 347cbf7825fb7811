"""A real Spark standalone cluster on 127.0.0.1, started from the installed pyspark.

One master and N workers, each a JVM of its own started with ``spark-class`` in its own
process group (a worker's executors are its children, so the group is "that machine").
Every process is remembered by its id and stopped by it, also when a test fails.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pyspark

SPARK_HOME = Path(pyspark.__file__).resolve().parent
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def get_json(url: str, timeout: float = 5):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read().decode("utf-8"))


def tail(path: Path, chars: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


class StandaloneCluster:
    def __init__(self, workdir: Path, workers: int = 2, cores: int = 1, memory: str = "2g"):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.worker_count, self.cores, self.memory = workers, cores, memory
        self.port, self.webui = free_port(), free_port()
        self.master_url = f"spark://{HOST}:{self.port}"
        self.master: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        self.worker_webuis: list[int] = []
        self.started: list[subprocess.Popen] = []
        self.logs: dict[int, Path] = {}
        self.ready = False
        self.stopped = False

    # processes

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "SPARK_HOME": str(SPARK_HOME),
            "SPARK_LOCAL_IP": HOST,
            "SPARK_LOG_DIR": str(self.workdir / "logs"),
            "PYSPARK_PYTHON": sys.executable,
            "PYSPARK_DRIVER_PYTHON": sys.executable,
        })
        env.pop("PYSPARK_GATEWAY_PORT", None)
        env.pop("PYSPARK_GATEWAY_SECRET", None)
        return env

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start a process in a new process group, output to ``<workdir>/<name>.log``."""
        log = self.workdir / f"{name}.log"
        with open(log, "w") as out:
            proc = subprocess.Popen(argv, env=env or self.env(), stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True, cwd=str(self.workdir))
        self.started.append(proc)
        self.logs[proc.pid] = log
        return proc

    def launch(self) -> StandaloneCluster:
        """Start the master and the workers without waiting for them (see wait_ready)."""
        spark_class = str(SPARK_HOME / "bin" / "spark-class")
        self.master = self.spawn("master", [
            spark_class, "org.apache.spark.deploy.master.Master",
            "--host", HOST, "--port", str(self.port), "--webui-port", str(self.webui)])
        for i in range(self.worker_count):
            work = self.workdir / f"worker-{i}"
            work.mkdir(exist_ok=True)
            self.worker_webuis.append(free_port())
            self.workers.append(self.spawn(f"worker-{i}", [
                spark_class, "org.apache.spark.deploy.worker.Worker",
                "--host", HOST, "--cores", str(self.cores), "--memory", self.memory,
                "--webui-port", str(self.worker_webuis[-1]), "--work-dir", str(work), self.master_url]))
        return self

    def wait_ready(self, timeout: float = 120) -> StandaloneCluster:
        """Wait until every worker has registered with the master (at once when it has)."""
        if self.ready:
            return self
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for proc in self.started:
                if proc.poll() is not None:
                    raise RuntimeError(f"pid {proc.pid} exited with {proc.returncode}:\n{tail(self.logs[proc.pid])}")
            try:
                if self.state()["aliveworkers"] == self.worker_count:
                    self.ready = True
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.worker_count} workers did not register in {timeout}s:\n"
                           f"{tail(self.logs[self.master.pid])}")

    def start(self, timeout: float = 120) -> StandaloneCluster:
        return self.launch().wait_ready(timeout)

    def state(self) -> dict:
        """The master's view: workers, applications (its web UI's JSON)."""
        return get_json(f"http://{HOST}:{self.webui}/json/")

    def worker_of_executor(self, app_id: str, executor_id: str) -> int | None:
        """Which worker runs an executor of an application (from each worker's web UI JSON)."""
        for index, port in enumerate(self.worker_webuis):
            try:
                state = get_json(f"http://{HOST}:{port}/json/")
            except OSError:
                continue
            for executor in state.get("executors", []):
                if str(executor.get("id")) == str(executor_id) and executor.get("appid") == app_id:
                    return index
        return None

    def kill_worker(self, index: int) -> None:
        """The machine goes away: SIGKILL the worker and the executors it started."""
        _kill_group(self.workers[index])

    def kill_group(self, proc: subprocess.Popen) -> None:
        """SIGKILL a process this cluster started and its children (a driver: JVM and Python)."""
        _kill_group(proc)

    def stop(self) -> None:
        """Stop every process this cluster started, by its id: TERM, then KILL the group (once:
        a second call would signal ids that may have been reused)."""
        if self.stopped:
            return
        self.stopped = True
        for proc in reversed(self.started):
            if proc.poll() is None:
                try:
                    os.kill(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 15
        for proc in reversed(self.started):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _kill_group(proc)

    def __enter__(self) -> StandaloneCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL a process and everything left in its process group (its executors)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass


def group_alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
