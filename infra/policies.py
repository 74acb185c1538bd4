"""The kit's own Pulumi policies (pulumi-policy), enforced on every `cd4ml up`.

The rules live here, as plain functions over a resource's type and properties, so they are tested
directly; `policy/__main__.py` serves them as the policy pack `cd4ml` (PolicyPack's constructor
starts the engine's gRPC server, so it cannot live in an importable module). Configuration: the
stack's `profile`, passed by `cd4ml up` (infra/cli/lifecycle.py) as the pack's config file.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

WORKLOADS = {
    "kubernetes:apps/v1:Deployment", "kubernetes:apps/v1:StatefulSet", "kubernetes:apps/v1:DaemonSet",
    "kubernetes:batch/v1:Job", "kubernetes:batch/v1:CronJob", "kubernetes:core/v1:Pod",
}
SERVICE = "kubernetes:core/v1:Service"
RELEASE = "kubernetes:helm.sh/v3:Release"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
SECRET_NAMES = re.compile(r"(?i)(password|passwd|secret|token|api[-_]?key|credentials?)$")
"""A key named like this holds a secret value..."""
REFERENCE_NAMES = re.compile(r"(?i)(existing\w*|\w*secretname|\w*secretkeyref|\w*(username|password|token)key"
                             r"|\w*_file|\w*path|\w*ref)$")
"""...unless it names where one is (`existingSecret`, `passwordKey`, `PASSWORD_FILE`, `PasswordFilePath`)."""
PLACEHOLDER = re.compile(r"^(\$\{[A-Za-z_]\w*\}|\$\([A-Za-z_]\w*\)|#\{ENV\[.+\]\})$")
"""...or its value is expanded from the environment at start (Grafana `${ES_PASSWORD}`, Fluentd `#{ENV[...]}`)."""


def _literal(value: Any) -> bool:
    return isinstance(value, str) and bool(value) and not PLACEHOLDER.match(value.strip())


def pod_spec(resource_type: str, props: Mapping[str, Any]) -> Mapping[str, Any] | None:
    spec = props.get("spec") or {}
    if resource_type == "kubernetes:core/v1:Pod":
        return spec
    if resource_type == "kubernetes:batch/v1:CronJob":
        return spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec")
    return spec.get("template", {}).get("spec")


def pod_labels(resource_type: str, props: Mapping[str, Any]) -> Mapping[str, str]:
    if resource_type == "kubernetes:core/v1:Pod":
        return props.get("metadata", {}).get("labels") or {}
    return (props.get("spec") or {}).get("template", {}).get("metadata", {}).get("labels") or {}


def containers(resource_type: str, props: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    spec = pod_spec(resource_type, props) or {}
    return list(spec.get("containers") or []) + list(spec.get("initContainers") or [])


def _unpinned(image: str) -> bool:
    if "@sha256:" in image:
        return False
    last = image.rsplit("/", 1)[-1]
    return ":" not in last or last.endswith(":latest")


def _walk(value: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    """(path, key, value) of every entry of nested maps and lists."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            yield here, str(key), item
            yield from _walk(item, here)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}[{index}]")


def image_violations(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    found = [f"container {c.get('name')} runs {c.get('image')!r}: pin a tag or digest, never :latest"
             for c in containers(resource_type, props) if resource_type in WORKLOADS and _unpinned(c.get("image", ""))]
    if resource_type == RELEASE:
        found += [f"values {path} is {value!r}: pin the image tag" for path, key, value in _walk(props.get("values"))
                  if key == "tag" and str(value).strip() in ("latest", "")]
        found += [f"values {path} is {value!r}: pin the image tag" for path, key, value in _walk(props.get("values"))
                  if key == "image" and isinstance(value, str) and _unpinned(value)]
    return found


def resource_violations(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    if resource_type not in WORKLOADS:
        return []
    found = []
    for c in containers(resource_type, props):
        resources = c.get("resources") or {}
        for bound in ("requests", "limits"):
            missing = {"cpu", "memory"} - set(resources.get(bound) or {})
            if missing:
                found.append(f"container {c.get('name')} has no {bound} for {', '.join(sorted(missing))}")
    return found


def load_balancer_violations(resource_type: str, props: Mapping[str, Any], config: Mapping[str, Any]) -> list[str]:
    """A LoadBalancer costs money and faces the internet: never on a laptop; on a cluster only the
    ingress controller's (config `loadBalancerReleases`)."""
    allowed = set(config.get("loadBalancerReleases") or []) if config.get("profile") == "cluster" else set()
    if resource_type == SERVICE and (props.get("spec") or {}).get("type") == "LoadBalancer":
        return [f"Service {props.get('metadata', {}).get('name')} is a LoadBalancer (profile "
                f"{config.get('profile', 'laptop')}): use port-forward, NodePort or the ingress"]
    if resource_type == RELEASE and props.get("name") not in allowed:
        return [f"release {props.get('name')} values {path} asks for a LoadBalancer (profile "
                f"{config.get('profile', 'laptop')})" for path, key, value in _walk(props.get("values"))
                if key == "type" and value == "LoadBalancer"]
    return []


def plaintext_secret_violations(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Secrets reach workloads through Secret objects (existingSecret, secretKeyRef, mounted files);
    a literal under a secret-like key in chart values, a ConfigMap or a container env is a leak."""
    found = []
    sources: list[tuple[str, Any]] = []
    if resource_type == RELEASE:
        sources.append(("values", props.get("values")))
    if resource_type == CONFIG_MAP:
        sources.append(("data", props.get("data")))
    for path, key, value in (entry for name, source in sources for entry in _walk(source, name)):
        if _literal(value) and SECRET_NAMES.search(key) and not REFERENCE_NAMES.match(key):
            found.append(f"{path} holds a literal secret: reference a Secret instead")
    for c in containers(resource_type, props) if resource_type in WORKLOADS else []:
        for env in c.get("env") or []:
            name = env.get("name", "")
            if _literal(env.get("value")) and SECRET_NAMES.search(name) and not REFERENCE_NAMES.match(name):
                found.append(f"container {c.get('name')} env {name} is a literal: use valueFrom or a mounted Secret")
    return found


def _selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    expressions = selector.get("matchExpressions") or []
    return not expressions and set((selector.get("matchLabels") or {}).items()) <= set(labels.items())


def uncovered_workloads(resources: list[tuple[str, str, Mapping[str, Any]]]) -> list[tuple[str, str]]:
    """(urn, message) for each workload no NetworkPolicy in its namespace selects, and each Helm
    release whose namespace has no policy selecting every pod (its pods are not resources here)."""
    policies: dict[str, list[Mapping[str, Any]]] = {}
    for _, resource_type, props in resources:
        if resource_type == NETWORK_POLICY:
            namespace = (props.get("metadata") or {}).get("namespace", "default")
            policies.setdefault(namespace, []).append((props.get("spec") or {}).get("podSelector") or {})
    found = []
    for urn, resource_type, props in resources:
        if resource_type in WORKLOADS:
            namespace = (props.get("metadata") or {}).get("namespace", "default")
            labels = pod_labels(resource_type, props)
            if not any(_selects(selector, labels) for selector in policies.get(namespace, [])):
                found.append((urn, f"no NetworkPolicy in {namespace} selects the pods of "
                                   f"{(props.get('metadata') or {}).get('name')}"))
        elif resource_type == RELEASE:
            namespace = props.get("namespace", "default")
            if not any(_selects(selector, {}) for selector in policies.get(namespace, [])):
                found.append((urn, f"release {props.get('name')}: namespace {namespace} has no policy "
                                   "selecting every pod (default-deny)"))
    return found


def _resource_policy(name: str, description: str, check: Callable[..., list[str]],
                     with_config: bool = False) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        extra = (args.get_config(),) if with_config else ()
        for message in check(args.resource_type, args.props, *extra):
            report_violation(message, None)

    return ResourceValidationPolicy(
        name=name, description=description, validate=validate, enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=PolicyConfigSchema(properties={
            "profile": {"type": "string", "enum": ["laptop", "cluster"]},
            "loadBalancerReleases": {"type": "array", "items": {"type": "string"}}}) if with_config else None)


def _coverage(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    resources = [(r.urn, r.resource_type, r.props) for r in args.resources]
    for urn, message in uncovered_workloads(resources):
        report_violation(message, urn)


PACK_NAME = "cd4ml"


def pack_config(profile: str, load_balancer_releases: tuple[str, ...] = ()) -> dict[str, Any]:
    """The pack's configuration for one stack (`pulumi up --policy-pack-config`)."""
    return {"no-loadbalancer-on-laptop": {"profile": profile, "loadBalancerReleases": list(load_balancer_releases)}}


POLICIES = [
    _resource_policy("no-latest-image", "Every image is pinned to a tag or digest, never :latest.", image_violations),
    _resource_policy("requests-and-limits", "Every container sets CPU and memory requests and limits.",
                     resource_violations),
    _resource_policy("no-loadbalancer-on-laptop", "No LoadBalancer Service on the laptop profile; on a cluster "
                     "only the ingress controller's.", load_balancer_violations, with_config=True),
    _resource_policy("no-plaintext-secret", "No literal secret in chart values, ConfigMaps or container env.",
                     plaintext_secret_violations),
    StackValidationPolicy(name="pods-covered-by-network-policy", description="Every workload's pods are "
                          "selected by a NetworkPolicy (the kit's default-deny, then its allow rules).",
                          validate=_coverage, enforcement_level=EnforcementLevel.MANDATORY),
]
