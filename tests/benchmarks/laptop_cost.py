"""Prints what the laptop stack costs: requests and limits summed over every workload, and MLflow's
memory as the real server holds it — with the kit's environment (always), and started exactly as the
pinned chart renders it on a read-only root (when the chart's sources are at hand: CD4ML_UPSTREAM_CHARTS
or .upstream-charts, from `make upstream-charts`) — beside its request and limit.

A benchmark, not a test: it reports figures and asserts nothing.
Run: make bench
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent / "standins")]

from mlflow_as_charted import EXERCISE, _descendants, bwrap, charted_pod, memory_of, run_as_charted  # noqa: E402
from smoke_fixtures import MLFLOW_ADMIN, MLflowServer  # noqa: E402

from infra.config import Profile, load_config  # noqa: E402
from infra.platform.build import build_platform  # noqa: E402
from infra.platform.mlflow import SIZES  # noqa: E402


def budget() -> None:
    platform = build_platform(load_config({"cd4ml:profile": "laptop"}), "local")
    requests, limits = platform.requests, platform.limits
    print("laptop stack, long-running workloads summed (configure Jobs and probes come and go)")
    print(f"  requests {requests['cpu_millicores']}m CPU, {requests['memory_mib']} MiB;  "
          f"limits {limits['cpu_millicores']}m CPU, {limits['memory_mib']} MiB")


def mlflow_with_the_kits_environment() -> None:
    size = SIZES[Profile.LAPTOP]
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        server = MLflowServer(Path(scratch), admin=MLFLOW_ADMIN)
        ready = time.perf_counter() - started
        try:
            idle = memory_of([server.process.pid, *_descendants(server.process.pid)])
            subprocess.run([sys.executable, "-c", EXERCISE.format(port=server.port)], check=True, capture_output=True,
                           env={**os.environ, "ADMIN_USERNAME": MLFLOW_ADMIN[0], "ADMIN_PASSWORD": MLFLOW_ADMIN[1]})
            busy = memory_of([server.process.pid, *_descendants(server.process.pid)])
        finally:
            server.stop()
    print("mlflow server, the kit's environment (basic auth, job execution off)")
    print(f"  ready in {ready:.1f}s; idle {idle}; after a run {busy}")
    print(f"  request {size.memory_request_mi} MiB, limit {size.memory_limit_mi} MiB")


def mlflow_as_charted(charts: Path) -> None:
    sandbox = bwrap()
    if sandbox is None:
        print("mlflow as charted: skipped (bubblewrap cannot make a sandbox on this machine)")
        return
    from test_upstream_charts import render

    platform = build_platform(load_config({"cd4ml:profile": "laptop"}), "local")
    release = next(r for part in platform.parts for r in part.releases if r.chart == "mlflow")
    _, objects = render(charts, release)
    admin = {"username": MLFLOW_ADMIN[0], "password": MLFLOW_ADMIN[1]}
    pod = charted_pod(objects, {release.values["auth"]["existingAdminSecret"]["name"]: admin})
    port = int(next(a for a in pod.container.args if a.startswith("--port=")).split("=")[1])
    with run_as_charted(pod, sandbox, Path(sys.executable).with_name("mlflow"), port) as server:
        ready = server.wait_healthy(timeout=180)
        idle = server.memory()
        server.run_inside(EXERCISE.format(port=port), env={"ADMIN_USERNAME": admin["username"],
                                                            "ADMIN_PASSWORD": admin["password"]})
        busy = server.memory()
    print(f"mlflow as the chart {release.chart} {release.version} runs it (read-only root, its volumes)")
    print(f"  ready in {ready:.1f}s; idle {idle}; after a run {busy}; limit {pod.container.memory_limit_mib} MiB")


def main() -> None:
    budget()
    mlflow_with_the_kits_environment()
    charts = Path(os.environ.get("CD4ML_UPSTREAM_CHARTS") or HERE.parents[1] / ".upstream-charts")
    if (charts / "mlflow").is_dir():
        mlflow_as_charted(charts)
    else:
        print(f"mlflow as charted: skipped (no chart sources in {charts}; `make upstream-charts` pulls them)")


if __name__ == "__main__":
    main()
