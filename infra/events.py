"""The model events: the records a model service sends to Fluentd — one `prediction` event for every
prediction, and a `feedback` event when the true outcome of an earlier prediction comes back.

Defined once here and read by the model service (which ships this file in its image as
`cd4ml_events`), Fluentd's routing (the tag), the Elasticsearch index template (`es_mappings`) and the
Grafana dashboard (the field names and types). Standard library only: the model service imports it
without the kit installed.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

TAG_SUFFIX = "prediction"
"""Events are tagged `<tenant>.<kind>`; Fluentd routes on the tenant (the tag's first part)."""
DEFAULT_TENANT = "cd4ml"
"""The tenant of a platform without workshop participants."""
PREDICTION, FEEDBACK = "prediction", "feedback"
INDEX_PREFIX = "cd4ml-events"
"""Fluentd writes a tenant's events to daily indices `<prefix>-<tenant>-YYYY.MM.DD`."""
KINDS = (PREDICTION, FEEDBACK)


@dataclass(frozen=True)
class Field:
    name: str
    python_type: type | tuple[type, ...]
    es_type: str
    kinds: tuple[str, ...] = KINDS
    """The events that carry it."""
    required: bool = True
    """Required in those events."""
    description: str = ""
    values_type: str | None = None
    """An object of input name -> number, whatever the model's inputs: each value mapped as this type."""


FIELDS: tuple[Field, ...] = (
    Field("@timestamp", str, "date", description="when it happened (ISO 8601, UTC)"),
    Field("event_id", str, "keyword", description="unique per event, so a retried send is recognisable"),
    Field("kind", str, "keyword", description="'prediction' or 'feedback'"),
    Field("tenant", str, "keyword", description="participant in workshop mode, else 'cd4ml'"),
    Field("environment", str, "keyword", description="staging, production, ..."),
    Field("model_name", str, "keyword"),
    Field("model_version", str, "keyword", description="MLflow registered-model version that made the prediction"),
    Field("pipeline_label", str, "keyword", description="GoCD pipeline counter that deployed the service"),
    Field("status", str, "keyword", (PREDICTION,), description="'ok' or 'error'"),
    Field("latency_ms", (int, float), "float", (PREDICTION,)),
    Field("prediction", (int, float), "double", required=False,
          description="the predicted value (absent when status is 'error'; on feedback, the prediction it is for, "
                      "when the service still knew it)"),
    Field("error", str, "text", (PREDICTION,), False, "the error message when status is 'error'"),
    Field("features", dict, "flattened", (PREDICTION,), False, "the model's input, as sent"),
    Field("explanation", dict, "object", (PREDICTION,), False,
          "each input's contribution to this prediction, by input name (for a linear model exactly "
          "coefficient x (input - training mean); any explainer's per-input values fit)", values_type="double"),
    Field("input_drift", dict, "object", (PREDICTION,), False,
          "each numeric input in standard deviations from its mean in the training data (the model's "
          "reference distribution): near 0 while live inputs look like the training inputs", values_type="double"),
    Field("prediction_event_id", str, "keyword", (FEEDBACK,), description="the prediction event it is the outcome of"),
    Field("true_value", (int, float), "double", (FEEDBACK,), description="what really happened"),
    Field("abs_error", (int, float), "double", (FEEDBACK,), False,
          "|prediction - true_value|, when the prediction is known"),
)
FIELD_NAMES = frozenset(f.name for f in FIELDS)
STATUSES = ("ok", "error")


def es_mappings() -> dict[str, Any]:
    """The events index template's mappings: a property per field; the values of per-input objects
    (explanation, input_drift) mapped as numbers whatever the inputs are called."""
    return {
        "dynamic_templates": [{f"{f.name}_values": {"path_match": f"{f.name}.*", "mapping": {"type": f.values_type}}}
                              for f in FIELDS if f.values_type],
        "properties": {f.name: {"type": f.es_type} for f in FIELDS},
    }


class InvalidEvent(ValueError):
    pass


def index_pattern(tenant: str = DEFAULT_TENANT) -> str:
    """Every index of a tenant's events: what their Elasticsearch role may read."""
    return f"{INDEX_PREFIX}-{tenant}-*"


def tag(tenant: str = DEFAULT_TENANT, kind: str = PREDICTION) -> str:
    """The Fluentd tag for a tenant's events of one kind."""
    if not tenant or "." in tenant:
        raise InvalidEvent(f"tenant {tenant!r} must be non-empty and contain no dots (it is the tag's first part)")
    if kind not in KINDS:
        raise InvalidEvent(f"kind {kind!r} is not one of {KINDS}")
    return f"{tenant}.{kind}"


def _common(kind: str, *, model_name: str, model_version: str, pipeline_label: str, environment: str, tenant: str,
            at: datetime | None, event_id: str | None) -> dict[str, Any]:
    return {
        "@timestamp": (at or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="milliseconds"),
        "event_id": event_id or str(uuid.uuid4()),
        "kind": kind,
        "tenant": tenant,
        "environment": environment,
        "model_name": model_name,
        "model_version": str(model_version),
        "pipeline_label": str(pipeline_label),
    }


def prediction_event(*, model_name: str, model_version: str, pipeline_label: str, environment: str,
                     latency_ms: float, prediction: float | None = None, error: str | None = None,
                     features: dict[str, Any] | None = None, explanation: dict[str, float] | None = None,
                     input_drift: dict[str, float] | None = None, tenant: str = DEFAULT_TENANT,
                     at: datetime | None = None, event_id: str | None = None) -> dict[str, Any]:
    """A validated prediction event; exactly one of `prediction` and `error` is given."""
    if (prediction is None) == (error is None):
        raise InvalidEvent("give exactly one of prediction (a success) and error (a failure)")
    record = _common(PREDICTION, model_name=model_name, model_version=model_version, pipeline_label=pipeline_label,
                     environment=environment, tenant=tenant, at=at, event_id=event_id)
    record |= {"status": "ok" if error is None else "error", "latency_ms": float(latency_ms)}
    if prediction is not None:
        record["prediction"] = float(prediction)
    if error is not None:
        record["error"] = error
    if features is not None:
        record["features"] = dict(features)
    for name, values in (("explanation", explanation), ("input_drift", input_drift)):
        if values:
            record[name] = {key: float(value) for key, value in values.items()}
    validate(record)
    return record


def feedback_event(*, prediction_event_id: str, true_value: float, model_name: str, model_version: str,
                   pipeline_label: str, environment: str, prediction: float | None = None,
                   tenant: str = DEFAULT_TENANT, at: datetime | None = None,
                   event_id: str | None = None) -> dict[str, Any]:
    """A validated feedback event: the true value of an earlier prediction (and its error, when the
    prediction is known)."""
    record = _common(FEEDBACK, model_name=model_name, model_version=model_version, pipeline_label=pipeline_label,
                     environment=environment, tenant=tenant, at=at, event_id=event_id)
    record |= {"prediction_event_id": prediction_event_id, "true_value": float(true_value)}
    if prediction is not None:
        record |= {"prediction": float(prediction), "abs_error": abs(float(prediction) - float(true_value))}
    validate(record)
    return record


def validate(record: dict[str, Any]) -> None:
    """Raises InvalidEvent naming the first field that breaks the schema."""
    kind = record.get("kind")
    if kind not in KINDS:
        raise InvalidEvent(f"kind {kind!r} is not one of {KINDS}")
    allowed = {f.name for f in FIELDS if kind in f.kinds}
    unknown = set(record) - allowed
    if unknown:
        raise InvalidEvent(f"unknown field(s) {sorted(unknown)} for a {kind} event; the schema has {sorted(allowed)}")
    for field in FIELDS:
        if kind not in field.kinds:
            continue
        if field.name not in record:
            if field.required:
                raise InvalidEvent(f"missing required field {field.name!r} of a {kind} event")
            continue
        value = record[field.name]
        if isinstance(value, bool) or not isinstance(value, field.python_type):
            raise InvalidEvent(f"field {field.name!r} is {type(value).__name__} {value!r}, "
                               f"expected {field.python_type}")
        if field.values_type and isinstance(value, dict):
            bad = {k: v for k, v in value.items() if isinstance(v, bool) or not isinstance(v, (int, float))
                   or not math.isfinite(v)}
            if bad:
                raise InvalidEvent(f"field {field.name!r} maps inputs to numbers; not numbers: {bad}")
    if kind == PREDICTION and record["status"] not in STATUSES:
        raise InvalidEvent(f"status {record['status']!r} is not one of {STATUSES}")
