"""The ingress component: Traefik, cert-manager, the ClusterIssuer and every Ingress (exposure 'ingress')."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from infra.components.base import ServiceComponent
from infra.platform.ingress import TRAEFIK_RELEASE, IngressSettings
from infra.platform.model import Service


class Ingress(ServiceComponent):
    """The one LoadBalancer and the certificates; outputs the controller's public address, which the
    wildcard DNS record must point at. Model: infra/platform/ingress.py."""

    TYPE = "cd4ml:platform:Ingress"

    address: pulumi.Output[str]
    domain: pulumi.Output[str]

    def add_resources(self, name: str, service: Service) -> None:
        # The chart names the Service after the release (tests/test_upstream_charts.py checks it). The id
        # comes from the release's status, so a preview before the release exists reads nothing.
        release = self.releases[TRAEFIK_RELEASE]
        controller = k8s.core.v1.Service.get(
            f"{name}-controller-service", release.status.apply(lambda status: f"{status.namespace}/{status.name}"),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[release]))
        self.address = controller.status.apply(load_balancer_address)
        assert isinstance(service.settings, IngressSettings)
        self.domain = pulumi.Output.from_input(service.settings.domain)

    def outputs(self) -> dict[str, Any]:
        return {**super().outputs(), "address": self.address, "domain": self.domain}


def load_balancer_address(status: Any) -> str:
    """The IP (GKE) or host name (EKS) the cloud gave the controller's LoadBalancer; "" until it has."""
    ingress = ((status or {}).get("load_balancer") or (status or {}).get("loadBalancer") or {}).get("ingress") or []
    first = ingress[0] if ingress else {}
    return first.get("ip") or first.get("hostname") or ""
