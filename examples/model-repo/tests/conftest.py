"""A real MLflow server for the integration tests, started once per session and only if asked for.

The unit tests never request it, so `pytest tests/unit` starts nothing.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

SERVER_START_TIMEOUT = 90.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, process: subprocess.Popen, log: Path, timeout: float) -> None:
    """Poll `url` until it answers 200; fail early, with the log, if the process dies first."""
    deadline, delay = time.monotonic() + timeout, 0.05
    while True:
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[:4]} exited with {process.returncode} before {url} answered:\n"
                               f"{log.read_text(errors='replace')[-3000:]}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer 200 within {timeout:.0f}s:\n"
                               f"{log.read_text(errors='replace')[-3000:]}")
        try:
            process.wait(timeout=delay)  # the back-off, which also notices an early exit at once
        except subprocess.TimeoutExpired:
            pass
        delay = min(delay * 2, 0.5)


def stop(process: subprocess.Popen) -> None:
    """Ends the process group the process leads (mlflow server runs uvicorn and a job runner as children)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
    else:
        try:  # the leader is gone; its children may not be
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="session")
def free_tcp_port() -> Callable[[], int]:
    return free_port


@pytest.fixture(scope="session")
def start_http_process() -> Iterator[Callable[..., str]]:
    """Starts a command in its own process group, waits for its health URL, stops it at session end."""
    started: list[subprocess.Popen] = []

    def start(command: list[str], *, port: int, health_path: str, log: Path, env: dict[str, str] | None = None,
              cwd: Path | None = None, timeout: float = SERVER_START_TIMEOUT) -> str:
        with log.open("wb") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                       start_new_session=True)
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        wait_for_http(url + health_path, process, log, timeout)
        return url

    yield start
    for process in reversed(started):
        stop(process)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory, start_http_process) -> str:
    """The tracking URI of a fresh MLflow server: SQLite backend, artifacts proxied like the kit's."""
    root = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
               "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
               "--artifacts-destination", str(root / "artifacts"), "--serve-artifacts", "--workers", "1"]
    # The job runner (scheduled GenAI scoring, trace archival) is idle here and slows the shutdown.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    return start_http_process(command, port=port, health_path="/health", log=root / "server.log", env=env,
                              cwd=root)
