"""The Kibana component: the ECK Kibana resource joined to Elasticsearch."""

from __future__ import annotations

from infra.components.base import ServiceComponent


class Kibana(ServiceComponent):
    """Kibana via ECK; created after Elasticsearch. Model: infra/platform/kibana.py."""

    TYPE = "cd4ml:platform:Kibana"
