"""The ingress component: Traefik, cert-manager, the ClusterIssuer and every Ingress (exposure 'ingress')."""

from __future__ import annotations

from infra.components.base import ServiceComponent


class Ingress(ServiceComponent):
    """The one LoadBalancer and the certificates. Model: infra/platform/ingress.py."""

    TYPE = "cd4ml:platform:Ingress"
