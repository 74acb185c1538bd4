"""The network policies component: default-deny per namespace, one allow rule per wiring edge."""

from __future__ import annotations

from infra.components.base import ServiceComponent


class NetworkPolicies(ServiceComponent):
    """Every NetworkPolicy of the platform. Model: infra/platform/network.py."""

    TYPE = "cd4ml:platform:NetworkPolicies"
