"""Stack config: every setting of a platform stack, validated once into `StackConfig`.

Read from a stack file (`stacks/Pulumi.<stack>.yaml`), from the Pulumi engine at `pulumi up`,
and from `--set KEY=VALUE` overrides — all three go through `load_config`, so a mistake gets
the same message whichever way it came in: the key, the value given and what is allowed.
Pulumi.yaml's `config:` block is generated from the fields here (`pulumi_project_config`).
"""

from __future__ import annotations

import difflib
import enum
import json
import os
import re
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlparse

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

PROJECT = "cd4ml"
CLUSTER_STACK_ENV = "CD4ML_CLUSTER_STACK"
KUBE_CONTEXT_ENV = "CD4ML_KUBE_CONTEXT"
"""The context `cd4ml up` deployed to when the stack file names none (the current one at the time)."""
KUBE_TARGET_OUTPUT = "kube"
"""The platform stack's output that records which cluster it runs on: {"context": ..., "clusterStack": ...}."""
"""The Pulumi project name, which is also the namespace of every stack config key."""

SERVICE_NAMES = ("gocd", "elasticsearch", "kibana", "fluentd", "grafana", "mlflow")

SERVICE_REQUIREMENTS: dict[str, tuple[str, ...]] = {
    "kibana": ("elasticsearch",),
    "fluentd": ("elasticsearch",),
    "grafana": ("elasticsearch",),
}
"""Services that cannot do their job without another: Kibana and Grafana read Elasticsearch,
Fluentd ships into it. GoCD and MLflow stand alone (their agents' links are optional)."""

MAX_PARTICIPANTS = 100
RESERVED_TENANTS = ("cd4ml", "cd4ml-smoke", "cd4ml-admin", "admin", "fluentd", "grafana")
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


class ConfigProblem(BaseModel):
    key: str
    value: Any
    problem: str

    def __str__(self) -> str:
        return f"{PROJECT}:{self.key} = {self.value!r}: {self.problem}"


class ConfigError(ValueError):
    """A stack config that cannot be used; lists every problem, each naming its key."""

    def __init__(self, problems: list[ConfigProblem], source: str = "stack config"):
        self.problems = problems
        self.source = source
        lines = "\n".join(f"  - {p}" for p in problems)
        noun = "problem" if len(problems) == 1 else "problems"
        super().__init__(f"{source} is invalid ({len(problems)} {noun}):\n{lines}")


class StackConfig(BaseModel):
    """All settings of one platform stack. Field aliases are the Pulumi config keys."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    profile: Profile = Field(
        Profile.LAPTOP,
        description="Sizing profile: 'laptop' (whole platform requests <= 4 GiB, 2 CPUs) or 'cluster'.",
    )
    services: tuple[str, ...] = Field(
        SERVICE_NAMES,
        description="Services to run, any of: " + ", ".join(SERVICE_NAMES) + ".",
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
        description="GKE location (a zone like europe-west1-b: one zonal cluster's control plane is free) or AWS "
                    "region of an EKS cluster.",
    )
    machine_type: str = Field(
        "",
        alias="machineType",
        description="Node machine type (GKE: e2-standard-4/8/16; EKS: m6i.xlarge/2xlarge/4xlarge); empty = the "
                    "provider's default. Must be in the kit's price table (infra/platform/sizing.py).",
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
        description="Git URLs of model repositories GoCD builds (https://, http://, ssh:// or git@host:path).",
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
                raise ValueError(f"unknown service {name!r}{_did_you_mean(name, SERVICE_NAMES)}; "
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

    @field_validator("elasticsearch_storage_gi", "gocd_storage_gi", "mlflow_storage_gi")
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


def _did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _key_of(field_name: str) -> str:
    field = StackConfig.model_fields[field_name]
    return field.alias or field_name


CONFIG_KEYS: tuple[str, ...] = tuple(_key_of(name) for name in StackConfig.model_fields)


def _coerce_text(key: str, value: Any) -> Any:
    """Config from the Pulumi engine and from --set arrives as text; lists as JSON or a,b,c."""
    if not isinstance(value, str):
        return value
    field_name = next(n for n in StackConfig.model_fields if _key_of(n) == key)
    annotation = str(StackConfig.model_fields[field_name].annotation)
    if annotation.startswith("tuple"):
        text = value.strip()
        if text.startswith("["):
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                return value
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


def load_config(raw: Mapping[str, Any], source: str = "stack config") -> StackConfig:
    """Validate raw `key -> value` settings (keys with or without the `cd4ml:` namespace)."""
    problems: list[ConfigProblem] = []
    settings: dict[str, Any] = {}
    for full_key, value in raw.items():
        namespace, _, key = full_key.rpartition(":")
        if namespace and namespace != PROJECT:
            continue  # provider settings such as kubernetes:context belong to their providers
        if key not in CONFIG_KEYS:
            problems.append(ConfigProblem(
                key=key, value=value,
                problem=f"unknown key{_did_you_mean(key, CONFIG_KEYS)}; known keys: {', '.join(CONFIG_KEYS)}"))
            continue
        settings[key] = _coerce_text(key, value)
    try:
        config = StackConfig.model_validate(settings)
    except ValidationError as invalid:
        for error in invalid.errors():
            key = str(error["loc"][0]) if error["loc"] else "?"
            problems.append(ConfigProblem(key=key, value=settings.get(key), problem=_plain(error)))
        raise ConfigError(problems, source) from None
    if problems:
        raise ConfigError(problems, source)
    _check_requirements(config, source)
    return config


def _plain(error: Mapping[str, Any]) -> str:
    """Pydantic's message without its 'Value error,' prefix, plus what type was expected."""
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "enum":
        return message.replace("Input should be", "must be one of")
    if error["type"] in ("int_parsing", "int_type", "int_from_float"):
        return "must be a whole number"
    if error["type"] in ("string_type",):
        return "must be text"
    if error["type"] in ("tuple_type",):
        return "must be a list"
    return message


def _check_requirements(config: StackConfig, source: str) -> None:
    problems = [
        ConfigProblem(
            key=_key_of("services"), value=list(config.services),
            problem=f"{service} needs {needed}, which is not in the list; add {needed} or remove {service}")
        for service, needs in SERVICE_REQUIREMENTS.items() if config.enabled(service)
        for needed in needs if not config.enabled(needed)
    ]
    if config.profile is Profile.LAPTOP and config.elasticsearch_nodes > 1:
        problems.append(ConfigProblem(
            key=_key_of("elasticsearch_nodes"), value=config.elasticsearch_nodes,
            problem="the laptop profile runs exactly 1 Elasticsearch node; set profile=cluster for more"))
    longest = max([len(n) + 1 for n in config.participant_list] or [0]) + max(len(e) for e in config.app_environments)
    if len(config.namespace_prefix) + 1 + longest > 63:
        problems.append(ConfigProblem(
            key=_key_of("namespace_prefix"), value=config.namespace_prefix,
            problem=f"namespaces <prefix>-<participant>-<environment> would exceed 63 characters; "
                    f"use a prefix of at most {62 - longest} characters"))
    if config.participant_names and config.participants not in (0, len(config.participant_names)):
        problems.append(ConfigProblem(
            key=_key_of("participants"), value=config.participants,
            problem=f"participantNames lists {len(config.participant_names)} names; set participants to "
                    f"{len(config.participant_names)} or leave it 0"))
    problems += _cloud_problems(config)
    if problems:
        raise ConfigError(problems, source)


def _cloud_problems(config: StackConfig) -> list[ConfigProblem]:
    """Ingress and cloud clusters are for the cluster profile, and each needs its own settings."""
    # The price table's machines are the ones allowed (imported here: the platform model imports this module).
    from infra.platform.sizing import MACHINES

    problems = []
    if config.exposure is Exposure.INGRESS:
        if config.profile is not Profile.CLUSTER:
            problems.append(ConfigProblem(key="exposure", value=config.exposure.value,
                                          problem="ingress is for the cluster profile (laptops use port-forward); "
                                                  "set profile=cluster or exposure=port-forward"))
        if not config.domain:
            problems.append(ConfigProblem(key="domain", value=config.domain,
                                          problem="exposure 'ingress' publishes <service>.<domain>: set the domain "
                                                  "whose DNS points at the ingress controller"))
        if config.tls_issuer is not TlsIssuer.SELF_SIGNED and not config.acme_email:
            problems.append(ConfigProblem(key="acmeEmail", value=config.acme_email,
                                          problem=f"tlsIssuer {config.tls_issuer.value} needs a contact address "
                                                  "for Let's Encrypt (or set tlsIssuer=self-signed)"))
    provider = config.cluster_provider
    if provider is not ClusterProvider.EXISTING:
        if config.profile is not Profile.CLUSTER:
            problems.append(ConfigProblem(key="clusterProvider", value=provider.value,
                                          problem="a cloud cluster runs the cluster profile; set profile=cluster"))
        if provider is ClusterProvider.GKE and not config.cloud_project:
            problems.append(ConfigProblem(key="cloudProject", value=config.cloud_project,
                                          problem="a GKE cluster needs the GCP project it is billed to"))
        if not config.cloud_region:
            problems.append(ConfigProblem(key="cloudRegion", value=config.cloud_region,
                                          problem=f"a {provider.value.upper()} cluster needs its "
                                                  + ("location (zone or region)" if provider is ClusterProvider.GKE
                                                     else "AWS region")))
        if config.enabled("gocd") and not config.image_registry:
            problems.append(ConfigProblem(key="imageRegistry", value=config.image_registry,
                                          problem="a cloud cluster pulls the kit's own images (the ML agent, the "
                                                  "model runtime) from a registry: set one it can pull from, e.g. "
                                                  "europe-docker.pkg.dev/<project>/cd4ml"))
        if config.machine_type and config.machine_type not in MACHINES[provider.value]:
            problems.append(ConfigProblem(key="machineType", value=config.machine_type,
                                          problem=f"not in the kit's {provider.value} price table; allowed: "
                                                  + ", ".join(MACHINES[provider.value])))
    elif config.machine_type or config.cloud_project:
        key = "machineType" if config.machine_type else "cloudProject"
        problems.append(ConfigProblem(key=key, value=config.machine_type or config.cloud_project,
                                      problem="only used with clusterProvider gke or eks"))
    return problems


def parse_overrides(pairs: list[str]) -> dict[str, str]:
    """`--set KEY=VALUE` pairs; a pair without '=' is itself a config problem."""
    overrides: dict[str, str] = {}
    problems = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            problems.append(ConfigProblem(key=key or "?", value=pair, problem="--set needs KEY=VALUE"))
            continue
        overrides[key.strip()] = value
    if problems:
        raise ConfigError(problems, "--set")
    return overrides


def project_dir() -> Path:
    """The kit's checkout: the current directory if it holds Pulumi.yaml, else where the package is."""
    here = Path.cwd()
    if (here / "Pulumi.yaml").is_file():
        return here
    return Path(__file__).resolve().parents[1]


def stack_file(stacks_dir: Path, stack: str) -> Path:
    return stacks_dir / f"Pulumi.{stack}.yaml"


def read_stack_file(stacks_dir: Path, stack: str) -> dict[str, Any]:
    """The `config:` mapping of a stack file; a missing file or stack names what exists."""
    path = stack_file(stacks_dir, stack)
    if not path.is_file():
        known = sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in stacks_dir.glob("Pulumi.*.yaml"))
        raise ConfigError([ConfigProblem(
            key="(stack)", value=stack,
            problem=f"no stack file {path}{_did_you_mean(stack, known)}; stacks: {', '.join(known) or 'none'}")],
            "stack")
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as broken:
        raise ConfigError([ConfigProblem(key="(file)", value=str(path), problem=f"is not valid YAML: {broken}")],
                          str(path)) from None
    config = document.get("config") or {}
    if not isinstance(config, dict):
        raise ConfigError([ConfigProblem(key="(file)", value=str(path), problem="'config' must be a mapping")],
                          str(path))
    return config


def load_stack(stacks_dir: Path, stack: str, overrides: Mapping[str, str] | None = None) -> StackConfig:
    """A stack file plus `--set` overrides, validated together (an override may fix the file)."""
    raw = dict(read_stack_file(stacks_dir, stack))
    for key, value in (overrides or {}).items():
        full = key if ":" in key else f"{PROJECT}:{key}"
        raw.pop(full.removeprefix(f"{PROJECT}:"), None)
        raw[full] = value
    return load_config(raw, source=f"stack '{stack}'")


def load_from_pulumi() -> StackConfig:
    """The running stack's config, as the Pulumi engine passes it to the program."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    # The language host hands config over as PULUMI_CONFIG or through set_all_config (mocks too).
    raw = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    # `cd4ml up` passes the cluster stack it created, or the context it chose, this way rather than
    # writing into the stack file (which is the user's, and tracked).
    if os.environ.get(CLUSTER_STACK_ENV):
        raw[f"{PROJECT}:clusterStack"] = os.environ[CLUSTER_STACK_ENV]
    if os.environ.get(KUBE_CONTEXT_ENV) and not raw.get(f"{PROJECT}:kubeContext"):
        raw[f"{PROJECT}:kubeContext"] = os.environ[KUBE_CONTEXT_ENV]
    return load_config(raw, source=f"stack '{pulumi.get_stack()}'")


def pulumi_project_config() -> dict[str, dict[str, Any]]:
    """The `config:` block of Pulumi.yaml, derived from the fields so the two cannot drift."""
    block: dict[str, dict[str, Any]] = {}
    for name, field in StackConfig.model_fields.items():
        default = field.default
        if isinstance(default, enum.Enum):
            default = default.value
        if isinstance(default, tuple):
            entry = {"type": "array", "items": {"type": "string"}, "default": list(default)}
        elif isinstance(default, bool):
            entry = {"type": "boolean", "default": default}
        elif isinstance(default, int):
            entry = {"type": "integer", "default": default}
        else:
            entry = {"type": "string", "default": default}
        block[_key_of(name)] = {"description": field.description, **entry}
    return block
