"""Where each part of the platform lives: namespaces derived from the stack config."""

from __future__ import annotations

from dataclasses import dataclass

from infra.config import Exposure, StackConfig
from infra.platform.tenants import derive_tenants


@dataclass(frozen=True)
class Namespaces:
    gocd: str
    logging: str
    """Elasticsearch, Kibana and Fluentd: the log pipeline shares one namespace so ECK's secrets
    and the Fluentd credentials need no copying."""
    monitoring: str
    mlflow: str
    git: str
    """The git server (gitea) holding the ready model repositories."""
    eck_operator: str
    ingress: str
    """The ingress controller (exposure 'ingress')."""
    cert_manager: str
    apps: tuple[tuple[str, str], ...]
    """(environment, namespace) pairs the pipelines deploy model services into, every tenant's."""

    @classmethod
    def from_config(cls, config: StackConfig) -> Namespaces:
        prefix = config.namespace_prefix
        return cls(
            gocd=f"{prefix}-gocd",
            logging=f"{prefix}-logging",
            monitoring=f"{prefix}-monitoring",
            mlflow=f"{prefix}-mlflow",
            git=f"{prefix}-git",
            eck_operator=f"{prefix}-eck-operator",
            ingress=f"{prefix}-ingress",
            cert_manager=f"{prefix}-cert-manager",
            apps=tuple(pair for tenant in derive_tenants(config) for pair in tenant.environments),
        )

    def of_service(self, service: str) -> str:
        return {
            "gocd": self.gocd,
            "elasticsearch": self.logging,
            "kibana": self.logging,
            "fluentd": self.logging,
            "grafana": self.monitoring,
            "mlflow": self.mlflow,
            "gitea": self.git,
        }[service]

    def pod_security(self, namespace: str) -> tuple[str, str]:
        """(Pod Security admission level enforced, why not `restricted`) for a namespace the kit creates."""
        return {
            # gocd chart 2.18.0 renders the server pod with only runAsUser/runAsGroup/fsGroup: no key for
            # allowPrivilegeEscalation, dropped capabilities or seccomp, which `restricted` requires.
            self.gocd: ("baseline", "the gocd chart exposes no container securityContext for the server"),
            # Fluentd's DaemonSet reads container logs from the node through hostPath, which even
            # `baseline` forbids; ECK's Elasticsearch and Kibana pods share the namespace (and its secrets).
            self.logging: ("privileged", "Fluentd reads /var/log from the node (hostPath)"),
        }.get(namespace, ("restricted", ""))

    def in_use(self, config: StackConfig) -> tuple[str, ...]:
        """Namespaces the kit creates: those of enabled services, the operator's, and the apps'."""
        names = [self.of_service(s) for s in config.services]
        if config.enabled("elasticsearch"):
            names.append(self.eck_operator)
        if config.exposure is Exposure.INGRESS:
            names += [self.ingress, self.cert_manager]
        names += [ns for _, ns in self.apps]
        return tuple(dict.fromkeys(names))
