"""Every setting of a platform stack, as fields of `StackConfig`: type, default, description (from
which Pulumi.yaml's `config:` block is generated) and the checks of each value on its own. Rules across
keys are in `rules`, reading the settings in from stack files, `--set` and the engine in `loading`."""

from __future__ import annotations

import difflib
import enum
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, field_validator

from infra.config.errors import PROJECT

CLUSTER_STACK_ENV = "CD4ML_CLUSTER_STACK"
KUBE_CONTEXT_ENV = "CD4ML_KUBE_CONTEXT"
"""The context `cd4ml up` deployed to when the stack file names none (the current one at the time)."""
KUBE_TARGET_OUTPUT = "kube"
"""The platform stack's output that records which cluster it runs on: {"context": ..., "clusterStack": ...}."""

SERVICE_NAMES = ("gocd", "elasticsearch", "kibana", "fluentd", "grafana", "mlflow", "gitea")


SERVICE_REQUIREMENTS: dict[str, tuple[str, ...]] = {
    "kibana": ("elasticsearch",),
    "fluentd": ("elasticsearch",),
    "grafana": ("elasticsearch",),
}
"""Services that cannot do their job without another: Kibana and Grafana read Elasticsearch,
Fluentd ships into it. GoCD, MLflow and Gitea stand alone (their agents' links are optional)."""

MAX_PARTICIPANTS = 100
RESERVED_TENANTS = ("cd4ml", "cd4ml-smoke", "cd4ml-admin", "cd4ml-gocd", "admin", "fluentd", "grafana")
"""Names taken by the single-team tenant, the smoke tests and the platform's own logins."""
_REGISTRY_HOST = r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?(:\d+)?"
"""A registry host, with an optional port (no scheme)."""
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_GIT_SSH = re.compile(r"^[\w.-]+@[\w.-]+:[\w./~-]+?(\.git)?$")


class Profile(str, enum.Enum):
    """How big the platform is: `laptop` fits an 8 GB kind/minikube, `cluster` a real cluster."""

    LAPTOP = "laptop"
    CLUSTER = "cluster"


class Exposure(str, enum.Enum):
    """How users reach the services from outside the cluster."""

    PORT_FORWARD = "port-forward"
    NODE_PORT = "node-port"
    INGRESS = "ingress"


class ClusterProvider(str, enum.Enum):
    """Where the cluster comes from: `existing` (the kube context, or a new local kind cluster when
    there is none), or a cloud cluster the kit creates as its own stack."""

    EXISTING = "existing"
    GKE = "gke"
    EKS = "eks"


class TlsIssuer(str, enum.Enum):
    LETSENCRYPT = "letsencrypt"
    LETSENCRYPT_STAGING = "letsencrypt-staging"
    SELF_SIGNED = "self-signed"


class StackConfig(BaseModel):
    """All settings of one platform stack. Field aliases are the Pulumi config keys."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    profile: Profile = Field(
        Profile.LAPTOP,
        description="Sizing profile: 'laptop' (whole platform requests <= 4 GiB, 2 CPUs) or 'cluster'.",
    )
    services: tuple[str, ...] = Field(
        SERVICE_NAMES,
        description="Services to run, any of: " + ", ".join(SERVICE_NAMES) + " (gitea is the in-cluster git server "
                    "holding each tenant's ready model repository; it stays empty when modelRepos are given).",
    )
    namespace_prefix: str = Field(
        PROJECT,
        alias="namespacePrefix",
        description="Prefix of every namespace the kit creates (<prefix>-gocd, <prefix>-logging, ...).",
    )
    app_environments: tuple[str, ...] = Field(
        ("staging", "production"),
        alias="appEnvironments",
        description="Environments the pipelines deploy model services into; each gets namespace <prefix>-<env>.",
    )
    exposure: Exposure = Field(
        Exposure.PORT_FORWARD,
        description="How services are reached from outside: 'port-forward' (ClusterIP only), 'node-port', or "
                    "'ingress' (cluster profile: one ingress controller, a host per service under `domain`, TLS).",
    )
    domain: str = Field(
        "",
        description="DNS domain the services are published under with exposure 'ingress': <service>.<domain>, "
                    "participants' model services at <participant>-<environment>.<domain>.",
    )
    acme_email: str = Field(
        "",
        alias="acmeEmail",
        description="Contact address for Let's Encrypt (cert-manager's ACME account); needed for tlsIssuer "
                    "letsencrypt and letsencrypt-staging.",
    )
    tls_issuer: TlsIssuer = Field(
        TlsIssuer.LETSENCRYPT,
        alias="tlsIssuer",
        description="Who signs the ingress certificates: 'letsencrypt', 'letsencrypt-staging' (rehearsals: "
                    "untrusted, far higher rate limits) or 'self-signed' (no DNS needed).",
    )
    cluster_provider: ClusterProvider = Field(
        ClusterProvider.EXISTING,
        alias="clusterProvider",
        description="'existing' (the kube context, or a local kind cluster), 'gke' or 'eks': `cd4ml up` creates "
                    "the cloud cluster as its own stack, sized for the participants.",
    )
    cloud_project: str = Field(
        "",
        alias="cloudProject",
        description="GCP project of a GKE cluster.",
    )
    cloud_region: str = Field(
        "",
        alias="cloudRegion",
        description="GKE zone (like europe-west1-b: one zonal cluster's control plane is free; a region would run "
                    "the nodes in each of its zones) or AWS region of an EKS cluster.",
    )
    machine_type: str = Field(
        "",
        alias="machineType",
        description="Node machine type (GKE: e2-standard-4/8/16; EKS: m6i.xlarge/2xlarge/4xlarge); empty = the "
                    "provider's default. Must be in the kit's price table (infra/platform/sizing.py).",
    )
    workshop_days: tuple[str, ...] = Field(
        (),
        alias="workshopDays",
        description="GKE: the workshop's days (YYYY-MM-DD, within 30 days of each other); GKE upgrades no part of "
                    "the cluster from the first day's start to the last day's end (UTC), though a cluster without "
                    "a release channel is otherwise upgraded when GKE decides.",
    )
    participants: int = Field(
        0,
        description="Workshop participants (0-100; 0 = a single-team platform). Each gets namespaces, an MLflow "
                    "experiment, a GoCD pipeline group and agents, a Fluentd tag and a login; named p01, p02, ...",
    )
    participant_names: tuple[str, ...] = Field(
        (),
        alias="participantNames",
        description="Names for the participants instead of p01, p02, ... (DNS labels, at most 20 characters); "
                    "sets the number of participants.",
    )
    model_repos: tuple[str, ...] = Field(
        (),
        alias="modelRepos",
        description="Git URLs of model repositories GoCD builds (https://, http://, ssh:// or git@host:path), for "
                    "teams that bring their own; empty with the gitea service on = the ready repositories the "
                    "in-cluster git server holds: one per participant, or one for a single team.",
    )
    cluster_stack: str = Field(
        "",
        alias="clusterStack",
        description="The cluster stack whose kubeconfig the platform deploys with (organization/cd4ml-cluster/"
                    "<stack>); `cd4ml up` sets it when it creates the local kind cluster. Empty = kubeContext.",
    )
    image_registry: str = Field(
        "",
        alias="imageRegistry",
        description="Registry (host[:port]/path) the kit's own images are pushed to and pulled from; empty = "
                    "built locally and loaded into the kind cluster.",
    )
    agent_image: str = Field(
        "",
        alias="agentImage",
        description="The image GoCD's elastic agents run instead of the kit's own ML agent (an older workshop's "
                    "Python stack, say): registry/repository:tag, pulled as given; README 'Your own agent image' "
                    "says what it must hold. Empty = the kit's gocd-agent-ml.",
    )
    registry_mirrors: tuple[str, ...] = Field(
        (),
        alias="registryMirrors",
        description="Pull every upstream image through a mirror: entries 'registry=mirror', e.g. "
                    "'docker.io=harbor.example.com/dockerhub' (the kit's own images use imageRegistry).",
    )
    storage_class: str = Field(
        "",
        alias="storageClass",
        description="StorageClass of every volume the platform claims; empty = the cluster default.",
    )
    elastic_stack_version: str = Field(
        "8.19.18",
        alias="elasticStackVersion",
        description="Elasticsearch and Kibana version (8.x; Fluentd's output plugin is built for ES 8).",
    )
    elasticsearch_nodes: int = Field(
        1,
        alias="elasticsearchNodes",
        description="Elasticsearch nodes (laptop profile: 1; cluster profile: 1-9, 3 recommended).",
    )
    log_retention_days: int = Field(
        7,
        alias="logRetentionDays",
        description="Days container logs and model events are kept before their daily indices are deleted (1-365).",
    )
    elasticsearch_storage_gi: int = Field(
        10,
        alias="elasticsearchStorageGi",
        description="Volume size of each Elasticsearch node, in GiB (1-1024).",
    )
    gocd_agents: int = Field(
        0,
        alias="gocdAgents",
        description="Static GoCD agents always running (0-20), registered as Pending until enabled in GoCD; "
                    "pipelines normally use the elastic agent profile, whose pods come on demand.",
    )
    gocd_storage_gi: int = Field(
        5,
        alias="gocdStorageGi",
        description="Volume size of the GoCD server's /godata, in GiB (1-1024).",
    )
    mlflow_storage_gi: int = Field(
        5,
        alias="mlflowStorageGi",
        description="Volume size of MLflow's backend store and artifacts, in GiB (1-1024).",
    )
    gitea_storage_gi: int = Field(
        2,
        alias="giteaStorageGi",
        description="Volume size of the git server's repositories and database, in GiB (1-1024).",
    )
    kube_context: str = Field(
        "",
        alias="kubeContext",
        description="kubeconfig context to deploy to; empty = the current context.",
    )
    charts_dir: str = Field(
        "",
        alias="chartsDir",
        description="A folder holding every pinned upstream chart (`cd4ml charts --pull DIR` fills it where there "
                    "is internet): each Helm release installs from there, not from its chart repository. Relative "
                    "to the kit's folder. Empty = the chart repositories.",
    )

    @field_validator("services")
    @classmethod
    def _known_services(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if name not in SERVICE_NAMES:
                raise ValueError(f"unknown service {name!r}{did_you_mean(name, SERVICE_NAMES)}; "
                                 f"allowed: {', '.join(SERVICE_NAMES)}")
        if len(set(value)) != len(value):
            raise ValueError("lists a service twice")
        return value

    @field_validator("namespace_prefix")
    @classmethod
    def _prefix_is_dns_label(cls, value: str) -> str:
        if not _DNS_LABEL.match(value) or len(value) > 40:
            raise ValueError("must be a DNS label (lowercase letters, digits, '-'; at most 40 characters)")
        return value

    @field_validator("app_environments")
    @classmethod
    def _environments_are_dns_labels(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not 1 <= len(value) <= 5:
            raise ValueError("must list 1 to 5 environments")
        for env in value:
            if not _DNS_LABEL.match(env) or len(env) > 20:
                raise ValueError(f"{env!r} is not a DNS label of at most 20 characters")
        if len(set(value)) != len(value):
            raise ValueError("lists an environment twice")
        return value

    @field_validator("participants")
    @classmethod
    def _participants_in_range(cls, value: int) -> int:
        return _in_range(value, 0, MAX_PARTICIPANTS)

    @field_validator("workshop_days", mode="before")
    @classmethod
    def _days_as_text(cls, value: Any) -> Any:
        """An unquoted 2026-12-08 in a YAML stack file arrives as a date."""
        return [str(day) for day in value] if isinstance(value, (list, tuple)) else value

    @field_validator("workshop_days")
    @classmethod
    def _workshop_days(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        import datetime

        try:
            days = sorted(datetime.date.fromisoformat(str(day)) for day in value)  # YAML may give dates
        except ValueError:
            raise ValueError("must be dates like 2026-12-08") from None
        if days and (days[-1] - days[0]).days >= 30:
            raise ValueError("spans 30 days or more: GKE keeps a cluster without a release channel from upgrades "
                             "for at most 30 days")
        return tuple(day.isoformat() for day in days)

    @field_validator("participant_names")
    @classmethod
    def _participant_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(value) > MAX_PARTICIPANTS:
            raise ValueError(f"lists {len(value)} names; at most {MAX_PARTICIPANTS}")
        for name in value:
            if not _DNS_LABEL.match(name) or len(name) > 20:
                raise ValueError(f"{name!r} is not a DNS label of at most 20 characters (it names namespaces)")
            if name in RESERVED_TENANTS:
                raise ValueError(f"{name!r} is reserved (names in use: {', '.join(RESERVED_TENANTS)})")
        if len(set(value)) != len(value):
            raise ValueError("lists a name twice")
        for name in value:
            # A participant's events are read through the index pattern cd4ml-events-<name>-*, which
            # would also match another's whose name starts with "<name>-".
            if clash := next((other for other in value if other.startswith(f"{name}-")), None):
                raise ValueError(f"{name!r} and {clash!r}: a name may not be another's followed by '-' "
                                 f"(the index pattern of {name!r}'s events would match {clash!r}'s)")
        return value

    @field_validator("model_repos")
    @classmethod
    def _repos_are_git_urls(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for url in value:
            if _GIT_SSH.match(url):
                continue
            parsed = urlparse(url)
            if parsed.scheme not in ("https", "http", "ssh", "git") or not parsed.netloc or not parsed.path.strip("/"):
                raise ValueError(f"{url!r} is not a git URL (https://host/owner/repo.git, ssh://..., git@host:path)")
        return value

    @field_validator("cluster_stack")
    @classmethod
    def _stack_reference(cls, value: str) -> str:
        if value and not re.fullmatch(r"[\w.-]+/[\w.-]+/[\w.-]+", value):
            raise ValueError("must be empty or a fully qualified stack name: organization/<project>/<stack>")
        return value

    @field_validator("image_registry")
    @classmethod
    def _registry_reference(cls, value: str) -> str:
        if value and not re.fullmatch(_REGISTRY_HOST + r"(/[a-z0-9]([-a-z0-9._]*[a-z0-9])?)*", value):
            raise ValueError("must be empty or a registry like registry.example.com:5000/team (no scheme, no tag)")
        return value

    @field_validator("agent_image")
    @classmethod
    def _image_reference(cls, value: str) -> str:
        if value and not re.fullmatch(_REGISTRY_HOST + r"(/[a-z0-9]([-a-z0-9._]*[a-z0-9])?)+:[\w][\w.-]{0,127}", value):
            raise ValueError("must be empty or registry/repository:tag, e.g. registry.example.com/team/agent:2024.1 "
                             "(with the registry host; a tag, not a digest)")
        if value.endswith(":latest"):
            raise ValueError("must name a fixed tag, not :latest (every image the platform runs is pinned)")
        return value

    @field_validator("registry_mirrors")
    @classmethod
    def _mirrors(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            upstream, _, mirror = entry.partition("=")
            if not re.fullmatch(_REGISTRY_HOST, upstream) or not re.fullmatch(_REGISTRY_HOST + r"(/[-a-z0-9._/]+)?",
                                                                             mirror):
                raise ValueError(f"{entry!r} is not 'registry=mirror' (e.g. docker.io=harbor.example.com/dockerhub)")
        if len({e.partition("=")[0] for e in value}) != len(value):
            raise ValueError("names a registry twice")
        return value

    @field_validator("storage_class")
    @classmethod
    def _storage_class_name(cls, value: str) -> str:
        if value and not re.match(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", value):
            raise ValueError("must be empty or a StorageClass name (lowercase DNS subdomain)")
        return value

    @field_validator("domain")
    @classmethod
    def _domain_name(cls, value: str) -> str:
        labels = value.split(".")
        if value and (len(labels) < 2 or len(value) > 200 or not all(_DNS_LABEL.match(label) for label in labels)):
            raise ValueError("must be empty or a DNS name like workshop.example.com (lowercase, no scheme)")
        return value

    @field_validator("acme_email")
    @classmethod
    def _email(cls, value: str) -> str:
        if value and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
            raise ValueError("must be an e-mail address")
        return value

    @field_validator("elastic_stack_version")
    @classmethod
    def _elastic_8(cls, value: str) -> str:
        if not re.match(r"^8\.\d+\.\d+$", value):
            raise ValueError("must be an Elasticsearch 8 version like 8.19.18")
        return value

    @field_validator("elasticsearch_nodes")
    @classmethod
    def _es_nodes(cls, value: int) -> int:
        return _in_range(value, 1, 9)

    @field_validator("gocd_agents")
    @classmethod
    def _agents(cls, value: int) -> int:
        return _in_range(value, 0, 20)

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        return _in_range(value, 1, 365)

    @field_validator("elasticsearch_storage_gi", "gocd_storage_gi", "mlflow_storage_gi", "gitea_storage_gi")
    @classmethod
    def _volume_size(cls, value: int) -> int:
        return _in_range(value, 1, 1024)

    @property
    def mirrors(self) -> dict[str, str]:
        return dict(entry.split("=", 1) for entry in self.registry_mirrors)

    @property
    def participant_list(self) -> tuple[str, ...]:
        """Workshop participants by name, in order; empty for a single-team platform."""
        if self.participant_names:
            return self.participant_names
        width = max(2, len(str(self.participants)))
        return tuple(f"p{i:0{width}d}" for i in range(1, self.participants + 1))

    def enabled(self, service: str) -> bool:
        return service in self.services


def _in_range(value: int, low: int, high: int) -> int:
    if not low <= value <= high:
        raise ValueError(f"must be an integer from {low} to {high}")
    return value


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def key_of(field_name: str) -> str:
    field = StackConfig.model_fields[field_name]
    return field.alias or field_name


CONFIG_KEYS: tuple[str, ...] = tuple(key_of(name) for name in StackConfig.model_fields)
