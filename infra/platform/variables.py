"""What a client of the platform is told, as environment variables: the one mapping from a wiring
edge's endpoint to MLFLOW_TRACKING_URI (the MLflow client's own variable), FLUENTD_HOST and
FLUENTD_PORT. The agents' pods (infra/platform/gocd.py), the model services' `platform-endpoints`
ConfigMap (infra/platform/apps.py) and the smoke probes all take them from here."""

from __future__ import annotations

from collections.abc import Mapping

from infra.platform.model import Endpoint

MLFLOW_TRACKING_URI = "MLFLOW_TRACKING_URI"
MLFLOW_TRACKING_USERNAME = "MLFLOW_TRACKING_USERNAME"
MLFLOW_TRACKING_PASSWORD = "MLFLOW_TRACKING_PASSWORD"
"""The MLflow client reads its login from these two variables only."""
FLUENTD_HOST = "FLUENTD_HOST"
FLUENTD_PORT = "FLUENTD_PORT"


def client_variables(endpoints: Mapping[str, Endpoint]) -> dict[str, str]:
    """provider id -> endpoint, to the variables that lead there (a provider switched off gives none)."""
    variables = {}
    if "mlflow" in endpoints:
        variables[MLFLOW_TRACKING_URI] = endpoints["mlflow"].url
    if "fluentd" in endpoints:
        variables[FLUENTD_HOST] = endpoints["fluentd"].host
        variables[FLUENTD_PORT] = str(endpoints["fluentd"].port)
    return variables
