"""The Grafana component: admin Secret and the grafana chart with Elasticsearch datasources."""

from __future__ import annotations

from infra.components.base import ServiceComponent


class Grafana(ServiceComponent):
    """Grafana; outputs its URL and admin Secret. Model: infra/platform/grafana.py."""

    TYPE = "cd4ml:platform:Grafana"
