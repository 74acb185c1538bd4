"""What a client of the platform is told, as environment variables: the one mapping from a wiring
edge's endpoint to MLFLOW_TRACKING_URI (the MLflow client's own variable), FLUENTD_HOST and
FLUENTD_PORT, and from a tenant to the names its code runs under. The agents' pods
(infra/platform/gocd.py), the model services' `platform-endpoints` ConfigMap (infra/platform/apps.py)
and the smoke probes all take them from here. The CD4ML workshop's own code reads other names for the
same things (ThoughtWorksInc/cd4ml-workshop `src/tracking.py` l.4-5, 12-13: MLFLOW_TRACKING_URL, and
TENANT as the experiment's name): they are given too, so that code runs unchanged."""

from __future__ import annotations

from collections.abc import Mapping

from infra.platform.model import Endpoint
from infra.platform.tenants import Tenant

MLFLOW_TRACKING_URI = "MLFLOW_TRACKING_URI"
MLFLOW_TRACKING_USERNAME = "MLFLOW_TRACKING_USERNAME"
MLFLOW_TRACKING_PASSWORD = "MLFLOW_TRACKING_PASSWORD"
"""The MLflow client reads its login from these two variables only."""
MLFLOW_TRACKING_URL = "MLFLOW_TRACKING_URL"
"""The CD4ML workshop's name for MLFLOW_TRACKING_URI."""
FLUENTD_HOST = "FLUENTD_HOST"
FLUENTD_PORT = "FLUENTD_PORT"
CD4ML_TENANT = "CD4ML_TENANT"
MLFLOW_EXPERIMENT_NAME = "MLFLOW_EXPERIMENT_NAME"
"""MLflow's own variable: `mlflow.start_run()` without an experiment runs in this one."""
TENANT = "TENANT"
"""The CD4ML workshop's experiment name (`mlflow.set_experiment(TENANT)`)."""
CD4ML_MODEL_PREFIX = "CD4ML_MODEL_PREFIX"
"""What a tenant's registered model names start with: MLflow's registry is shared, and a name another
participant registered first is theirs (the creator manages it)."""


def client_variables(endpoints: Mapping[str, Endpoint]) -> dict[str, str]:
    """provider id -> endpoint, to the variables that lead there (a provider switched off gives none)."""
    variables = {}
    if "mlflow" in endpoints:
        variables[MLFLOW_TRACKING_URI] = variables[MLFLOW_TRACKING_URL] = endpoints["mlflow"].url
    if "fluentd" in endpoints:
        variables[FLUENTD_HOST] = endpoints["fluentd"].host
        variables[FLUENTD_PORT] = str(endpoints["fluentd"].port)
    return variables


def tenant_variables(tenant: Tenant) -> dict[str, str]:
    """The names a tenant's code runs under: its own experiment, its model names' prefix."""
    return {CD4ML_TENANT: tenant.name, MLFLOW_EXPERIMENT_NAME: tenant.experiment, TENANT: tenant.experiment,
            CD4ML_MODEL_PREFIX: f"{tenant.name}-"}
