"""deploy.sh with stand-in `helm` and `kubectl` that record their arguments: no cluster needed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import UTC
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY_SH = REPO_ROOT / "deploy.sh"
MODEL = {"run_id": "r1", "model_name": "diabetes-regressor", "model_version": "10",
         "model_uri": "models:/diabetes-regressor/10", "metrics": {"r2": 0.46}, "pipeline_label": "1.10"}
AGENT_ENV = {
    "CD4ML_NAMESPACE_STAGING": "cd4ml-staging",
    "MLFLOW_TRACKING_URI": "http://mlflow.cd4ml-mlflow.svc.cluster.local:5000",
    "FLUENTD_HOST": "fluentd-forward.cd4ml-logging.svc.cluster.local",
    "FLUENTD_PORT": "24224",
    "GO_PIPELINE_LABEL": "1.10",
    "CD4ML_MLFLOW_LOGIN_SECRET": "mlflow-login",
}

pytestmark = pytest.mark.skipif(shutil.which("bash") is None or shutil.which("python3") is None,
                                reason="deploy.sh needs bash and python3")


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A GoCD job's working directory after the fetch task, plus stand-ins for helm and kubectl."""
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "model.json").write_text(json.dumps(MODEL))
    (tmp_path / "chart").mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("helm", "kubectl"):
        stub = bin_dir / tool
        # One call per record: NUL-separated arguments, then a newline. `helm status` answers with the
        # release's state from helm-status.json (as `helm status -o json` prints it), or "not found".
        status = (f'if [[ "$1" == status || "$1" == history ]]; then [[ -f "{tmp_path}/helm-$1.json" ]] || '
                  f'{{ echo "Error: release: not found" >&2; exit 1; }}; cat "{tmp_path}/helm-$1.json"; exit 0; fi\n'
                  if tool == "helm" else "")
        stub.write_text(f'#!/usr/bin/env bash\nprintf "%s\\0" {tool} "$@" >> "{tmp_path}/calls"\n'
                        f'printf "\\n" >> "{tmp_path}/calls"\n{status}')
        stub.chmod(0o755)
    return tmp_path


def run(workdir: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CD4ML_", "GO_", "FLUENTD_", "MLFLOW_"))}
    base["PATH"] = f"{workdir / 'bin'}{os.pathsep}{base['PATH']}"
    return subprocess.run(["bash", str(DEPLOY_SH), *args], cwd=workdir, capture_output=True, text=True, timeout=30,
                          env={**base, "CD4ML_ML_APP_CHART": str(workdir / "chart"), **env})


def calls(workdir: Path, with_status: bool = False) -> list[list[str]]:
    """What deploy.sh ran, without its `helm status` look at the release unless asked for."""
    path = workdir / "calls"
    if not path.exists():
        return []
    recorded = [line.strip("\0").split("\0") for line in path.read_text().split("\0\n") if line.strip("\0")]
    return [c for c in recorded if with_status or c[:2] not in (["helm", "status"], ["helm", "history"])]


def test_it_installs_the_models_version_with_the_chart_and_shows_the_deployment(workdir):
    result = run(workdir, "staging", **AGENT_ENV)
    assert result.returncode == 0, result.stderr
    helm, rollout, get = calls(workdir)
    assert helm[:4] == ["helm", "upgrade", "--install", "model-service"]
    assert helm[4] == str(workdir / "chart")
    assert helm[helm.index("--namespace") + 1] == "cd4ml-staging"
    assert "--wait" in helm and helm[helm.index("--timeout") + 1] == "5m"
    values = {helm[i + 1] for i, arg in enumerate(helm) if arg in ("--set", "--set-string")}
    assert values == {
        "model.name=diabetes-regressor", "model.version=10", "model.uri=models:/diabetes-regressor/10",
        "pipelineLabel=1.10", "environment=staging", "tenant=cd4ml",
        f"mlflow.trackingUri={AGENT_ENV['MLFLOW_TRACKING_URI']}", f"fluentd.host={AGENT_ENV['FLUENTD_HOST']}",
        "fluentd.port=24224", "mlflow.credentialsSecret=mlflow-login",
    }
    assert helm[helm.index("--set-file") + 1] == f"source.serve\\.py={REPO_ROOT / 'service' / 'serve.py'}"
    assert rollout == ["kubectl", "-n", "cd4ml-staging", "rollout", "status", "deploy/model-service", "--timeout", "5m"]
    assert get == ["kubectl", "-n", "cd4ml-staging", "get", "deploy", "model-service"]


def test_the_tenant_can_be_set(workdir):
    assert run(workdir, "staging", **AGENT_ENV, CD4ML_TENANT="team-a").returncode == 0
    assert "tenant=team-a" in calls(workdir)[0]


def test_the_namespace_variable_is_named_after_the_environment(workdir):
    env = {**AGENT_ENV, "CD4ML_NAMESPACE_LOAD_TEST": "cd4ml-load-test"}
    assert run(workdir, "load-test", **env).returncode == 0
    helm = calls(workdir)[0]
    assert helm[helm.index("--namespace") + 1] == "cd4ml-load-test"


REQUIRED = ["CD4ML_NAMESPACE_STAGING", "GO_PIPELINE_LABEL", "MLFLOW_TRACKING_URI"]


@pytest.mark.parametrize("unset", REQUIRED)
def test_a_missing_variable_is_named_and_nothing_is_deployed(workdir, unset):
    env = {k: v for k, v in AGENT_ENV.items() if k != unset}
    result = run(workdir, "staging", **env)
    assert result.returncode != 0
    assert "missing environment variable(s)" in result.stderr and unset in result.stderr
    assert calls(workdir) == []


def test_all_missing_variables_are_named_at_once(workdir):
    result = run(workdir, "staging")
    assert result.returncode != 0
    assert all(var in result.stderr for var in REQUIRED)


def test_without_fluentd_it_deploys_a_service_that_logs_no_events_and_says_so(workdir):
    env = {k: v for k, v in AGENT_ENV.items() if not k.startswith("FLUENTD_")}
    result = run(workdir, "staging", **env)
    assert result.returncode == 0, result.stderr
    assert "FLUENTD_HOST is not set" in result.stderr
    helm = calls(workdir)[0]
    assert "fluentd.host=" in helm and "fluentd.port=24224" in helm


def test_an_environment_without_a_namespace_says_which_variable(workdir):
    result = run(workdir, "production", **AGENT_ENV)
    assert result.returncode != 0 and "CD4ML_NAMESPACE_PRODUCTION" in result.stderr
    assert calls(workdir) == []


@pytest.mark.parametrize("args", [[], ["Staging"], ["../prod"]])
def test_a_bad_environment_argument_is_refused(workdir, args):
    result = run(workdir, *args, **AGENT_ENV)
    assert result.returncode != 0 and "deploy.sh:" in result.stderr
    assert calls(workdir) == []


def test_without_model_json_it_says_where_it_comes_from(workdir):
    (workdir / "out" / "model.json").unlink()
    result = run(workdir, "staging", **AGENT_ENV)
    assert result.returncode != 0 and "fetch it from the train stage" in result.stderr
    assert calls(workdir) == []


def test_a_model_json_without_a_field_is_refused(workdir):
    (workdir / "out" / "model.json").write_text(json.dumps({k: v for k, v in MODEL.items() if k != "model_uri"}))
    result = run(workdir, "staging", **AGENT_ENV)
    assert result.returncode != 0 and "has no 'model_uri'" in result.stderr
    assert calls(workdir) == []


def test_a_missing_chart_is_named(workdir):
    result = run(workdir, "staging", **{**AGENT_ENV, "CD4ML_ML_APP_CHART": str(workdir / "no-chart")})
    assert result.returncode != 0 and "CD4ML_ML_APP_CHART" in result.stderr
    assert calls(workdir) == []


def test_a_failed_helm_stops_the_deploy(workdir):
    (workdir / "bin" / "helm").write_text("#!/usr/bin/env bash\necho 'Error: UPGRADE FAILED' >&2\nexit 1\n")
    result = run(workdir, "staging", **AGENT_ENV)
    assert result.returncode != 0 and "UPGRADE FAILED" in result.stderr
    assert calls(workdir) == []  # kubectl never ran


def test_the_kits_model_runtime_image_is_passed_when_the_agent_names_it(workdir):
    image = {"CD4ML_MODEL_RUNTIME_REPOSITORY": "cd4ml.local/model-runtime", "CD4ML_MODEL_RUNTIME_TAG": "0.1.0-abc"}
    assert run(workdir, "staging", **AGENT_ENV, **image).returncode == 0
    helm = calls(workdir)[0]
    values = {helm[i + 1] for i, arg in enumerate(helm) if arg == "--set-string"}
    assert {"image.repository=cd4ml.local/model-runtime", "image.tag=0.1.0-abc"} <= values


def release_state(workdir: Path, status: str, seconds_ago: int, history: list[str] | None = None) -> None:
    """The release as `helm status -o json` and `helm history -o json` show it (helm v3.19: info.status,
    info.last_deployed RFC 3339; one entry per revision with its status)."""
    from datetime import datetime, timedelta

    when = datetime.now(UTC) - timedelta(seconds=seconds_ago)
    history = history or ["superseded", "deployed", status]
    (workdir / "helm-status.json").write_text(json.dumps({"name": "model-service", "version": len(history), "info": {
        "status": status, "last_deployed": when.strftime("%Y-%m-%dT%H:%M:%S.123456789Z")}}))
    (workdir / "helm-history.json").write_text(json.dumps([
        {"revision": i, "status": state, "chart": "ml-app-0.1.0", "description": "..."}
        for i, state in enumerate(history, start=1)]))


@pytest.mark.parametrize("status, history, undo", [
    ("pending-upgrade", ["superseded", "deployed", "pending-upgrade"], ["rollback", "model-service", "2"]),
    # An abandoned rollback of an abandoned upgrade: back to what last ran, not to the abandoned upgrade.
    ("pending-rollback", ["superseded", "deployed", "failed", "pending-rollback"], ["rollback", "model-service", "2"]),
    ("pending-install", ["pending-install"], ["uninstall", "model-service"]),
])
def test_a_deploy_cancelled_half_way_is_undone_before_the_next(workdir, status, history, undo):
    """Helm refuses every operation on a release left pending ("another operation (install/upgrade/
    rollback) is in progress", helm v3.19.2 pkg/action/upgrade.go:219): a cancelled GoCD job would
    block every later deploy of the pipeline."""
    release_state(workdir, status, seconds_ago=3600, history=history)
    result = run(workdir, "staging", **AGENT_ENV)
    assert result.returncode == 0, result.stderr
    recovered, deployed = calls(workdir)[:2]
    assert recovered[1:1 + len(undo)] == undo and "cd4ml-staging" in recovered
    assert deployed[:3] == ["helm", "upgrade", "--install"]
    assert f"was left {status}" in result.stderr


def test_a_deploy_still_running_is_not_undone(workdir):
    release_state(workdir, "pending-upgrade", seconds_ago=30)
    result = run(workdir, "staging", **AGENT_ENV)
    assert result.returncode != 0 and "another deploy is running" in result.stderr
    assert calls(workdir) == []


def test_a_healthy_release_is_simply_upgraded(workdir):
    release_state(workdir, "deployed", seconds_ago=3600)
    assert run(workdir, "staging", **AGENT_ENV).returncode == 0
    assert [c[1] for c in calls(workdir) if c[0] == "helm"] == ["upgrade"]
    assert calls(workdir, with_status=True)[0][:2] == ["helm", "status"]


def test_no_empty_array_is_expanded_bare(workdir):
    """macOS's bash 3.2 (and any bash before 4.4) fails `"${a[@]}"` on an empty array under `set -u`:
    every array expansion in deploy.sh is guarded (`${a[@]+"${a[@]}"}`). Read, not run: no bash 3.2
    installs here."""
    import re

    text = DEPLOY_SH.read_text()
    bare = [m.group(0) for m in re.finditer(r'(?<!\+)"\$\{(\w+)\[@\]\}"', text)
            if not text[max(0, m.start() - len(m.group(1)) - 8):m.start()].endswith(f"${{{m.group(1)}[@]+")]
    assert bare == []
    assert "${#" not in text  # nor the length of one
