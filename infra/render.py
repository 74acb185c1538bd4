"""Kubernetes objects the kit declares itself, as plain manifests.

Both the Pulumi program and `cd4ml plan` call these functions, so what `plan` writes is what
`up` applies. The kit's own charts are rendered by a real Helm engine (helm-python-sdk embeds
Helm's Go library; no helm binary, no cluster).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import helm_python
import yaml

from infra.platform.model import PART_OF, KitChart, Platform, Service

POD_SECURITY_VERSION = "v1.32"
"""Pinned, so a cluster upgrade does not tighten the rules under running pods unannounced."""
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's loader when PyYAML has it (its wheels do): a workshop plan parses a thousand objects."""


def namespace_manifest(name: str, pod_security: tuple[str, str] = ("restricted", "")) -> dict[str, Any]:
    """With Pod Security admission labels: the level enforced, and `restricted` warned about and
    audited everywhere, so any pod below it is visible (`kubectl` prints the warning)."""
    level, reason = pod_security
    labels = {**PART_OF, "pod-security.kubernetes.io/enforce": level, "pod-security.kubernetes.io/enforce-version":
              POD_SECURITY_VERSION, "pod-security.kubernetes.io/warn": "restricted",
              "pod-security.kubernetes.io/audit": "restricted"}
    metadata: dict[str, Any] = {"name": name, "labels": labels}
    if reason:
        metadata["annotations"] = {"cd4ml.dev/pod-security-reason": reason}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata}


def render_kit_chart(chart: KitChart) -> list[dict[str, Any]]:
    """Every object the chart renders with the model's values, in template order."""
    with helm_python.Chart.load(chart.chart_dir) as loaded:
        rendered = loaded.render(values=chart.values, name=chart.name, namespace=chart.namespace, is_install=True)
    objects: list[dict[str, Any]] = []
    for template in sorted(rendered):
        if template.endswith("NOTES.txt"):
            continue
        objects += [doc for doc in yaml.load_all(rendered[template], Loader=_LOADER) if doc]
    return objects


def service_objects(service: Service) -> Iterator[tuple[int, dict[str, Any]]]:
    """(stage index, manifest) for each object a service declares, kit charts rendered."""
    for index, stage in enumerate(service.stages):
        for manifest in stage.objects:
            yield index, manifest
        for chart in stage.kit_charts:
            for manifest in render_kit_chart(chart):
                yield index, manifest


def kit_objects(platform: Platform) -> list[dict[str, Any]]:
    """Everything the kit declares, secrets without their generated values."""
    objects = [namespace_manifest(name, platform.pod_security[name]) for name in platform.namespaces]
    objects += [secret.manifest() for secret in platform.secrets]
    objects += [manifest for part in platform.parts for _, manifest in service_objects(part)]
    return objects


def preview_objects(platform: Platform) -> list[dict[str, Any]]:
    """What the pipelines' deploy stages would apply with the kit's charts (never applied by the kit)."""
    return [manifest for chart in platform.previews for manifest in render_kit_chart(chart)]


def embedded_objects(platform: Platform) -> list[dict[str, Any]]:
    return [manifest for part in platform.parts for manifest in part.embedded]


def object_file_name(manifest: dict[str, Any]) -> str:
    meta = manifest["metadata"]
    scope = meta.get("namespace", "_cluster")
    return f"{scope}__{manifest['kind'].lower()}__{meta['name']}.yaml"
