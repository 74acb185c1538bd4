"""PredictionService with a fake model and a recording sender: no MLflow, no socket."""

from __future__ import annotations

import ast
import json
import logging
import sys
from pathlib import Path

import cd4ml_events
import pandas as pd
import pytest
from service import serve

SERVE_PY = Path(serve.__file__)
FEATURES = {"age": 0.01, "sex": -0.04, "bmi": 0.06, "bp": 0.02}


class SumModel:
    """Predicts the sum of the features; raises what MLflow raises when a signature column is missing."""

    def __init__(self, required=("age", "bmi")):
        self.required = required
        self.calls = 0

    def predict(self, frame: pd.DataFrame):
        self.calls += 1
        missing = [c for c in self.required if c not in frame.columns]
        if missing:
            error = ValueError(f"Model is missing inputs {missing}")
            error.error_code = "INVALID_PARAMETER_VALUE"
            error.message = str(error)
            raise error
        return frame.sum(axis=1).to_numpy()


class BrokenModel:
    def predict(self, frame):
        raise RuntimeError("segfault in the forest")


class RecordingSender:
    def __init__(self, works: bool = True):
        self.works, self.emitted, self.last_error, self.closed = works, [], None, False

    def emit(self, label, record):
        if not self.works:
            self.last_error = ConnectionRefusedError("nobody listens")
            return False
        self.emitted.append((label, record))
        return True

    def clear_last_error(self):
        self.last_error = None

    def close(self):
        self.closed = True


class ExplodingSender(RecordingSender):
    def emit(self, label, record):
        raise OSError("the logger itself broke")


SETTINGS = serve.Settings(model_uri="models:/diabetes-regressor/7", model_name="diabetes-regressor",
                          model_version="7", pipeline_label="42", environment="staging", tenant="cd4ml")


def make_service(model=None, sender=None, settings=SETTINGS):
    sender = sender or RecordingSender()
    ticks = iter(range(0, 10_000, 2))  # 2 s per clock read: latency is deterministic
    service = serve.PredictionService(settings, serve.EventLog(sender), model=model or SumModel(),
                                      clock=lambda: next(ticks) / 1000)
    return service, sender


def events(sender):
    for label, record in sender.emitted:
        assert label == cd4ml_events.TAG_SUFFIX
        cd4ml_events.validate(record)
    return [record for _, record in sender.emitted]


def test_a_single_prediction_is_answered_and_logged():
    service, sender = make_service()
    status, body = service.predict({"features": FEATURES})
    assert status == 200
    assert body["prediction"] == pytest.approx(sum(FEATURES.values()))
    assert body["predictions"] == [body["prediction"]]
    assert (body["model_version"], body["pipeline_label"]) == ("7", "42")

    [event] = events(sender)
    assert event["status"] == "ok"
    assert event["prediction"] == body["prediction"]
    assert event["features"] == FEATURES
    assert (event["model_name"], event["model_version"], event["pipeline_label"]) == ("diabetes-regressor", "7", "42")
    assert (event["environment"], event["tenant"]) == ("staging", "cd4ml")
    assert event["latency_ms"] == 2.0


def test_a_batch_gets_one_prediction_and_one_event_per_instance():
    service, sender = make_service()
    instances = [FEATURES, {**FEATURES, "age": 1.0}, {**FEATURES, "bmi": -1.0}]
    status, body = service.predict({"instances": instances})
    assert status == 200
    assert "prediction" not in body
    assert body["predictions"] == pytest.approx([sum(i.values()) for i in instances])
    assert [e["features"] for e in events(sender)] == instances


@pytest.mark.parametrize("payload", [
    None,
    [FEATURES],
    {},
    {"features": FEATURES, "instances": [FEATURES]},
    {"features": {}},
    {"features": [1, 2]},
    {"instances": []},
    {"instances": [FEATURES, "not an object"]},
    {"instances": [FEATURES] * (serve.MAX_INSTANCES + 1)},
])
def test_a_malformed_request_is_a_400_and_an_error_event(payload):
    service, sender = make_service()
    status, body = service.predict(payload)
    assert status == 400 and body["error"]
    [event] = events(sender)
    assert event["status"] == "error" and event["error"] == body["error"]
    assert service.model.calls == 0


def test_a_body_that_is_not_json_is_a_400_and_an_error_event():
    service, sender = make_service()
    status, body = service.predict_json(b"{features: oops")
    assert status == 400 and "not JSON" in body["error"]
    assert [e["status"] for e in events(sender)] == ["error"]


def test_json_bodies_are_decoded():
    service, _ = make_service()
    assert service.predict_json(json.dumps({"features": FEATURES}).encode())[0] == 200


def test_input_the_model_rejects_is_a_400_with_its_reason_and_an_event_per_instance():
    service, sender = make_service()
    status, body = service.predict({"instances": [{"age": 1.0}, {"age": 2.0}]})
    assert status == 400 and "bmi" in body["error"]
    assert [(e["status"], e["features"]) for e in events(sender)] == [("error", {"age": 1.0}), ("error", {"age": 2.0})]


def test_a_broken_model_is_a_500(caplog):
    service, sender = make_service(model=BrokenModel())
    status, body = service.predict({"features": FEATURES})
    assert status == 500 and "segfault in the forest" in body["error"]
    assert [e["status"] for e in events(sender)] == ["error"]
    assert "the model failed" in caplog.text


@pytest.mark.parametrize("output", [[1.0, 2.0], [[1.0, 2.0]], [float("nan")]])
def test_a_model_that_does_not_return_one_number_per_instance_is_a_500(output):
    class Odd:
        def predict(self, frame):
            return output

    service, _ = make_service(model=Odd())
    assert service.predict({"features": FEATURES})[0] == 500


def test_while_the_model_loads_health_and_predict_say_so():
    service, sender = make_service()
    service.model = None
    assert service.health()[0] == 503
    status, body = service.predict({"features": FEATURES})
    assert status == 503 and "loading" in body["error"]
    assert [e["status"] for e in events(sender)] == ["error"]
    service.model = SumModel()
    assert service.health() == (200, {"status": "ok"})


def test_version_reports_what_is_served():
    service, _ = make_service()
    assert service.version() == (200, {"model_name": "diabetes-regressor", "model_version": "7",
                                       "model_uri": "models:/diabetes-regressor/7", "pipeline_label": "42",
                                       "environment": "staging"})


def test_a_sender_that_cannot_send_costs_no_prediction_and_warns_once_per_outage(caplog):
    sender = RecordingSender(works=False)
    service, _ = make_service(sender=sender)
    with caplog.at_level(logging.INFO, logger="model-service"):
        assert service.predict({"features": FEATURES})[0] == 200
        assert service.predict({"features": FEATURES})[0] == 200
        sender.works = True
        assert service.predict({"features": FEATURES})[0] == 200
    messages = [r.getMessage() for r in caplog.records]
    assert sum("cannot send prediction events" in m for m in messages) == 1
    assert any("nobody listens" in m for m in messages)
    assert any("reach Fluentd again after 2 failed sends" in m for m in messages)
    assert len(sender.emitted) == 1


def test_a_sender_that_raises_costs_no_prediction(caplog):
    service, _ = make_service(sender=ExplodingSender())
    status, body = service.predict({"features": FEATURES})
    assert status == 200 and body["prediction"] == pytest.approx(sum(FEATURES.values()))
    assert "the logger itself broke" in caplog.text


def test_settings_come_from_the_charts_environment():
    settings = serve.Settings.from_env({
        "MODEL_URI": "models:/m/3", "MODEL_NAME": "m", "MODEL_VERSION": "3", "PIPELINE_LABEL": "12",
        "ENVIRONMENT": "production", "TENANT": "team-a", "PORT": "9000", "FLUENTD_HOST": "fluentd.logging",
        "FLUENTD_PORT": "24225"})
    assert settings == serve.Settings("models:/m/3", "m", "3", "12", "production", "team-a", 9000,
                                      "fluentd.logging", 24225)


def test_settings_have_defaults_but_need_a_model_uri():
    settings = serve.Settings.from_env({"MODEL_URI": "models:/m/1"})
    assert (settings.tenant, settings.port, settings.fluentd_host, settings.fluentd_port) == ("cd4ml", 8080, "", 24224)
    with pytest.raises(serve.ConfigError, match="MODEL_URI"):
        serve.Settings.from_env({})


@pytest.mark.parametrize("env", [{"PORT": "http"}, {"TENANT": "team.a"}])
def test_settings_refuse_what_would_break_later(env):
    with pytest.raises(serve.ConfigError):
        serve.Settings.from_env({"MODEL_URI": "models:/m/1", **env})


def test_the_fluent_tag_is_the_schemas_tag():
    prefix, label = serve.fluent_tag_parts("team-a")
    assert f"{prefix}.{label}" == cd4ml_events.tag("team-a") == "team-a.prediction"


def test_serve_py_imports_only_what_the_model_runtime_image_has():
    """It ships alone in a ConfigMap: an import of this repo's code (or any other library) breaks it there."""
    allowed = set(sys.stdlib_module_names) | {"mlflow", "pandas", "fluent", "cd4ml_events"}
    imported = set()
    for node in ast.walk(ast.parse(SERVE_PY.read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative imports do not survive being shipped as one file"
            imported.add(node.module.split(".")[0])
    assert imported - allowed == set()
    assert {"cd4ml_events", "fluent"} <= imported


def test_without_fluentd_predictions_are_served_and_events_dropped_quietly(caplog):
    events = serve.make_event_log(serve.Settings(model_uri="models:/m/1"))
    assert "FLUENTD_HOST is not set" in caplog.text
    caplog.clear()
    service = serve.PredictionService(SETTINGS, events, model=SumModel())
    assert service.predict({"features": FEATURES})[0] == 200
    assert "cannot send" not in caplog.text
