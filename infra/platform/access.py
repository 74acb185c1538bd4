"""How people reach the services from their browser: through `kubectl port-forward` to a fixed
local port per service (the README's commands, dashboard links, handouts). One table, so a link
never points at a port nobody forwards."""

from __future__ import annotations

from infra.config import Exposure, StackConfig
from infra.platform.hosts import public_url
from infra.platform.model import Endpoint

LOCAL_PORTS = {"gocd": 8153, "elasticsearch": 9200, "kibana": 5601, "grafana": 3000, "mlflow": 5000, "gitea": 3030}
NODE_PORT_SERVICES = ("gocd", "grafana", "mlflow", "gitea")
"""What `exposure: node-port` puts on a node's port (each authenticates every request)."""


def service_type(service: str, exposure: Exposure) -> str:
    return "NodePort" if exposure is Exposure.NODE_PORT and service in NODE_PORT_SERVICES else "ClusterIP"


def browser_url(service: str, endpoint: Endpoint) -> str:
    return f"http://localhost:{LOCAL_PORTS[service]}{endpoint.path}"


def user_url(config: StackConfig, service: str, endpoint: Endpoint) -> str:
    """What links and handouts point at: the published URL with exposure 'ingress', else the port-forward."""
    return public_url(config, service, endpoint.path) or browser_url(service, endpoint)


def port_forward_command(service: str, endpoint: Endpoint) -> str:
    return (f"kubectl -n {endpoint.namespace} port-forward svc/{endpoint.service} "
            f"{LOCAL_PORTS[service]}:{endpoint.port}")
