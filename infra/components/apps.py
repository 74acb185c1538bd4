"""The application environments component: the kit's app-environments chart, rendered by Helm."""

from __future__ import annotations

from infra.components.base import ServiceComponent


class AppEnvironments(ServiceComponent):
    """Deploy rights, endpoints ConfigMap and quota per environment. Model: infra/platform/apps.py."""

    TYPE = "cd4ml:platform:AppEnvironments"
