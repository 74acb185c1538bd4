"""The model service: serves one registered MLflow model version and logs every prediction to Fluentd.

It is shipped to the cluster as this single file (charts/ml-app mounts it from a ConfigMap and the
kit's model-runtime image runs `python /app/serve.py`), so it imports only the standard library,
mlflow, pandas, fluent-logger and `cd4ml_events` (the kit's event schema, baked into that image).

    GET  /healthz   200 once the model is loaded, 503 while it loads
    GET  /version   the model version and pipeline label served, so a rollback is visible
    POST /predict   {"features": {...}} or {"instances": [{...}, ...]}; the answer names each prediction's
                    event_id(s), and each prediction event carries the inputs' explanation and drift
    POST /feedback  {"event_id": "...", "true_value": 151.0} or {"feedback": [{...}, ...]}: the true outcome
                    of an earlier prediction, logged as a feedback event (with its error when this service
                    still remembers the prediction)

Environment (set by the chart): MODEL_URI (required), MODEL_NAME, MODEL_VERSION, PIPELINE_LABEL,
ENVIRONMENT, TENANT, PORT, FLUENTD_HOST, FLUENTD_PORT, and MLFLOW_TRACKING_URI for mlflow itself.
Without FLUENTD_HOST (a platform without Fluentd) the service serves but sends no events.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import cd4ml_events
import pandas as pd
from fluent import sender as fluent_sender

log = logging.getLogger("model-service")

MAX_BODY_BYTES = 1 << 20
MAX_INSTANCES = 1000
REMEMBERED_PREDICTIONS = 10_000
"""Recent predictions kept (by event id) so feedback can name its error; older feedback still logs."""
REFERENCE_KEY = "cd4ml"
"""Where model.train puts the training reference and the explainer in the model's MLmodel metadata."""
FLUENTD_TIMEOUT_SECONDS = 1.0
"""Fluent-logger sends inline; a short timeout bounds what an unreachable Fluentd adds to a request."""
INPUT_ERROR_CODES = {"INVALID_PARAMETER_VALUE", "BAD_REQUEST"}
"""MLflow's error codes for input that does not match the model's signature: the caller's fault."""

Reply = tuple[int, dict[str, Any]]


class ConfigError(ValueError):
    pass


class BadRequest(ValueError):
    pass


@dataclass(frozen=True)
class Settings:
    model_uri: str
    model_name: str = ""
    model_version: str = ""
    pipeline_label: str = ""
    environment: str = "local"
    tenant: str = cd4ml_events.DEFAULT_TENANT
    port: int = 8080
    fluentd_host: str = ""
    fluentd_port: int = 24224

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        if not env.get("MODEL_URI"):
            raise ConfigError("MODEL_URI is not set (e.g. models:/diabetes-regressor/3); the deploy step passes it")
        try:
            port, fluentd_port = int(env.get("PORT") or 8080), int(env.get("FLUENTD_PORT") or 24224)
        except ValueError as error:
            raise ConfigError(f"PORT and FLUENTD_PORT must be numbers: {error}") from None
        settings = cls(
            model_uri=env["MODEL_URI"],
            model_name=env.get("MODEL_NAME", ""),
            model_version=env.get("MODEL_VERSION", ""),
            pipeline_label=env.get("PIPELINE_LABEL", ""),
            environment=env.get("ENVIRONMENT") or "local",
            tenant=env.get("TENANT") or cd4ml_events.DEFAULT_TENANT,
            port=port,
            fluentd_host=env.get("FLUENTD_HOST", ""),
            fluentd_port=fluentd_port,
        )
        try:
            cd4ml_events.tag(settings.tenant)
        except cd4ml_events.InvalidEvent as error:
            raise ConfigError(f"TENANT: {error}") from None
        return settings

    def version_info(self) -> dict[str, str]:
        return {
            "model_name": self.model_name,
            "model_version": self.model_version,
            "model_uri": self.model_uri,
            "pipeline_label": self.pipeline_label,
            "environment": self.environment,
        }


def fluent_tag_parts(tenant: str) -> tuple[str, str]:
    """cd4ml_events.tag() split into fluent-logger's (tag_prefix, label): `<tenant>` and `prediction`."""
    prefix, _, label = cd4ml_events.tag(tenant).partition(".")
    return prefix, label


@dataclass(frozen=True)
class Reference:
    """What the model was trained on (each numeric input's mean and standard deviation) and, for a linear
    model, its coefficients: from the model's metadata (model.train writes it), so live inputs can be
    compared with the training inputs and each prediction explained. A model without it is served
    without drift or explanations."""

    means: dict[str, float]
    stds: dict[str, float]
    coefficients: dict[str, float] | None = None

    @classmethod
    def of(cls, model: Any) -> Reference | None:
        metadata = getattr(getattr(model, "metadata", None), "metadata", None) or {}
        found = metadata.get(REFERENCE_KEY) or {}
        features = (found.get("reference") or {}).get("features") or {}
        if not features:
            return None
        explainer = found.get("explainer") or {}
        return cls(means={k: float(v["mean"]) for k, v in features.items()},
                   stds={k: float(v["std"]) for k, v in features.items()},
                   coefficients={k: float(v) for k, v in explainer["coefficients"].items()}
                   if explainer.get("kind") == "linear" else None)

    def _numbers(self, features: Mapping[str, Any]) -> dict[str, float]:
        return {k: float(v) for k, v in features.items()
                if k in self.means and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}

    def drift(self, features: Mapping[str, Any]) -> dict[str, float]:
        """Each input in training standard deviations from its training mean."""
        return {k: (v - self.means[k]) / self.stds[k] for k, v in self._numbers(features).items() if self.stds[k] > 0}

    def explain(self, features: Mapping[str, Any]) -> dict[str, float] | None:
        """A linear model's exact attribution: coefficient x (input - training mean), which sums to the
        prediction minus the prediction for the mean input."""
        if not self.coefficients:
            return None
        return {k: self.coefficients[k] * (v - self.means[k]) for k, v in self._numbers(features).items()
                if k in self.coefficients}


class EventLog:
    """Sends model events and never raises: a lost log line must not cost a prediction.

    fluent-logger keeps unsent events in a buffer, retries them with the next event and drops them
    when the buffer is full. One warning per outage (not per event) keeps the pod log readable.
    """

    def __init__(self, sender: Any):
        self._sender = sender
        self._lock = threading.Lock()
        self._failures = 0

    def send(self, event: dict[str, Any]) -> bool:
        """Under the tag `<tenant>.<kind>` (the sender holds the tenant; cd4ml_events.tag)."""
        try:
            sent = bool(self._sender.emit(event["kind"], event))
            error = None if sent else getattr(self._sender, "last_error", None)
        except Exception as exc:  # noqa: BLE001 - whatever the logger does, the prediction stands
            sent, error = False, exc
        if not sent and hasattr(self._sender, "clear_last_error"):
            self._sender.clear_last_error()
        with self._lock:
            if not sent:
                self._failures += 1
                if self._failures == 1:
                    log.warning("cannot send prediction events to Fluentd (%s); predictions go on, events are "
                                "buffered and retried, and dropped when the buffer is full", error)
            elif self._failures:
                log.info("prediction events reach Fluentd again after %d failed sends", self._failures)
                self._failures = 0
        return sent

    def close(self) -> None:
        try:
            self._sender.close()
        except Exception:  # noqa: BLE001 - shutting down anyway
            log.debug("closing the Fluentd sender failed", exc_info=True)


class NoFluentd:
    """The sender when no Fluentd is configured: events are dropped on purpose, so no warnings."""

    def emit(self, label: str, record: dict[str, Any]) -> bool:
        return True

    def close(self) -> None:
        pass


def make_event_log(settings: Settings) -> EventLog:
    prefix, _ = fluent_tag_parts(settings.tenant)
    if not settings.fluentd_host:
        log.warning("FLUENTD_HOST is not set: predictions are served but no prediction events are sent")
        return EventLog(NoFluentd())
    return EventLog(fluent_sender.FluentSender(prefix, host=settings.fluentd_host, port=settings.fluentd_port,
                                               timeout=FLUENTD_TIMEOUT_SECONDS))


def parse_payload(payload: Any) -> tuple[list[dict[str, Any]], bool]:
    """The instances to predict and whether the caller sent a single one (`features`)."""
    if not isinstance(payload, dict) or ("features" in payload) == ("instances" in payload):
        raise BadRequest('send a JSON object with either "features": {...} or "instances": [{...}, ...]')
    if "features" in payload:
        features = payload["features"]
        if not isinstance(features, dict) or not features:
            raise BadRequest('"features" must be a non-empty object of feature name to value')
        return [features], True
    instances = payload["instances"]
    if not isinstance(instances, list) or not instances or not all(isinstance(i, dict) and i for i in instances):
        raise BadRequest('"instances" must be a non-empty list of non-empty objects')
    if len(instances) > MAX_INSTANCES:
        raise BadRequest(f'"instances" has {len(instances)} items; at most {MAX_INSTANCES} per request')
    return instances, False


def as_floats(raw: Any, expected: int) -> list[float]:
    """One number per instance, whatever container the model returned them in."""
    frame = pd.DataFrame(raw)
    if frame.shape != (expected, 1):
        raise ValueError(f"expected one number per instance ({expected}), the model returned shape {frame.shape}")
    values = [float(v) for v in frame.iloc[:, 0]]
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"the model returned a non-finite prediction: {values}")
    return values


def parse_feedback(payload: Any) -> list[tuple[str, float]]:
    """(prediction event id, true value) pairs from {"event_id", "true_value"} or {"feedback": [...]}."""
    items = payload.get("feedback") if isinstance(payload, dict) and "feedback" in payload else [payload]
    if not isinstance(items, list) or not items or len(items) > MAX_INSTANCES:
        raise BadRequest(f'"feedback" must be a list of 1 to {MAX_INSTANCES} objects')
    pairs = []
    for item in items:
        event_id = item.get("event_id") if isinstance(item, dict) else None
        value = item.get("true_value") if isinstance(item, dict) else None
        if not isinstance(event_id, str) or not event_id or isinstance(value, bool) \
                or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise BadRequest('each feedback needs "event_id" (from the prediction\'s answer) and a numeric '
                             '"true_value"')
        pairs.append((event_id, float(value)))
    return pairs


def _is_input_error(error: Exception) -> bool:
    return getattr(error, "error_code", None) in INPUT_ERROR_CODES


class PredictionService:
    """Everything the HTTP handler does, without a socket, so tests can call it directly."""

    def __init__(self, settings: Settings, events: EventLog, model: Any = None,
                 clock: Callable[[], float] = time.perf_counter):
        self.settings, self.events, self._clock = settings, events, clock
        self.model = model
        self.load_error: str | None = None
        self._remembered: OrderedDict[str, float] = OrderedDict()
        self._remember_lock = threading.Lock()

    @property
    def model(self) -> Any:
        return self._model

    @model.setter
    def model(self, model: Any) -> None:
        self._model = model
        self.reference = Reference.of(model) if model is not None else None

    def health(self) -> Reply:
        if self.model is None:
            return 503, {"status": "loading", "model_uri": self.settings.model_uri, "error": self.load_error}
        return 200, {"status": "ok"}

    def version(self) -> Reply:
        return 200, self.settings.version_info()

    def reject(self, status: int, message: str) -> Reply:
        """A request refused before its body was read; still a failed prediction, so still an event."""
        return self._fail(status, message, [None], self._clock())

    def predict_json(self, raw: bytes) -> Reply:
        started = self._clock()
        try:
            payload = json.loads(raw)
        except ValueError as error:
            return self._fail(400, f"the body is not JSON: {error}", [None], started)
        return self.predict(payload, started=started)

    def predict(self, payload: Any, started: float | None = None) -> Reply:
        started = self._clock() if started is None else started
        try:
            instances, single = parse_payload(payload)
        except BadRequest as error:
            return self._fail(400, str(error), [None], started)
        if self.model is None:
            return self._fail(503, "the model is still loading", instances, started)
        try:
            predictions = as_floats(self.model.predict(pd.DataFrame(instances)), len(instances))
        except Exception as error:  # noqa: BLE001 - any model failure becomes an error reply and event
            status = 400 if _is_input_error(error) else 500
            if status == 500:
                log.exception("the model failed on %d instance(s)", len(instances))
            message = getattr(error, "message", None) or str(error)
            return self._fail(status, f"prediction failed: {message}", instances, started)
        latency_ms = (self._clock() - started) * 1000
        event_ids = [self._log(latency_ms, features, prediction=prediction)
                     for features, prediction in zip(instances, predictions, strict=True)]
        body: dict[str, Any] = {"predictions": predictions, "event_ids": event_ids}
        if single:
            body |= {"prediction": predictions[0], "event_id": event_ids[0]}
        body.update(model_name=self.settings.model_name, model_version=self.settings.model_version,
                    pipeline_label=self.settings.pipeline_label)
        return 200, body

    def _fail(self, status: int, message: str, instances: list[dict[str, Any] | None], started: float) -> Reply:
        latency_ms = (self._clock() - started) * 1000
        for features in instances:
            self._log(latency_ms, features, error=message)
        return status, {"error": message}

    def feedback_json(self, raw: bytes) -> Reply:
        try:
            pairs = parse_feedback(json.loads(raw))
        except (ValueError, BadRequest) as error:
            return 400, {"error": str(error)}
        joined = 0
        s = self.settings
        for event_id, true_value in pairs:
            with self._remember_lock:
                prediction = self._remembered.get(event_id)
            joined += prediction is not None
            try:
                event = cd4ml_events.feedback_event(
                    prediction_event_id=event_id, true_value=true_value, prediction=prediction,
                    model_name=s.model_name, model_version=s.model_version, pipeline_label=s.pipeline_label,
                    environment=s.environment, tenant=s.tenant)
            except Exception:  # noqa: BLE001 - a schema problem is a bug to fix
                log.exception("could not build the feedback event")
                continue
            self.events.send(event)
        return 202, {"received": len(pairs), "joined": joined}

    def _log(self, latency_ms: float, features: dict[str, Any] | None, *, prediction: float | None = None,
             error: str | None = None) -> str | None:
        """Sends the prediction's event; its id, for the caller's feedback."""
        s, reference = self.settings, self.reference
        try:
            event = cd4ml_events.prediction_event(
                model_name=s.model_name, model_version=s.model_version, pipeline_label=s.pipeline_label,
                environment=s.environment, tenant=s.tenant, latency_ms=latency_ms, prediction=prediction,
                error=error, features=features,
                explanation=reference.explain(features) if reference and features and prediction is not None else None,
                input_drift=reference.drift(features) if reference and features else None)
        except Exception:  # noqa: BLE001 - a schema problem is a bug to fix, not a failed prediction
            log.exception("could not build the prediction event")
            return None
        if prediction is not None:
            with self._remember_lock:
                self._remembered[event["event_id"]] = prediction
                while len(self._remembered) > REMEMBERED_PREDICTIONS:
                    self._remembered.popitem(last=False)
        self.events.send(event)
        return str(event["event_id"])


def load_model(uri: str) -> Any:
    import mlflow.pyfunc  # here, so the module imports fast where no model is loaded (tests, --help)

    return mlflow.pyfunc.load_model(uri)


def make_handler(service: PredictionService) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "cd4ml-model-service"

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            routes = {"/healthz": service.health, "/version": service.version}
            route = routes.get(urlsplit(self.path).path)
            self._reply(*(route() if route else (404, {"error": f"no route GET {self.path}"})))

        def do_POST(self) -> None:  # noqa: N802
            path = urlsplit(self.path).path
            if path not in ("/predict", "/feedback"):
                self._reply(404, {"error": f"no route POST {self.path}"})
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if not 0 <= length <= MAX_BODY_BYTES:
                self.close_connection = True  # the unread body must not be parsed as the next request
                message = f"Content-Length must be a number up to {MAX_BODY_BYTES} bytes"
                status = 413 if length > 0 else 400
                self._reply(*(service.reject(status, message) if path == "/predict" else (status, {"error": message})))
                return
            body = self.rfile.read(length)
            self._reply(*(service.predict_json(body) if path == "/predict" else service.feedback_json(body)))

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
            log.debug("%s %s", self.address_string(), format % args)

    return Handler


def _load_in_background(service: PredictionService, server: ThreadingHTTPServer) -> None:
    """Serve /healthz (503) while the model downloads; a model that cannot load stops the pod."""
    started = time.monotonic()
    try:
        service.model = load_model(service.settings.model_uri)
    except Exception as error:  # noqa: BLE001 - reported, then the process exits non-zero
        service.load_error = f"{type(error).__name__}: {error}"
        log.error("cannot load %s: %s", service.settings.model_uri, service.load_error)
        server.shutdown()
        return
    log.info("loaded %s in %.1fs", service.settings.model_uri, time.monotonic() - started)


def main() -> int:
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.from_env()
    except ConfigError as error:
        log.error("%s", error)
        return 2
    events = make_event_log(settings)
    service = PredictionService(settings, events)
    server = ThreadingHTTPServer(("", settings.port), make_handler(service))
    server.daemon_threads = True
    # Kubernetes stops pods with SIGTERM; shut down cleanly so buffered events get a last send.
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    threading.Thread(target=_load_in_background, args=(service, server), daemon=True).start()
    log.info("listening on :%d; serving %s (%s) for pipeline %s in %s", settings.port, settings.model_uri,
             settings.model_version or "version unknown", settings.pipeline_label or "-", settings.environment)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        events.close()
    return 1 if service.load_error else 0


if __name__ == "__main__":
    sys.exit(main())
