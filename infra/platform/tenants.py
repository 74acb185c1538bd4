"""Who uses the platform: one tenant for a single team, or one per workshop participant.

A tenant owns its application namespaces (staging, production, ...), a GoCD agent profile whose
pods run as its own ServiceAccount (deploy rights in its namespaces only), a GoCD pipeline group,
an MLflow experiment, and a Fluentd tag (`<tenant>.prediction`) whose events land in its own
indices. Participants also get one login (GoCD, Kibana, Grafana and MLflow) with a generated
password. Every other module reads these names from here.
"""

from __future__ import annotations

from dataclasses import dataclass

from infra import events
from infra.config import StackConfig
from infra.platform import hosts
from infra.platform.model import GeneratedPassword

DEFAULT_AGENTS_NODE = "gocd-agents"
DEFAULT_SERVICE_ACCOUNT = "gocd-agent"
DEFAULT_PROFILE = "cd4ml-ml"


@dataclass(frozen=True)
class Tenant:
    name: str
    participant: bool
    environments: tuple[tuple[str, str], ...]
    """(environment, namespace) pairs this tenant's pipelines deploy into."""
    public_hosts: tuple[tuple[str, str], ...] = ()
    """(environment, host) where the model service is published (exposure 'ingress'); else empty."""

    @property
    def agents_node(self) -> str:
        """Wiring-graph id of this tenant's GoCD agents."""
        return f"{DEFAULT_AGENTS_NODE}:{self.name}" if self.participant else DEFAULT_AGENTS_NODE

    @property
    def service_account(self) -> str:
        return f"{DEFAULT_SERVICE_ACCOUNT}-{self.name}" if self.participant else DEFAULT_SERVICE_ACCOUNT

    @property
    def elastic_profile(self) -> str:
        return f"{DEFAULT_PROFILE}-{self.name}" if self.participant else DEFAULT_PROFILE

    @property
    def pipeline_group(self) -> str:
        return self.name

    @property
    def gocd_environment(self) -> str | None:
        """The GoCD environment a participant's pipelines join (their config repository may refer to no
        other): its name is on every elastic agent pod those pipelines' jobs start."""
        return self.name if self.participant else None

    @property
    def pipeline_prefix(self) -> str:
        """How a participant's pipeline names begin, so no two participants' names collide."""
        return f"{self.name}-" if self.participant else ""

    @property
    def experiment(self) -> str:
        return self.name

    @property
    def tag(self) -> str:
        return events.tag(self.name)

    @property
    def login(self) -> str | None:
        """GoCD, Kibana, Grafana and MLflow user name (participants only; a single team uses the admins)."""
        return self.name if self.participant else None

    @property
    def password(self) -> GeneratedPassword | None:
        return GeneratedPassword(f"participant-{self.name}", length=20) if self.participant else None

    @property
    def pipeline_login(self) -> str:
        """Who the tenant's pipelines and model services are to MLflow: the participant (so what
        their pipelines log is theirs in the UI), or the single team's pipelines user."""
        return self.login or "cd4ml-pipelines"

    @property
    def pipeline_password(self) -> GeneratedPassword:
        return self.password or GeneratedPassword("cd4ml-pipelines")

    @property
    def model_urls(self) -> dict[str, str]:
        """Environment -> where the model service is published (exposure 'ingress')."""
        return {env: f"https://{host}" for env, host in self.public_hosts}

    def app_node(self, env: str) -> str:
        """Wiring-graph id of this tenant's model service in one environment."""
        return f"app:{self.name}:{env}" if self.participant else f"app:{env}"


def derive_tenants(config: StackConfig) -> tuple[Tenant, ...]:
    prefix, envs = config.namespace_prefix, config.app_environments

    def public_hosts(name: str | None) -> tuple[tuple[str, str], ...]:
        return tuple((env, hosts.app_host(config, name, env)) for env in envs) if hosts.published(config) else ()

    if not config.participant_list:
        team = tuple((env, f"{prefix}-{env}") for env in envs)
        return (Tenant(events.DEFAULT_TENANT, False, team, public_hosts(None)),)
    return tuple(Tenant(name, True, tuple((env, f"{prefix}-{name}-{env}") for env in envs), public_hosts(name))
                 for name in config.participant_list)
