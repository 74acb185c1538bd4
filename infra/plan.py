"""`cd4ml plan`: the desired platform written to a directory, offline.

    DIR/objects/    every object the kit declares or renders from its own charts, one file each
    DIR/releases/   every upstream Helm release: repo, chart, pinned version, values
    DIR/embedded/   objects a service's configuration carries and it creates itself (GoCD's agent pod)
    DIR/deploys/    what pipelines deploy with charts/ml-app, per environment (never applied by the kit)
    DIR/platform.json  services, wiring, images, summed requests, tenants

Generated secrets appear only as the names of the keys that `up` will fill.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from infra.platform.elasticsearch import EVENT_INDEX_PREFIX
from infra.platform.ingress import NAME as INGRESS
from infra.platform.model import Platform, WiringEdge
from infra.platform.tenants import Tenant
from infra.render import embedded_objects, kit_objects, object_file_name, preview_objects
from infra.validate import validate_objects


class _ReadableDumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # libyaml when present: faster
    """Multi-line strings (Fluentd configs, role files) as literal blocks, so a plan reads like config."""


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_ReadableDumper.add_representer(str, _str_representer)


def dump_yaml(document: dict[str, Any]) -> str:
    return yaml.dump(document, Dumper=_ReadableDumper, sort_keys=False, width=120)


def _edge_document(edge: WiringEdge) -> dict[str, Any]:
    return {
        "from": edge.consumer.id,
        "from_namespace": edge.consumer.namespace,
        "from_pods": dict(edge.consumer.pods) if edge.consumer.pods is not None else None,
        "to": edge.provider.id,
        "to_namespace": edge.provider.namespace,
        "to_pods": dict(edge.provider.pods) if edge.provider.pods is not None else None,
        "kind": edge.kind,
        "url": edge.url,
        "port": edge.endpoint.port if edge.endpoint else None,
        "pod_port": edge.endpoint.pod_port if edge.endpoint else None,
        "credentials_secret": edge.credentials.qualified_name if edge.credentials else None,
        "delivered_by": edge.delivered_by,
    }


def tenant_document(tenant: Tenant) -> dict[str, Any]:
    """One participant: everything their handout and the smoke checks need, no secret."""
    return {
        "name": tenant.name,
        "namespaces": dict(tenant.environments),
        "model_urls": tenant.model_urls,
        "login": tenant.login,
        "password_id": tenant.password.id if tenant.password else None,
        "mlflow_experiment": tenant.experiment,
        "gocd_pipeline_group": tenant.pipeline_group,
        "gocd_elastic_profile": tenant.elastic_profile,
        "agents_node": tenant.agents_node,
        "service_account": tenant.service_account,
        "fluentd_tag": tenant.tag,
        "index_pattern": f"{EVENT_INDEX_PREFIX}-{tenant.name}-*",
    }


def platform_document(platform: Platform) -> dict[str, Any]:
    """The platform as data: what smoke tests, handouts and people read."""
    return {
        "stack": platform.stack,
        "profile": platform.profile,
        "namespaces": list(platform.namespaces),
        "services": [
            {
                "name": service.name,
                "namespace": service.namespace,
                "url": service.endpoint.url if service.endpoint else None,
                "public_url": service.public_url,
                "service": service.endpoint.service if service.endpoint else None,
                "port": service.endpoint.port if service.endpoint else None,
                "credentials_secret": service.credentials.qualified_name if service.credentials else None,
                "credentials_keys": {"username": service.credentials.username_key,
                                     "password": service.credentials.password_key} if service.credentials else None,
                "releases": [f"{r.chart}@{r.version}" for r in service.releases],
                "settings": service.settings,
            }
            for service in platform.services.values()
        ],
        "wiring": [_edge_document(edge) for edge in platform.wiring],
        "ingress": _ingress_document(platform),
        "images": list(platform.images),
        "requests": platform.requests,
        "tenants": [tenant_document(t) for t in platform.tenants],
        "network_policies": _network_policies(platform),
        "pod_security": {namespace: level for namespace, (level, _why) in platform.pod_security.items()},
    }


def _network_policies(platform: Platform) -> dict[str, list[str]]:
    """namespace -> the NetworkPolicies the wiring graph gives it (what smoke finds in the cluster)."""
    from infra.platform.network import NAME as NETWORK

    found: dict[str, list[str]] = {}
    for stage in platform.extra(NETWORK).stages:
        for manifest in stage.objects:
            if manifest.get("kind") == "NetworkPolicy":
                found.setdefault(manifest["metadata"]["namespace"], []).append(manifest["metadata"]["name"])
    return {namespace: sorted(names) for namespace, names in sorted(found.items())}


def _ingress_document(platform: Platform) -> dict[str, Any] | None:
    """Where the published services live (exposure 'ingress'): what the `ingress.*` smoke checks and
    a facilitator's DNS record need. None when nothing is published."""
    part = platform.optional_extra(INGRESS)
    if part is None:
        return None
    settings = part.settings
    return {"namespace": part.namespace, "controller_service": settings["load_balancer_release"],
            "domain": settings["domain"], "issuer": settings["issuer"], "hosts": settings["hosts"],
            "certificates": settings["certificates"], "model_services": settings["model_services"]}


def release_document(release) -> dict[str, Any]:
    return {
        "name": release.name,
        "namespace": release.namespace,
        "repo": release.repo,
        "chart": release.chart,
        "version": release.version,
        "values": release.values,
    }


@dataclass(frozen=True)
class PlanResult:
    out_dir: Path
    objects: int
    releases: int


def write_plan(platform: Platform, out_dir: Path, validate: bool = True) -> PlanResult:
    files = {"objects": kit_objects(platform), "embedded": embedded_objects(platform),
             "deploys": preview_objects(platform)}
    if validate:
        validate_objects([manifest for manifests in files.values() for manifest in manifests])
    releases_dir = out_dir / "releases"
    for directory in [out_dir / name for name in files] + [releases_dir]:
        if directory.exists():
            shutil.rmtree(directory)  # a stale file from an earlier plan would look desired
        directory.mkdir(parents=True)
    for name, manifests in files.items():
        for manifest in manifests:
            (out_dir / name / object_file_name(manifest)).write_text(dump_yaml(manifest))
    objects = files["objects"]
    releases = [r for part in platform.parts for r in part.releases]
    for release in releases:
        (releases_dir / f"{release.namespace}__{release.name}.yaml").write_text(dump_yaml(release_document(release)))
    (out_dir / "platform.json").write_text(json.dumps(platform_document(platform), indent=2) + "\n")
    return PlanResult(out_dir=out_dir, objects=len(objects), releases=len(releases))
