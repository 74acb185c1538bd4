"""The prediction event: the one record a model service sends to Fluentd for every prediction.

Defined once here and read by the model service (which ships this file in its image as
`cd4ml_events`), Fluentd's routing (the tag), the Elasticsearch index template and the Grafana
dashboard (the field names and types). Standard library only: the model service imports it
without the kit installed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

TAG_SUFFIX = "prediction"
"""Events are tagged `<tenant>.prediction`; Fluentd routes on it and keeps the tenant in the record."""
DEFAULT_TENANT = "cd4ml"
"""The tenant of a platform without workshop participants."""


@dataclass(frozen=True)
class Field:
    name: str
    python_type: type | tuple[type, ...]
    es_type: str
    required: bool = True
    description: str = ""


FIELDS: tuple[Field, ...] = (
    Field("@timestamp", str, "date", description="when the prediction was made (ISO 8601, UTC)"),
    Field("event_id", str, "keyword", description="unique per prediction, so a retried send is recognisable"),
    Field("tenant", str, "keyword", description="participant in workshop mode, else 'cd4ml'"),
    Field("environment", str, "keyword", description="staging, production, ..."),
    Field("model_name", str, "keyword"),
    Field("model_version", str, "keyword", description="MLflow registered-model version"),
    Field("pipeline_label", str, "keyword", description="GoCD pipeline counter that deployed the service"),
    Field("status", str, "keyword", description="'ok' or 'error'"),
    Field("latency_ms", (int, float), "float"),
    Field("prediction", (int, float), "double", required=False, description="absent when status is 'error'"),
    Field("error", str, "text", required=False, description="the error message when status is 'error'"),
    Field("features", dict, "flattened", required=False, description="the model's input, as sent"),
)
FIELD_NAMES = frozenset(f.name for f in FIELDS)
STATUSES = ("ok", "error")


class InvalidEvent(ValueError):
    pass


def tag(tenant: str = DEFAULT_TENANT) -> str:
    """The Fluentd tag for a tenant's prediction events."""
    if not tenant or "." in tenant:
        raise InvalidEvent(f"tenant {tenant!r} must be non-empty and contain no dots (it is the tag's first part)")
    return f"{tenant}.{TAG_SUFFIX}"


def prediction_event(*, model_name: str, model_version: str, pipeline_label: str, environment: str,
                     latency_ms: float, prediction: float | None = None, error: str | None = None,
                     features: dict[str, Any] | None = None, tenant: str = DEFAULT_TENANT,
                     at: datetime | None = None, event_id: str | None = None) -> dict[str, Any]:
    """A validated prediction event; exactly one of `prediction` and `error` is given."""
    if (prediction is None) == (error is None):
        raise InvalidEvent("give exactly one of prediction (a success) and error (a failure)")
    record: dict[str, Any] = {
        "@timestamp": (at or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="milliseconds"),
        "event_id": event_id or str(uuid.uuid4()),
        "tenant": tenant,
        "environment": environment,
        "model_name": model_name,
        "model_version": str(model_version),
        "pipeline_label": str(pipeline_label),
        "status": "ok" if error is None else "error",
        "latency_ms": float(latency_ms),
    }
    if prediction is not None:
        record["prediction"] = float(prediction)
    if error is not None:
        record["error"] = error
    if features is not None:
        record["features"] = dict(features)
    validate(record)
    return record


def validate(record: dict[str, Any]) -> None:
    """Raises InvalidEvent naming the first field that breaks the schema."""
    unknown = set(record) - FIELD_NAMES
    if unknown:
        raise InvalidEvent(f"unknown field(s) {sorted(unknown)}; the schema has {sorted(FIELD_NAMES)}")
    for field in FIELDS:
        if field.name not in record:
            if field.required:
                raise InvalidEvent(f"missing required field {field.name!r}")
            continue
        value = record[field.name]
        if isinstance(value, bool) or not isinstance(value, field.python_type):
            raise InvalidEvent(f"field {field.name!r} is {type(value).__name__} {value!r}, "
                               f"expected {field.python_type}")
    if record["status"] not in STATUSES:
        raise InvalidEvent(f"status {record['status']!r} is not one of {STATUSES}")
