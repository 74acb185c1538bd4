"""MLflow as the platform runs it: where its databases live, and what it costs a laptop — measured on
the real server (PyPI, the image's version) with the environment the kit's values give the chart's
container. tests/test_upstream_charts.py goes further where the chart's sources are at hand: the
server started exactly as the pinned chart renders it, on a read-only root filesystem."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from mlflow_as_charted import EXERCISE, _descendants, memory_of
from smoke_fixtures import MLFLOW_ADMIN, MLflowServer, mlflow_server_env

from infra.config import Profile, load_config
from infra.platform.build import build_platform
from infra.platform.mlflow import AUTH_DATABASE, DATA_CLAIM, DATA_DIR, SERVER_ENV_JOB_EXECUTION, SIZES


def mlflow_values(profile: str = "laptop") -> dict:
    service = build_platform(load_config({"cd4ml:profile": profile}), "local").services["mlflow"]
    return next(r.values for stage in service.stages for r in stage.releases)


def test_the_user_database_is_on_the_data_volume():
    """community-charts mlflow 1.11.5 builds `sqlite:///<sqliteFullPath><sqliteFile>` with no separator
    (templates/auth_ini_configmap.yaml): the folder must end in a slash, or the file lands on the
    read-only root (`/mlflowbasic_auth.db`) and the pod never becomes ready."""
    auth = mlflow_values()["auth"]
    assert auth["sqliteFullPath"].endswith("/")
    assert auth["sqliteFullPath"] + auth.get("sqliteFile", "basic_auth.db") == AUTH_DATABASE
    assert AUTH_DATABASE.startswith(DATA_DIR + "/")
    mounts = {m["mountPath"]: m["name"] for m in mlflow_values()["extraVolumeMounts"]}
    volume = next(v for v in mlflow_values()["extraVolumes"] if v["name"] == mounts[DATA_DIR])
    assert volume["persistentVolumeClaim"]["claimName"] == DATA_CLAIM


def test_one_pod_at_a_time_on_the_read_write_once_volume():
    """The chart's default is a rolling update with maxSurge 100%: a second pod on the same RWO
    claim (and SQLite file) while the first still runs. Recreate stops the old pod first."""
    for profile in ("laptop", "cluster"):
        assert mlflow_values(profile)["strategy"] == {"type": "Recreate"}


def test_mlflow_as_the_kit_runs_it_fits_its_memory_limit(tmp_path, capsys):
    """MLflow 3.15 starts a job runner and huey consumers with the server unless told not to: ten
    processes and about 1.5 GiB at idle, twice the laptop limit. With the kit's environment it is
    the server alone. Measured after a pipeline's worth of calls, as proportional set size summed
    over the server's processes (each shared page counted once)."""
    assert mlflow_server_env()[SERVER_ENV_JOB_EXECUTION] == "false"
    server = MLflowServer(tmp_path, admin=MLFLOW_ADMIN)
    try:
        exercised = subprocess.run([sys.executable, "-c", EXERCISE.format(port=server.port)], capture_output=True,
                                   text=True, timeout=120, env={**os.environ, "ADMIN_USERNAME": MLFLOW_ADMIN[0],
                                                                "ADMIN_PASSWORD": MLFLOW_ADMIN[1]})
        assert exercised.returncode == 0, exercised.stderr[-2000:]
        time.sleep(1)  # the server finishes its answer's bookkeeping; not a wait for readiness
        used = memory_of([server.process.pid, *_descendants(server.process.pid)])
    finally:
        server.stop()
    limit = SIZES[Profile.LAPTOP].memory_limit_mi
    with capsys.disabled():
        print(f"\n  mlflow server (kit's environment, basic auth, after a run): {used}; laptop limit {limit} MiB")
    assert used.processes <= 3, f"{used}: a job runner or workers started"
    assert used.pss_mib < limit, f"{used} does not fit the laptop limit of {limit} MiB"
