"""Open a local page in headless Chromium with no way out, and record every request it makes.

Every request goes to a proxy on a closed local port and every host name resolves to
nothing, so nothing can leave the machine; Chromium's NetLog records each request anyway,
which is what the tests count. Requests the page makes carry the file:// page as their
network isolation key; Chromium's own background calls (update checks, account probes)
do not, and they are blocked the same way.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest


def chromium() -> str:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs it")
        pytest.skip("chromium not installed (CI installs it)")
    return browser


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Visit:
    dom: str
    page_requests: list[str]
    """Every URL the page asked for (file:// included)."""
    connections: list[str]
    """Every address a TCP connection was attempted to, by any part of the browser."""

    @property
    def outbound(self) -> list[str]:
        return [url for url in self.page_requests if not url.startswith(("file:", "data:", "about:"))]


def visit(page: str | Path, budget_ms: int = 5000) -> Visit:
    browser = chromium()
    port = closed_port()
    with tempfile.TemporaryDirectory() as scratch:
        netlog = Path(scratch) / "netlog.json"
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 f"--user-data-dir={scratch}/profile", f"--proxy-server=http://127.0.0.1:{port}",
                 "--host-resolver-rules=MAP * ~NOTFOUND", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-pings", "--disable-domain-reliability",
                 f"--log-net-log={netlog}", f"--virtual-time-budget={budget_ms}", "--dump-dom",
                 Path(page).resolve().as_uri()]
        run = subprocess.run([browser, *flags], capture_output=True, text=True, timeout=120)
        log = json.loads(netlog.read_text())
    names = {value: key for key, value in log["constants"]["logEventTypes"].items()}
    requests, connections = [], []
    for event in log["events"]:
        kind, params = names.get(event["type"]), event.get("params") or {}
        if kind == "URL_REQUEST_START_JOB" and "file://" in str(params.get("network_isolation_key", "")):
            requests.append(params["url"])
        if kind == "TCP_CONNECT" and "address_list" in params:
            connections += params["address_list"]
        if kind == "TCP_CONNECT_ATTEMPT" and "address" in params:
            connections.append(params["address"])
    return Visit(run.stdout, requests, connections)


def only_local(connections: list[str]) -> bool:
    """Every socket went to this machine (the closed proxy port), none elsewhere."""
    return all(address.startswith(("127.0.0.1:", "[::1]:")) for address in connections)
