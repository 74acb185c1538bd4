"""The train and gate stages against a real MLflow server."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from model import gate
from model.train import DEFAULT_ALPHA

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_train_logs_the_run_registers_a_version_and_writes_model_json(trained, tracking_uri):
    record = trained.record
    assert set(record) == {"run_id", "model_name", "model_version", "model_uri", "metrics", "pipeline_label"}
    assert record["model_name"] == trained.model_name
    assert record["model_uri"] == f"models:/{trained.model_name}/{record['model_version']}"
    assert record["pipeline_label"] == trained.pipeline_label

    client = mlflow.MlflowClient()
    run = client.get_run(record["run_id"])
    assert client.get_experiment(run.info.experiment_id).name == trained.experiment
    assert run.data.params["model"] == "Ridge"
    assert float(run.data.params["alpha"]) == DEFAULT_ALPHA
    assert set(run.data.metrics) == {"rmse", "r2", "error_gap", "mae_sex_0", "mae_sex_1"}
    assert run.data.metrics == pytest.approx(record["metrics"])
    assert run.data.tags["pipeline_label"] == trained.pipeline_label

    version = client.get_model_version(trained.model_name, record["model_version"])
    assert version.run_id == record["run_id"]
    assert version.status == "READY"


def test_gate_passes_a_model_above_a_low_threshold(trained, tracking_uri, capsys):
    assert gate.main(["--model", str(trained.path), "--min-r2", "0.1"]) == 0
    out = capsys.readouterr().out
    assert "gate passed" in out and trained.record["run_id"] in out


def test_gate_fails_with_exit_code_1_and_says_why(trained, mlflow_server):
    """The real command the pipeline runs: its exit code is what fails the GoCD stage."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server, "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run([sys.executable, "-m", "model.gate", "--model", str(trained.path), "--min-r2", "0.99"],
                            cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    r2 = trained.record["metrics"]["r2"]
    expected = f"r2 {r2:.2f} is below the threshold 0.99 (run {trained.record['run_id']})"
    assert expected in result.stderr


def test_gate_threshold_comes_from_the_environment_too(trained, tracking_uri, monkeypatch, capsys):
    monkeypatch.setenv("CD4ML_MIN_R2", "0.99")
    assert gate.main(["--model", str(trained.path)]) == 1
    assert "below the threshold 0.99" in capsys.readouterr().err


def test_gate_judges_the_mlflow_run_not_the_artifact(trained, tracking_uri, tmp_path, capsys):
    forged = {**trained.record, "metrics": {"r2": 0.999, "rmse": 0.0}}
    (tmp_path / "model.json").write_text(json.dumps(forged))
    assert gate.main(["--model", str(tmp_path / "model.json"), "--min-r2", "0.99"]) == 1
    assert re.search(r"r2 0\.\d\d is below", capsys.readouterr().err)


def test_gate_names_a_run_mlflow_does_not_know(tracking_uri, tmp_path, capsys):
    (tmp_path / "model.json").write_text(json.dumps({"run_id": "0" * 32}))
    assert gate.main(["--model", str(tmp_path / "model.json")]) == 1
    assert f"cannot read run {'0' * 32} from MLflow at {tracking_uri}" in capsys.readouterr().err



def test_the_run_and_the_model_carry_the_training_reference(trained, tracking_uri):
    """The reference distribution in the run's artifacts (for people) and in the model's metadata (for the
    model service), with the linear model's coefficients as its explainer."""
    from model.data import load_split
    from service import serve

    client = mlflow.MlflowClient()
    path = client.download_artifacts(trained.record["run_id"], "reference.json")
    reference = json.loads(Path(path).read_text())
    split = load_split()
    assert set(reference["features"]) == set(split.features) and reference["rows"] == len(split.X_train)
    assert reference["features"]["bmi"]["mean"] == pytest.approx(split.X_train["bmi"].mean())
    loaded = serve.Reference.of(serve.load_model(trained.record["model_uri"]))
    assert loaded is not None and loaded.coefficients and set(loaded.coefficients) == set(split.features)
    assert loaded.stds["bmi"] == pytest.approx(split.X_train["bmi"].std())


def test_gate_stops_a_harmful_model_saying_so(tracking_uri, tmp_path, capsys):
    """A run as accurate as wanted whose error differs between groups beyond the threshold fails the gate."""
    mlflow.set_experiment("it-do-no-harm")
    with mlflow.start_run() as run:
        mlflow.log_metrics({"r2": 0.6, "error_gap": 0.55, "mae_sex_0": 30.0, "mae_sex_1": 52.0})
    model_json = tmp_path / "model.json"
    model_json.write_text(json.dumps({"run_id": run.info.run_id}))
    assert gate.main(["--model", str(model_json), "--min-r2", "0.3", "--max-error-gap", "0.2"]) == 1
    captured = capsys.readouterr()
    assert "r2 0.60 meets the threshold 0.30" in captured.out
    assert f"error_gap 0.55 is above the threshold 0.20 (run {run.info.run_id})" in captured.err
    assert "do no harm" in captured.err
