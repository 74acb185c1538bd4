"""Public host names (exposure 'ingress'): `<service>.<domain>` for the services people open,
`<participant>-<environment>.<domain>` (or `<environment>.<domain>`) for model services. The one place
they are formed; the ingress part, the services that must know their public URL (MLflow's allowed
hosts, Grafana's root URL, Kibana's base URL), the wiring graph, the tenants and the handouts read them."""

from __future__ import annotations

from infra.config import Exposure, StackConfig

PUBLIC_SERVICES = ("gocd", "kibana", "grafana", "mlflow", "gitea")
"""Published under the domain; Elasticsearch and Fluentd stay in-cluster."""


def published(config: StackConfig) -> bool:
    """Whether the stack publishes anything (exposure 'ingress')."""
    return config.exposure is Exposure.INGRESS


def host(config: StackConfig, name: str) -> str:
    return f"{name}.{config.domain}"


def public_url(config: StackConfig, service: str, path: str = "") -> str | None:
    """What people open in their browser, when the stack publishes the service; else None."""
    if not published(config) or service not in PUBLIC_SERVICES:
        return None
    return f"https://{host(config, service)}{path}"


def app_host(config: StackConfig, tenant_name: str | None, env: str) -> str:
    return host(config, f"{tenant_name}-{env}" if tenant_name else env)
