"""The Elasticsearch component: the ECK operator release, then users, roles and the Elasticsearch resource."""

from __future__ import annotations

from infra.components.base import ServiceComponent


class Elasticsearch(ServiceComponent):
    """Elasticsearch via ECK; outputs the HTTP URL and the admin Secret. Model: infra/platform/elasticsearch.py."""

    TYPE = "cd4ml:platform:Elasticsearch"
