"""The Fluentd component: the fluent/fluentd DaemonSet with its Elasticsearch output and forward input."""

from __future__ import annotations

from infra.components.base import ServiceComponent


class Fluentd(ServiceComponent):
    """Fluentd; outputs the forward endpoint (tcp://…:24224). Model: infra/platform/fluentd.py."""

    TYPE = "cd4ml:platform:Fluentd"
