"""Every smoke check, in the order they are reported. Names are stable: users grep for them."""

from __future__ import annotations

from infra.smoke.checks import (
    elasticsearch,
    fluentd,
    gitea,
    gocd,
    grafana,
    ingress,
    kibana,
    kubernetes,
    mlflow,
    workshop,
)
from infra.smoke.core import Check

ALL_CHECKS: tuple[Check, ...] = (
    *gocd.CHECKS, *elasticsearch.CHECKS, *kibana.CHECKS, *grafana.CHECKS, *mlflow.CHECKS, *gitea.CHECKS,
    *fluentd.CHECKS, *ingress.CHECKS, *kubernetes.CHECKS, *workshop.CHECKS,
)
