"""The vocabulary of the platform model: plain, frozen data, no Pulumi and no I/O.

Every layer — the Pulumi components, `cd4ml plan`, the static checks and the smoke tests —
reads these objects; none of them re-derives a host name, port or secret name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # tenants.py builds on this vocabulary; the model only names its type
    from infra.platform.tenants import Tenant

CLUSTER_DOMAIN = "svc.cluster.local"
PART_OF = {"app.kubernetes.io/part-of": "cd4ml", "app.kubernetes.io/managed-by": "cd4ml"}
"""Labels on every object the kit declares itself, so they can be found and cleaned up."""


def await_annotations(jsonpath_condition: str, timeout_seconds: int) -> dict[str, str]:
    """Makes the Kubernetes provider poll a custom resource until the condition holds, against a
    deadline (pulumi-kubernetes `pulumi.com/waitFor`); without it a CR counts as ready when created."""
    return {"pulumi.com/waitFor": f"jsonpath={jsonpath_condition}", "pulumi.com/timeoutSeconds": str(timeout_seconds)}


@dataclass(frozen=True)
class Image:
    """A container image, always pinned to a tag."""

    repository: str
    tag: str
    registry: str = "docker.io"

    @property
    def ref(self) -> str:
        return f"{self.registry}/{self.repository}:{self.tag}"

    @property
    def name(self) -> str:
        """registry/repository, without the tag (what charts call the image's repository)."""
        return f"{self.registry}/{self.repository}"

    @classmethod
    def from_ref(cls, ref: str) -> Image:
        """`registry/repository:tag` (as infra/config/model.py validates `agentImage`) as an Image."""
        name, _, tag = ref.rpartition(":")
        registry, _, repository = name.partition("/")
        return cls(repository=repository, tag=tag, registry=registry)

    def through(self, mirrors: dict[str, str]) -> Image:
        """The same image pulled through a mirror of its registry, if one is configured."""
        mirror = mirrors.get(self.registry)
        if not mirror:
            return self
        host, _, path = mirror.partition("/")
        return Image(repository=f"{path}/{self.repository}" if path else self.repository, tag=self.tag, registry=host)


@dataclass(frozen=True)
class Resources:
    """Requests and limits of one container (millicores and MiB, so sums stay exact)."""

    cpu_request_m: int
    memory_request_mi: int
    cpu_limit_m: int
    memory_limit_mi: int

    def as_k8s(self) -> dict[str, dict[str, str]]:
        return {
            "requests": {"cpu": f"{self.cpu_request_m}m", "memory": f"{self.memory_request_mi}Mi"},
            "limits": {"cpu": f"{self.cpu_limit_m}m", "memory": f"{self.memory_limit_mi}Mi"},
        }


@dataclass(frozen=True)
class Container:
    name: str
    image: Image
    resources: Resources


@dataclass(frozen=True)
class Workload:
    """Something that runs pods, counted at its replica count (a DaemonSet counts one per node,
    and the laptop cluster has one node)."""

    name: str
    kind: Literal["Deployment", "StatefulSet", "DaemonSet", "Elasticsearch", "Kibana"]
    replicas: int
    containers: tuple[Container, ...]


@dataclass(frozen=True)
class SecretRef:
    """A key of a Kubernetes Secret, as a workload references it (`secretKeyRef`)."""

    namespace: str
    name: str
    key: str

    def as_env_source(self) -> dict[str, Any]:
        return {"secretKeyRef": {"name": self.name, "key": self.key}}

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}#{self.key}"


@dataclass(frozen=True)
class Credentials:
    """A username/password pair kept in one Secret."""

    namespace: str
    secret: str
    username_key: str = "username"
    password_key: str = "password"

    @property
    def username(self) -> SecretRef:
        return SecretRef(self.namespace, self.secret, self.username_key)

    @property
    def password(self) -> SecretRef:
        return SecretRef(self.namespace, self.secret, self.password_key)

    @property
    def qualified_name(self) -> str:
        return f"{self.namespace}/{self.secret}"


@dataclass(frozen=True)
class GeneratedPassword:
    """A password that only `pulumi_random` ever produces; `id` names it so that two Secrets
    (the same user seen from two namespaces) share one generated value."""

    id: str
    length: int = 32


def bcrypt_key(password_id: str) -> str:
    """Where the bcrypt hash of a generated password is found among the generated values."""
    return f"bcrypt:{password_id}"


@dataclass(frozen=True)
class KitSecret:
    """A Kubernetes Secret the kit declares. Generated values never appear in the model: only
    the `GeneratedPassword` that stands for them."""

    namespace: str
    name: str
    literals: tuple[tuple[str, str], ...] = ()
    generated: tuple[tuple[str, GeneratedPassword], ...] = ()
    password_files: tuple[tuple[str, str, GeneratedPassword], ...] = ()
    """(key, user, password): the key holds a line `user:<bcrypt hash of the password>` per entry, a
    password file a server checks logins against without ever holding the passwords themselves."""
    type: str = "Opaque"

    @property
    def passwords(self) -> tuple[GeneratedPassword, ...]:
        return tuple(pw for _, pw in self.generated) + tuple(pw for _, _, pw in self.password_files)

    def manifest(self, generated_values: dict[str, Any] | None = None,
                 password_line: Callable[[str, Any], Any] = lambda user, hashed: f"{user}:{hashed}\n",
                 join_lines: Callable[[list[Any]], Any] = "".join) -> dict[str, Any]:
        """The Secret; without `generated_values` the generated keys are left out and named in an
        annotation, so nothing written offline holds a secret. Hashes are looked up as
        `bcrypt_key(id)` and joined to their user by `password_line` (Pulumi passes one for Outputs)."""
        string_data: dict[str, Any] = dict(self.literals)
        generated_keys = [key for key, _ in self.generated] + list(dict.fromkeys(k for k, _, _ in self.password_files))
        annotations = {}
        if generated_values is None:
            annotations["cd4ml.dev/generated-keys"] = ",".join(generated_keys)
        else:
            string_data.update({key: generated_values[pw.id] for key, pw in self.generated})
            lines: dict[str, list[Any]] = {}
            for key, user, pw in self.password_files:
                lines.setdefault(key, []).append(password_line(user, generated_values[bcrypt_key(pw.id)]))
            string_data.update({key: join_lines(parts) for key, parts in lines.items()})
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace, "labels": dict(PART_OF)}
        if annotations and generated_keys:
            metadata["annotations"] = annotations
        return {"apiVersion": "v1", "kind": "Secret", "metadata": metadata, "type": self.type,
                "stringData": string_data}


@dataclass(frozen=True)
class Endpoint:
    """A port of a Kubernetes Service, and the URL in-cluster clients use for it."""

    service: str
    namespace: str
    port: int
    scheme: str = "http"
    path: str = ""
    target_port: int | None = None
    """The container port behind the Service port, when they differ: what network policies name."""

    @property
    def pod_port(self) -> int:
        return self.target_port or self.port

    @property
    def host(self) -> str:
        return f"{self.service}.{self.namespace}.{CLUSTER_DOMAIN}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}{self.path}"


@dataclass(frozen=True)
class HelmRelease:
    """An upstream chart at a pinned version, with the values the kit gives it."""

    name: str
    namespace: str
    repo: str
    chart: str
    version: str
    values: dict[str, Any]
    timeout_seconds: int = 600
    local_chart: str | None = None
    """The chart's folder (`chartsDir/<chart>`, at the pinned version): installed from there, not from `repo`."""


@dataclass(frozen=True)
class KitChart:
    """One of the kit's own charts under `charts/`, with the values the model gives it."""

    name: str
    namespace: str
    chart_dir: str
    values: dict[str, Any]


Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Node:
    """One end of a wiring edge: a service, a part of one (gocd-agents) or a namespace."""

    id: str
    namespace: str
    pods: Labels | None = None
    """The labels its pods carry, which network policies select it by; () is every pod of the
    namespace; None means no pods (a namespace deployed into through the API server)."""

    @property
    def pod_selector(self) -> dict[str, dict[str, str]]:
        return {"matchLabels": dict(self.pods)} if self.pods else {}


@dataclass(frozen=True)
class WiringEdge:
    """What one consumer is given to reach one provider — URL, port, credentials — and how the
    kit hands it over. Edges are the single source for values, env vars and network policies
    (infra/platform/network.py)."""

    consumer: Node
    provider: Node
    kind: Literal["connect", "deploy", "configure", "manage", "expose"]
    """connect: a client of the service; deploy: through the API server, authorized by RBAC;
    configure: the kit's configure Job; manage: an operator reconciling what it owns; expose: the
    ingress controller publishing it."""
    delivered_by: str
    endpoint: Endpoint | None = None
    credentials: Credentials | None = None

    @property
    def url(self) -> str | None:
        return self.endpoint.url if self.endpoint else None

    @property
    def target(self) -> Endpoint:
        """The endpoint of an edge that must have one (connect, configure, expose)."""
        if self.endpoint is None:
            raise ValueError(f"wiring edge {self.consumer.id} -> {self.provider.id} ({self.kind}) has no endpoint")
        return self.endpoint

    @property
    def login(self) -> Credentials:
        """The credentials of an edge that must carry them (a configure Job's, an app's MLflow login)."""
        if self.credentials is None:
            raise ValueError(f"wiring edge {self.consumer.id} -> {self.provider.id} ({self.kind}) has no credentials")
        return self.credentials


@dataclass(frozen=True)
class ServiceSettings:
    """What a service is configured with beyond its endpoint (GoCD's profiles and config repos,
    Elasticsearch's retention...): each service's own frozen subclass, plain data, shown in
    `platform.json` and read by the smoke checks and handouts."""


@dataclass(frozen=True)
class Stage:
    """Things created together; each stage of a service waits for the one before it
    (e.g. the ECK operator's CRDs before the Elasticsearch resource)."""

    objects: tuple[dict[str, Any], ...] = ()
    releases: tuple[HelmRelease, ...] = ()
    kit_charts: tuple[KitChart, ...] = ()


@dataclass(frozen=True)
class Service:
    """One platform service as it should exist on the cluster."""

    name: str
    namespace: str
    endpoint: Endpoint | None
    """What users and consumers connect to (None for parts nobody connects to)."""
    credentials: Credentials | None
    secrets: tuple[KitSecret, ...]
    stages: tuple[Stage, ...]
    workloads: tuple[Workload, ...]
    extra_images: tuple[Image, ...] = ()
    """Images the service pulls that no counted workload runs (operators' init containers...)."""
    after: tuple[str, ...] = ()
    """Services that must be ready before this one is created."""
    embedded: tuple[dict[str, Any], ...] = ()
    """Kubernetes objects the service's own configuration carries and something else creates (the pod
    GoCD's elastic-agent plugin starts per job): validated and shown by `plan`, never applied."""
    public_url: str | None = None
    """Where people open it from outside the cluster when the stack publishes it (exposure 'ingress')."""
    settings: ServiceSettings | None = None
    """What the service is configured with beyond its endpoint: what smoke checks verify and people read."""

    @property
    def releases(self) -> tuple[HelmRelease, ...]:
        return tuple(r for stage in self.stages for r in stage.releases)

    @property
    def objects(self) -> tuple[dict[str, Any], ...]:
        return tuple(o for stage in self.stages for o in stage.objects)

    @property
    def kit_charts(self) -> tuple[KitChart, ...]:
        return tuple(c for stage in self.stages for c in stage.kit_charts)

    @property
    def placed_in(self) -> tuple[str, ...]:
        """Every namespace this part puts something in: what must exist before it."""
        found = {self.namespace} | {s.namespace for s in self.secrets} | {r.namespace for r in self.releases}
        found |= {o["metadata"]["namespace"] for o in self.objects if o.get("metadata", {}).get("namespace")}
        found |= {c.namespace for c in self.kit_charts}
        return tuple(sorted(n for n in found if n))


@dataclass(frozen=True)
class Platform:
    """The whole desired platform of one stack."""

    stack: str
    profile: str
    namespaces: tuple[str, ...]
    services: dict[str, Service]
    wiring: tuple[WiringEdge, ...]
    extras: tuple[Service, ...] = field(default=())
    """Parts that are not user-facing services, such as the application environments."""
    tenants: tuple[Tenant, ...] = field(default=())
    """Workshop participants (infra/platform/tenants.py), empty for a single-team platform."""
    pod_security: dict[str, tuple[str, str]] = field(default_factory=dict)
    """namespace -> (Pod Security level enforced, why not restricted)."""
    previews: tuple[KitChart, ...] = field(default=())
    """What the pipelines deploy with the kit's charts (charts/ml-app per environment), rendered and
    validated by `plan` so a chart change is reviewed before a pipeline meets it; never applied."""

    def extra(self, name: str) -> Service:
        return next(part for part in self.extras if part.name == name)

    def optional_extra(self, name: str) -> Service | None:
        """An extra only some stacks have (the ingress part, with exposure 'ingress')."""
        return next((part for part in self.extras if part.name == name), None)

    @property
    def parts(self) -> tuple[Service, ...]:
        return tuple(self.services.values()) + self.extras

    @property
    def workloads(self) -> tuple[Workload, ...]:
        return tuple(w for part in self.parts for w in part.workloads)

    @property
    def images(self) -> tuple[str, ...]:
        refs = {c.image.ref for w in self.workloads for c in w.containers}
        refs |= {image.ref for part in self.parts for image in part.extra_images}
        return tuple(sorted(refs))

    @property
    def requests(self) -> dict[str, int]:
        cpu = sum(w.replicas * c.resources.cpu_request_m for w in self.workloads for c in w.containers)
        memory = sum(w.replicas * c.resources.memory_request_mi for w in self.workloads for c in w.containers)
        return {"cpu_millicores": cpu, "memory_mib": memory}

    @property
    def limits(self) -> dict[str, int]:
        """What the long-running workloads may take at most: a laptop pays between requests and this."""
        cpu = sum(w.replicas * c.resources.cpu_limit_m for w in self.workloads for c in w.containers)
        memory = sum(w.replicas * c.resources.memory_limit_mi for w in self.workloads for c in w.containers)
        return {"cpu_millicores": cpu, "memory_mib": memory}

    @property
    def secrets(self) -> tuple[KitSecret, ...]:
        return tuple(s for part in self.parts for s in part.secrets)

    @property
    def generated_passwords(self) -> tuple[GeneratedPassword, ...]:
        unique = {pw.id: pw for secret in self.secrets for pw in secret.passwords}
        return tuple(unique[k] for k in sorted(unique))


@dataclass(frozen=True)
class ChartPin:
    """Where an upstream chart comes from and the one version the kit is tested with."""

    repo: str
    chart: str
    version: str

    def release(self, name: str, namespace: str, values: dict[str, Any], timeout_seconds: int = 600) -> HelmRelease:
        return HelmRelease(name=name, namespace=namespace, repo=self.repo, chart=self.chart,
                           version=self.version, values=values, timeout_seconds=timeout_seconds)
