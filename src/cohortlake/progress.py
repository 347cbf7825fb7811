"""Progress for long steps: a live spinner on a terminal, one plain line per step otherwise.

Scheduled spark-submit jobs log to files, so off a terminal every step prints exactly
one line when it ends: name, seconds, and what it produced.
"""

from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager

from rich.console import Console


class Progress:
    def __init__(self, quiet: bool = False, stream=None):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.interactive = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.console = Console(file=self.stream, highlight=False, force_terminal=self.interactive or None)
        self.timings: dict[str, float] = {}
        # steps may run in several threads at once; one spinner lists them all
        self._lock = threading.Lock()
        self._running: list[str] = []
        self._status = None

    def _show_running(self) -> None:
        if not (self.interactive and not self.quiet):
            return
        text = ", ".join(self._running) + " …"
        if self._running and self._status is None:
            self._status = self.console.status(text)
            self._status.start()
        elif self._running:
            self._status.update(text)
        elif self._status is not None:
            self._status.stop()
            self._status = None

    @contextmanager
    def step(self, name: str):
        """Time a step; the body may set ``result["detail"]`` to say what it produced."""
        result: dict[str, str] = {}
        started = time.perf_counter()
        with self._lock:
            self._running.append(name)
            self._show_running()
        try:
            yield result
        finally:
            with self._lock:
                self._running.remove(name)
                self._show_running()
        seconds = time.perf_counter() - started
        self.timings[name] = round(seconds, 3)
        if not self.quiet:
            detail = f"  {result['detail']}" if result.get("detail") else ""
            self.info(f"{name}: {seconds:.1f}s{detail}")

    def info(self, message: str) -> None:
        if not self.quiet:
            if self.interactive:
                self.console.print(message, markup=False)
            else:
                print(message, file=self.stream, flush=True)
