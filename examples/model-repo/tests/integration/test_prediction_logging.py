"""Prediction logging with the real fluent-logger sender and the real registered model, in-process."""

from __future__ import annotations

import logging

import cd4ml_events
import pytest
from fluent import sender as fluent_sender
from model.data import load_split
from service import serve


@pytest.fixture(scope="module")
def registered_model(trained, mlflow_server):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
        return serve.load_model(trained.record["model_uri"])


def _service(trained, model, *, port: int, tenant: str = "cd4ml") -> serve.PredictionService:
    settings = serve.Settings(model_uri=trained.record["model_uri"], model_name=trained.record["model_name"],
                              model_version=trained.record["model_version"], pipeline_label=trained.pipeline_label,
                              environment="production", tenant=tenant, fluentd_host="127.0.0.1", fluentd_port=port)
    events = serve.make_event_log(settings)
    assert isinstance(events._sender, fluent_sender.FluentSender)  # the real client, not a stand-in
    return serve.PredictionService(settings, events, model=model)


def test_prediction_succeeds_when_nothing_listens_for_events(trained, registered_model, free_tcp_port, caplog):
    service = _service(trained, registered_model, port=free_tcp_port())  # a port nobody listens on
    features = load_split().X_test.iloc[0].to_dict()
    with caplog.at_level(logging.WARNING, logger="model-service"):
        first = service.predict({"features": features})
        second = service.predict({"features": features})
    service.events.close()
    assert first[0] == second[0] == 200
    assert isinstance(first[1]["prediction"], float)
    warnings = [r for r in caplog.records if "cannot send prediction events" in r.getMessage()]
    assert len(warnings) == 1, "one warning per outage, not one per prediction"


def test_a_tenants_events_carry_the_tenants_tag(trained, registered_model, fluentd):
    service = _service(trained, registered_model, port=fluentd.port, tenant="team-a")
    features = {**load_split().X_test.iloc[1].to_dict(), "age": 0.0424242}
    status, body = service.predict({"features": features})
    service.events.close()
    assert status == 200, body

    tag, event = fluentd.wait_for(lambda tag, record: record.get("tenant") == "team-a")
    assert tag == cd4ml_events.tag("team-a") == "team-a.prediction"
    cd4ml_events.validate(event)
    assert event["environment"] == "production"
    assert event["model_version"] == trained.record["model_version"]
    assert event["pipeline_label"] == trained.pipeline_label
    assert event["prediction"] == pytest.approx(body["prediction"])
