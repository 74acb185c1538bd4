"""serve.py as deployed: one file, a registered model from MLflow, events to a Fluentd stand-in."""

from __future__ import annotations

import os
import random
import subprocess
import sys

import cd4ml_events
import pytest
import requests
from model.data import load_split
from model.train import fit


def _row(marker: float | None = None) -> dict[str, float]:
    """A held-out row; `marker` replaces `age`, so a test can find its own event among the others."""
    row = load_split().X_test.iloc[0].to_dict()
    if marker is not None:
        row["age"] = marker
    return row


def _marker() -> float:
    return round(random.uniform(-0.1, 0.1), 9)


def _events_with(fluentd, marker: float):
    return fluentd.wait_for(lambda tag, record: (record.get("features") or {}).get("age") == marker)


def test_healthz_is_ok_once_the_model_is_loaded(service_url):
    response = requests.get(f"{service_url}/healthz", timeout=5)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_version_says_which_model_and_pipeline_run_are_served(service_url, trained):
    response = requests.get(f"{service_url}/version", timeout=5)
    assert response.status_code == 200
    assert response.json() == {
        "model_name": trained.record["model_name"],
        "model_version": trained.record["model_version"],
        "model_uri": trained.record["model_uri"],
        "pipeline_label": trained.pipeline_label,
        "environment": "staging",
    }


def test_predict_returns_the_registered_models_number(service_url, trained):
    split = load_split()
    response = requests.post(f"{service_url}/predict", json={"features": _row()}, timeout=10)
    assert response.status_code == 200, response.text
    body = response.json()
    assert isinstance(body["prediction"], float)
    expected = fit(split).predict(split.X_test.iloc[[0]])[0]  # same data, same parameters, same model
    assert body["prediction"] == pytest.approx(expected)
    assert body["predictions"] == [body["prediction"]]
    assert body["model_version"] == trained.record["model_version"]


def test_predict_takes_a_batch_of_instances(service_url):
    instances = load_split().X_test.head(3).to_dict(orient="records")
    response = requests.post(f"{service_url}/predict", json={"instances": instances}, timeout=10)
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert len(predictions) == 3 and all(isinstance(p, float) for p in predictions)


def test_each_prediction_is_sent_to_fluentd_as_a_valid_event(service_url, trained, fluentd):
    marker = _marker()
    response = requests.post(f"{service_url}/predict", json={"features": _row(marker)}, timeout=10)
    assert response.status_code == 200, response.text

    tag, event = _events_with(fluentd, marker)
    assert tag == cd4ml_events.tag(cd4ml_events.DEFAULT_TENANT) == "cd4ml.prediction"
    cd4ml_events.validate(event)
    assert event["status"] == "ok"
    assert event["prediction"] == pytest.approx(response.json()["prediction"])
    assert event["model_name"] == trained.record["model_name"]
    assert event["model_version"] == trained.record["model_version"]
    assert event["pipeline_label"] == trained.pipeline_label
    assert event["environment"] == "staging"
    assert event["tenant"] == "cd4ml"


def test_a_failed_prediction_is_a_400_and_an_error_event(service_url, fluentd):
    marker = _marker()
    features = _row(marker)
    del features["bmi"]  # the model's signature requires it
    response = requests.post(f"{service_url}/predict", json={"features": features}, timeout=10)
    assert response.status_code == 400, response.text
    assert "bmi" in response.json()["error"]

    _, event = _events_with(fluentd, marker)
    cd4ml_events.validate(event)
    assert event["status"] == "error" and "bmi" in event["error"] and "prediction" not in event


def test_unknown_routes_are_404(service_url):
    assert requests.get(f"{service_url}/nope", timeout=5).status_code == 404
    assert requests.post(f"{service_url}/version", json={}, timeout=5).status_code == 404


def test_a_model_that_cannot_load_stops_the_service(runtime_dir, mlflow_server, free_tcp_port):
    """Exit non-zero with the reason, so Kubernetes shows a crash-looping pod instead of a silent 503."""
    env = {**os.environ, "PYTHONPATH": str(runtime_dir / "lib"), "PYTHONDONTWRITEBYTECODE": "1",
           "PORT": str(free_tcp_port()), "MODEL_URI": "models:/no-such-model/1", "MLFLOW_TRACKING_URI": mlflow_server}
    result = subprocess.run([sys.executable, str(runtime_dir / "app" / "serve.py")], env=env, cwd=runtime_dir,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    assert "cannot load models:/no-such-model/1" in result.stderr


def test_a_prediction_event_explains_itself_and_measures_its_inputs_drift(service_url, trained, fluentd):
    """For the example's linear model the explanation is exact: the contributions sum to the prediction
    minus the prediction for the mean training input."""
    split = load_split()
    model = fit(split)
    marker = _marker()
    row = _row(marker)
    response = requests.post(f"{service_url}/predict", json={"features": row}, timeout=10)
    assert response.status_code == 200, response.text
    _, event = _events_with(fluentd, marker)
    cd4ml_events.validate(event)
    assert event["event_id"] == response.json()["event_id"]
    means = split.X_train.mean()
    baseline = model.predict(means.to_frame().T)[0]
    assert sum(event["explanation"].values()) == pytest.approx(event["prediction"] - baseline)
    assert set(event["explanation"]) == set(split.features)
    stds = split.X_train.std()
    assert event["input_drift"]["age"] == pytest.approx((marker - means["age"]) / stds["age"])


def test_feedback_names_the_prediction_and_its_error(service_url, fluentd):
    marker = _marker()
    predicted = requests.post(f"{service_url}/predict", json={"features": _row(marker)}, timeout=10).json()
    answer = requests.post(f"{service_url}/feedback", json={"event_id": predicted["event_id"], "true_value": 151.0},
                           timeout=10)
    assert answer.status_code == 202 and answer.json() == {"received": 1, "joined": 1}
    tag, event = fluentd.wait_for(lambda tag, record: record.get("prediction_event_id") == predicted["event_id"])
    assert tag == cd4ml_events.tag(cd4ml_events.DEFAULT_TENANT, "feedback") == "cd4ml.feedback"
    cd4ml_events.validate(event)
    assert event["kind"] == "feedback" and event["true_value"] == 151.0
    assert event["abs_error"] == pytest.approx(abs(predicted["prediction"] - 151.0))
    # Feedback for a prediction this service does not remember still counts, without an error.
    unknown = requests.post(f"{service_url}/feedback", json={"feedback": [{"event_id": "from-yesterday",
                                                                          "true_value": 80}]}, timeout=10)
    assert unknown.json() == {"received": 1, "joined": 0}
    _, late = fluentd.wait_for(lambda tag, record: record.get("prediction_event_id") == "from-yesterday")
    assert "abs_error" not in late and "prediction" not in late


def test_feedback_without_an_event_id_is_a_400_saying_what_it_needs(service_url):
    answer = requests.post(f"{service_url}/feedback", json={"true_value": 1.0}, timeout=10)
    assert answer.status_code == 400 and "event_id" in answer.json()["error"]
