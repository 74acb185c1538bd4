"""Shared, session-wide: one trained and registered model, a Fluentd stand-in, one running service."""

from __future__ import annotations

import json
import os
import queue
import shutil
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cd4ml_events
import msgpack
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PIPELINE_LABEL = "17"
MODEL_NAME = "it-diabetes-regressor"
EXPERIMENT = "it-cd4ml-example"


@dataclass(frozen=True)
class Trained:
    record: dict[str, Any]
    path: Path
    output: str
    pipeline_label: str = PIPELINE_LABEL
    model_name: str = MODEL_NAME
    experiment: str = EXPERIMENT


@pytest.fixture(scope="session")
def trained(mlflow_server: str, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """`python -m model.train`, exactly as the pipeline's train stage runs it."""
    out = tmp_path_factory.mktemp("train") / "out"
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server, "GO_PIPELINE_LABEL": PIPELINE_LABEL,
           "CD4ML_EXPERIMENT": EXPERIMENT, "CD4ML_MODEL_NAME": MODEL_NAME, "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run([sys.executable, "-m", "model.train", "--out", str(out)], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, f"train failed:\n{result.stdout}\n{result.stderr}"
    path = out / "model.json"
    return Trained(json.loads(path.read_text()), path, result.stdout + result.stderr)


@pytest.fixture
def tracking_uri(mlflow_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """For in-process MLflow calls (the gate, loading the model)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    return mlflow_server


class ForwardReceiver:
    """Fluentd's forward input, minimally: decodes the msgpack [tag, time, record(, options)] messages
    fluent-logger sends and queues (tag, record) for the tests."""

    def __init__(self) -> None:
        self.messages: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        receiver = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                unpacker = msgpack.Unpacker(raw=False, ext_hook=lambda code, data: data)  # EventTime -> bytes
                while chunk := self.request.recv(65536):
                    unpacker.feed(chunk)
                    for message in unpacker:
                        if isinstance(message, list) and len(message) >= 3 and isinstance(message[2], dict):
                            receiver.messages.put((message[0], message[2]))

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> ForwardReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, matches: Callable[[str, dict[str, Any]], bool], timeout: float = 10.0
                 ) -> tuple[str, dict[str, Any]]:
        """The first message that matches; the others are dropped (tests match on what they sent)."""
        deadline = time.monotonic() + timeout
        seen = []
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                tag, record = self.messages.get(timeout=remaining)
            except queue.Empty:
                break
            if matches(tag, record):
                return tag, record
            seen.append((tag, record))
        raise AssertionError(f"no matching event within {timeout}s; received {seen}")


@pytest.fixture(scope="session")
def fluentd() -> Iterator[ForwardReceiver]:
    with ForwardReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="session")
def runtime_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the model-runtime image and the chart provide: /app/serve.py and a top-level cd4ml_events."""
    root = tmp_path_factory.mktemp("runtime")
    (root / "app").mkdir()
    (root / "lib").mkdir()
    shutil.copy(REPO_ROOT / "service" / "serve.py", root / "app" / "serve.py")
    shutil.copy(cd4ml_events.__file__, root / "lib" / "cd4ml_events.py")
    return root


@pytest.fixture(scope="session")
def service_url(trained: Trained, mlflow_server: str, fluentd: ForwardReceiver, runtime_dir: Path,
                start_http_process, free_tcp_port) -> str:
    """serve.py as the cluster runs it: the single file, alone in its directory, configured by env."""
    port = free_tcp_port()
    env = {
        **{k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        "PYTHONPATH": str(runtime_dir / "lib"),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PORT": str(port),
        "MODEL_URI": trained.record["model_uri"],
        "MODEL_NAME": trained.record["model_name"],
        "MODEL_VERSION": trained.record["model_version"],
        "PIPELINE_LABEL": PIPELINE_LABEL,
        "ENVIRONMENT": "staging",
        "MLFLOW_TRACKING_URI": mlflow_server,
        "FLUENTD_HOST": "127.0.0.1",
        "FLUENTD_PORT": str(fluentd.port),
        "HOME": str(runtime_dir),
    }
    env.pop("TENANT", None)
    return start_http_process([sys.executable, str(runtime_dir / "app" / "serve.py")], port=port,
                              health_path="/healthz", log=runtime_dir / "serve.log", env=env, cwd=runtime_dir)
