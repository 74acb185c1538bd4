"""The MLflow component: the data volume, then the tracking server (community-charts/mlflow)."""

from __future__ import annotations

from infra.components.base import ServiceComponent


class MLflow(ServiceComponent):
    """MLflow tracking server; outputs the tracking URI. Model: infra/platform/mlflow.py."""

    TYPE = "cd4ml:platform:MLflow"
