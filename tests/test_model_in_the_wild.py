"""Closing the loop, as a participant does it from their laptop: `python -m model.live_data` pulls their
predictions with feedback through Kibana's console (stand-ins: Kibana forwards the participant's login,
Elasticsearch applies the kit's own roles), and `python -m model.gate --live` compares a candidate with
the production model on them, both loaded from a real MLflow server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from es_security import Security
from http_standin import foreign_calls
from services import Connection, ElasticsearchStandIn, KibanaStandIn
from smoke_fixtures import MLFLOW_ADMIN, kit_security
from stack_settings import workshop

from infra import events
from infra.config import load_config
from infra.model_repos import EXAMPLE
from infra.platform import elasticsearch
from infra.platform.build import build_platform

LOGINS = {"p01": "p01-password", "p02": "p02-password"}


def example_split():
    """The example model's data split, imported from the example as its own code does."""
    sys.path.insert(0, str(EXAMPLE))
    try:
        from model.data import load_split

        return load_split()
    finally:
        sys.path.remove(str(EXAMPLE))


@pytest.fixture(scope="module")
def platform_events():
    """Elasticsearch with the kit's roles for two participants, and each participant's live events:
    p01's model version "1" answered ten held-out rows in production and got their true values back."""
    platform = build_platform(load_config(workshop(participants=2)), "workshop")
    security: Security = kit_security()
    security.role_definitions.update(yaml.safe_load(elasticsearch.roles_document(platform.tenants)))
    security.user_roles.update({name: (elasticsearch.tenant_role(name),) for name in LOGINS})
    es = ElasticsearchStandIn(dict(LOGINS), security).start()
    kibana = KibanaStandIn(Connection(es.url, "kibana-association", "x"), users=dict(LOGINS)).start()
    split = example_split()
    for tenant in LOGINS:
        index = f"{events.INDEX_PREFIX}-{tenant}-2026.12.07"
        documents = es.indices.setdefault(index, [])
        for position in range(10):
            features = split.X_test.iloc[position].to_dict()
            predicted = events.prediction_event(model_name=f"{tenant}-diabetes-regressor", model_version="1",
                                                pipeline_label="3", environment="production", latency_ms=2.0,
                                                prediction=150.0, features=features, tenant=tenant)
            documents += [predicted, events.feedback_event(
                prediction_event_id=predicted["event_id"], true_value=float(split.y_test.iloc[position]),
                prediction=150.0, model_name=predicted["model_name"], model_version="1", pipeline_label="3",
                environment="production", tenant=tenant)]
    try:
        yield kibana
    finally:
        kibana.stop()
        es.stop()


def run_example(module: str, *args: str, env: dict[str, str], cwd: Path = EXAMPLE) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "CD4ML_"))}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={**base, **env, "PYTHONDONTWRITEBYTECODE": "1"})


@pytest.fixture(scope="module")
def runtime(tmp_path_factory) -> Path:
    """Where the example finds `cd4ml_events`, as the agent image puts it on PYTHONPATH."""
    folder = tmp_path_factory.mktemp("python")
    shutil.copy(Path(__file__).resolve().parents[1] / "infra" / "events.py", folder / "cd4ml_events.py")
    return folder


def test_a_participant_pulls_their_own_predictions_with_feedback_and_nobody_elses(platform_events, runtime,
                                                                                   tmp_path):
    kibana = platform_events
    env = {"PYTHONPATH": f"{EXAMPLE}:{runtime}", "CD4ML_KIBANA_URL": kibana.url, "CD4ML_TENANT": "p01",
           "CD4ML_USERNAME": "p01", "CD4ML_PASSWORD": LOGINS["p01"]}
    pulled = run_example("model.live_data", "--out", str(tmp_path / "live.csv"), env=env)
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    assert "wrote 10 predictions with their true value" in pulled.stdout
    header = (tmp_path / "live.csv").read_text().splitlines()[0].split(",")
    assert header[-3:] == ["true_value", "model_version", "environment"] and "bmi" in header
    with foreign_calls():  # trying another's events is the participant's doing, not the kit's
        refused = run_example("model.live_data", "--out", str(tmp_path / "theirs.csv"),
                              env={**env, "CD4ML_TENANT": "p02"})
    # Elasticsearch resolves a wildcard to the indices the role may read: none, so 200 with no hits.
    assert refused.returncode == 1
    assert "no prediction events of 'p02' readable by 'p01'" in refused.stderr
    assert "a login reads only its own tenant's events" in refused.stderr


def test_the_gate_compares_a_candidate_with_the_production_model_on_live_data(mlflow_server, runtime, tmp_path):
    """Production: the example's model. A candidate trained the same way passes; one regularised into
    predicting almost the mean fails, saying by how much."""
    split = example_split()
    env = {"PYTHONPATH": f"{EXAMPLE}:{runtime}", "MLFLOW_TRACKING_URI": mlflow_server.url,
           "MLFLOW_TRACKING_USERNAME": MLFLOW_ADMIN[0], "MLFLOW_TRACKING_PASSWORD": MLFLOW_ADMIN[1],
           "CD4ML_EXPERIMENT": "live-gate", "CD4ML_MODEL_NAME": "live-gate-regressor", "GO_PIPELINE_LABEL": "1"}
    records = {}
    for name, alpha in (("production", "0.1"), ("same", "0.1"), ("shrunk", "1000")):
        trained = run_example("model.train", "--out", str(tmp_path / name), "--alpha", alpha, env=env)
        assert trained.returncode == 0, trained.stdout + trained.stderr
        records[name] = json.loads((tmp_path / name / "model.json").read_text())
    live = split.X_test.head(40).assign(true_value=split.y_test.head(40).to_numpy(),
                                        model_version=records["production"]["model_version"],
                                        environment="production")
    live.to_csv(tmp_path / "live.csv", index=False)
    production = f"models:/live-gate-regressor/{records['production']['model_version']}"
    same = run_example("model.gate", "--model", str(tmp_path / "same" / "model.json"), "--min-r2", "0.1",
                       "--live", str(tmp_path / "live.csv"), env=env)
    assert same.returncode == 0, same.stdout + same.stderr
    assert f"the production model's ({production})" in same.stdout and "not worse by more than 5%" in same.stdout
    shrunk = run_example("model.gate", "--model", str(tmp_path / "shrunk" / "model.json"), "--min-r2", "-10",
                         "--live", str(tmp_path / "live.csv"), env=env)
    assert shrunk.returncode == 1, shrunk.stdout + shrunk.stderr
    assert "worse by more than 5%" in shrunk.stderr
