"""Every smoke check, in the order they are reported. Names are stable: users grep for them."""

from __future__ import annotations

from infra.smoke.checks import elasticsearch, fluentd, gocd, grafana, ingress, kibana, kubernetes, mlflow, workshop
from infra.smoke.core import Check

ALL_CHECKS: tuple[Check, ...] = (
    *gocd.CHECKS, *elasticsearch.CHECKS, *kibana.CHECKS, *grafana.CHECKS, *mlflow.CHECKS, *fluentd.CHECKS,
    *ingress.CHECKS, *kubernetes.CHECKS, *workshop.CHECKS,
)
