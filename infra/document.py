"""`platform.json`: the desired platform as one typed document — services, wiring, tenants, where
the published services live, images, requests. Written by `cd4ml plan` and exported by the Pulumi
program; the smoke checks, the handouts and the CLI read it through these types, never as raw keys.

Its JSON shape is the public one (`from`/`to` for an edge's ends); `to_json` and `from_json` are the
only places that know it. No secret is in it: only the names of the Secrets that hold them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import TypeAdapter

from infra import events
from infra.events import DEFAULT_TENANT
from infra.platform.elasticsearch import ElasticsearchSettings
from infra.platform.gitea import GiteaSettings
from infra.platform.gocd import GoCDSettings
from infra.platform.grafana import GrafanaSettings
from infra.platform.ingress import NAME as INGRESS
from infra.platform.ingress import IngressSettings, PublishedModel
from infra.platform.kibana import KibanaSettings
from infra.platform.mlflow import MLflowSettings
from infra.platform.model import Platform, ServiceSettings, WiringEdge
from infra.platform.network import NAME as NETWORK
from infra.platform.tenants import DEFAULT_AGENTS_NODE, DEFAULT_SERVICE_ACCOUNT, Tenant
from infra.platform.variables import client_variables

SETTINGS: dict[str, type[ServiceSettings]] = {
    "gocd": GoCDSettings, "elasticsearch": ElasticsearchSettings, "kibana": KibanaSettings,
    "grafana": GrafanaSettings, "mlflow": MLflowSettings, "gitea": GiteaSettings,
}
"""Each service's settings type (a service without one, Fluentd, has none)."""
S = TypeVar("S", bound=ServiceSettings)


@dataclass(frozen=True)
class ServiceEntry:
    name: str
    namespace: str
    url: str | None
    """In-cluster URL (None for a service nobody connects to)."""
    public_url: str | None
    service: str | None
    """The Kubernetes Service in front of it."""
    port: int | None
    credentials_secret: str | None
    """`namespace/name` of its login Secret."""
    credentials_keys: dict[str, str] | None
    """{"username": key, "password": key} in that Secret."""
    releases: tuple[str, ...]
    """`chart@version` of each Helm release."""
    settings: ServiceSettings | None


@dataclass(frozen=True)
class EdgeEntry:
    """A wiring edge as the document shows it: JSON `from`/`to` are `consumer`/`provider` here."""

    consumer: str
    consumer_namespace: str
    consumer_pods: dict[str, str] | None
    """Labels of the consumer's pods; {} every pod of the namespace; None no pods."""
    provider: str
    provider_namespace: str
    provider_pods: dict[str, str] | None
    kind: str
    url: str | None
    port: int | None
    pod_port: int | None
    credentials_secret: str | None
    delivered_by: str
    variables: dict[str, str]
    """What the consumer is handed by value to reach the provider (MLFLOW_TRACKING_URI, FLUENTD_HOST...)."""

    _JSON_NAMES = {"consumer": "from", "consumer_namespace": "from_namespace", "consumer_pods": "from_pods",
                   "provider": "to", "provider_namespace": "to_namespace", "provider_pods": "to_pods"}

    @classmethod
    def of(cls, edge: WiringEdge) -> EdgeEntry:
        endpoint = edge.endpoint
        return cls(consumer=edge.consumer.id, consumer_namespace=edge.consumer.namespace,
                   consumer_pods=dict(edge.consumer.pods) if edge.consumer.pods is not None else None,
                   provider=edge.provider.id, provider_namespace=edge.provider.namespace,
                   provider_pods=dict(edge.provider.pods) if edge.provider.pods is not None else None,
                   kind=edge.kind, url=edge.url, port=endpoint.port if endpoint else None,
                   pod_port=endpoint.pod_port if endpoint else None,
                   credentials_secret=edge.credentials.qualified_name if edge.credentials else None,
                   delivered_by=edge.delivered_by,
                   variables=client_variables({edge.provider.id: endpoint})
                   if edge.kind == "connect" and endpoint else {})

    def to_json(self) -> dict[str, Any]:
        return {self._JSON_NAMES.get(f.name, f.name): getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EdgeEntry:
        names = {json_name: name for name, json_name in cls._JSON_NAMES.items()}
        return cls(**{names.get(key, key): value for key, value in data.items()})


@dataclass(frozen=True)
class TenantEntry:
    """One participant (or the single team): everything their handout and the smoke checks need, no secret."""

    name: str
    namespaces: dict[str, str]
    """Environment -> namespace."""
    model_urls: dict[str, str]
    login: str | None
    password_id: str | None
    mlflow_experiment: str
    gocd_pipeline_group: str
    gocd_elastic_profile: str
    agents_node: str
    service_account: str
    fluentd_tag: str
    index_pattern: str
    gocd_environment: str | None = None
    """The GoCD environment a participant's pipelines join (none for a single team)."""
    pipeline_prefix: str = ""

    @classmethod
    def of(cls, tenant: Tenant) -> TenantEntry:
        return cls(name=tenant.name, namespaces=dict(tenant.environments), model_urls=tenant.model_urls,
                   login=tenant.login, password_id=tenant.password.id if tenant.password else None,
                   mlflow_experiment=tenant.experiment, gocd_pipeline_group=tenant.pipeline_group,
                   gocd_elastic_profile=tenant.elastic_profile, agents_node=tenant.agents_node,
                   service_account=tenant.service_account, fluentd_tag=tenant.tag,
                   index_pattern=events.index_pattern(tenant.name), gocd_environment=tenant.gocd_environment,
                   pipeline_prefix=tenant.pipeline_prefix)


@dataclass(frozen=True)
class SampleTenant:
    """Whose agents and namespaces the probe checks use: the first participant, or the single team
    (`name` None: its wiring nodes carry no tenant name)."""

    name: str | None
    agents_node: str
    service_account: str
    mlflow_experiment: str
    gocd_environment: str | None = None
    pipeline_prefix: str = ""


@dataclass(frozen=True)
class IngressEntry:
    """Where the published services live (exposure 'ingress'): what the `ingress.*` smoke checks and a
    facilitator's DNS record need."""

    namespace: str
    controller_service: str
    domain: str
    issuer: str
    hosts: tuple[str, ...]
    certificates: dict[str, tuple[str, ...]]
    model_services: dict[str, dict[str, PublishedModel]]


@dataclass(frozen=True)
class PlatformDocument:
    stack: str
    profile: str
    namespaces: tuple[str, ...]
    services: tuple[ServiceEntry, ...]
    wiring: tuple[EdgeEntry, ...]
    ingress: IngressEntry | None
    images: tuple[str, ...]
    requests: dict[str, int]
    tenants: tuple[TenantEntry, ...]
    """Workshop participants; empty for a single team."""
    network_policies: dict[str, tuple[str, ...]]
    """Namespace -> the NetworkPolicies the wiring graph gives it."""
    pod_security: dict[str, str]
    """Namespace -> the Pod Security level enforced."""

    @classmethod
    def of(cls, platform: Platform) -> PlatformDocument:
        return cls(
            stack=platform.stack, profile=platform.profile, namespaces=tuple(platform.namespaces),
            services=tuple(ServiceEntry(
                name=s.name, namespace=s.namespace, url=s.endpoint.url if s.endpoint else None,
                public_url=s.public_url, service=s.endpoint.service if s.endpoint else None,
                port=s.endpoint.port if s.endpoint else None,
                credentials_secret=s.credentials.qualified_name if s.credentials else None,
                credentials_keys={"username": s.credentials.username_key, "password": s.credentials.password_key}
                if s.credentials else None,
                releases=tuple(f"{r.chart}@{r.version}" for r in s.releases), settings=s.settings)
                for s in platform.services.values()),
            wiring=tuple(EdgeEntry.of(edge) for edge in platform.wiring),
            ingress=_ingress_entry(platform),
            images=tuple(platform.images), requests=platform.requests,
            tenants=tuple(TenantEntry.of(t) for t in platform.tenants),
            network_policies=_network_policies(platform),
            pod_security={namespace: level for namespace, (level, _why) in platform.pod_security.items()})

    def to_json(self) -> dict[str, Any]:
        document = dataclasses.asdict(self)
        document["wiring"] = [edge.to_json() for edge in self.wiring]
        for entry in document["services"]:
            entry["settings"] = entry["settings"] or {}
        as_json: dict[str, Any] = _lists(document)
        return as_json

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PlatformDocument:
        """The document back from platform.json (or the stack's `platform` output)."""
        services = []
        for entry in data["services"]:
            kind = SETTINGS.get(entry["name"])
            settings = TypeAdapter(kind).validate_python(entry["settings"]) if kind and entry["settings"] else None
            services.append(TypeAdapter(ServiceEntry).validate_python({**entry, "settings": None}))
            services[-1] = dataclasses.replace(services[-1], settings=settings)
        fields = {**data, "services": (), "wiring": ()}
        document = TypeAdapter(PlatformDocument).validate_python(fields)
        return dataclasses.replace(document, services=tuple(services),
                                   wiring=tuple(EdgeEntry.from_json(edge) for edge in data["wiring"]))

    def service(self, name: str) -> ServiceEntry | None:
        return next((s for s in self.services if s.name == name), None)

    def settings(self, kind: type[S]) -> S:
        """The settings of the service whose settings are of `kind` (GoCDSettings...)."""
        found = next((s.settings for s in self.services if isinstance(s.settings, kind)), None)
        if found is None:
            raise LookupError(f"no service with {kind.__name__} in this platform")
        return found

    def edge(self, consumer: str, provider: str) -> EdgeEntry | None:
        return next((e for e in self.wiring if e.consumer == consumer and e.provider == provider), None)

    @property
    def sample_tenant(self) -> SampleTenant:
        """The first participant in workshop mode (probing 100 participants' namespaces would take longer
        than the workshop's break), else the single team."""
        if self.tenants:
            first = self.tenants[0]
            return SampleTenant(first.name, first.agents_node, first.service_account, first.mlflow_experiment,
                                first.gocd_environment, first.pipeline_prefix)
        return SampleTenant(None, DEFAULT_AGENTS_NODE, DEFAULT_SERVICE_ACCOUNT, DEFAULT_TENANT)

    def app_edges(self, provider: str) -> list[EdgeEntry]:
        """The sample tenant's model-service edges to `provider`, one per environment."""
        name = self.sample_tenant.name
        prefix = f"app:{name}:" if name else "app:"
        return [e for e in self.wiring if e.provider == provider and e.consumer.startswith(prefix)
                and (name or e.consumer.count(":") == 1)]


def _network_policies(platform: Platform) -> dict[str, tuple[str, ...]]:
    found: dict[str, list[str]] = {}
    for stage in platform.extra(NETWORK).stages:
        for manifest in stage.objects:
            if manifest.get("kind") == "NetworkPolicy":
                found.setdefault(manifest["metadata"]["namespace"], []).append(manifest["metadata"]["name"])
    return {namespace: tuple(sorted(names)) for namespace, names in sorted(found.items())}


def _ingress_entry(platform: Platform) -> IngressEntry | None:
    part = platform.optional_extra(INGRESS)
    if part is None:
        return None
    settings = part.settings
    assert isinstance(settings, IngressSettings)
    return IngressEntry(namespace=part.namespace, controller_service=settings.load_balancer_release,
                        domain=settings.domain, issuer=settings.issuer, hosts=settings.hosts,
                        certificates=settings.certificates, model_services=settings.model_services)


def _lists(value: Any) -> Any:
    """Tuples as lists, so the dict equals what JSON gives back."""
    if isinstance(value, dict):
        return {key: _lists(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_lists(item) for item in value]
    return value
