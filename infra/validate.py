"""Schema validation of the kit's objects against the real Kubernetes schemas (kubernetes-validate).

Strict schemas: an unknown field is an error, which is what catches a misspelt key. ECK's and
cert-manager's custom resources have no schema in kubernetes-validate; they are checked against their
CRDs only when those are at hand (see tests/test_upstream_charts.py).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

import kubernetes_validate
import kubernetes_validate.utils

# kubernetes-validate re-reads and re-parses its schema files (the definitions file is megabytes) on
# every object; a workshop plan validates thousands. The files never change while we run, and the
# library only reads the parsed schemas, so parse each once.
kubernetes_validate.utils.schema_contents = functools.lru_cache(maxsize=None)(
    kubernetes_validate.utils.schema_contents)

SUPPORTED_KUBERNETES = ("1.32", "1.36")
"""Oldest and newest Kubernetes minor the kit supports: the range ECK 3.5.0's own e2e matrix runs on
kind (.buildkite/e2e/release-branch-matrix.yaml), which the kind node image pinned for `up` tops."""

CUSTOM_KINDS = {
    ("elasticsearch.k8s.elastic.co/v1", "Elasticsearch"),
    ("kibana.k8s.elastic.co/v1", "Kibana"),
    ("cert-manager.io/v1", "ClusterIssuer"),
    ("cert-manager.io/v1", "Certificate"),
    ("traefik.io/v1alpha1", "Middleware"),
}


class InvalidObject(ValueError):
    pass


def _schema_version(minor: str) -> str:
    return f"{minor}.0"


def validate_objects(objects: Iterable[dict[str, Any]], versions: Iterable[str] = SUPPORTED_KUBERNETES) -> int:
    """Validate every built-in object at every version; returns how many validations ran."""
    count = 0
    problems = []
    for manifest in objects:
        if (manifest.get("apiVersion"), manifest.get("kind")) in CUSTOM_KINDS:
            continue
        for version in versions:
            try:
                kubernetes_validate.validate(manifest, _schema_version(version), strict=True)
                count += 1
            except kubernetes_validate.ValidationError as error:
                problems.append(f"{_describe(manifest)} @ Kubernetes {version}: {error.message} "
                                f"(at {'.'.join(str(p) for p in error.path) or 'top level'})")
            except kubernetes_validate.SchemaNotFoundError:
                problems.append(f"{_describe(manifest)} @ Kubernetes {version}: no schema for this apiVersion/kind")
    if problems:
        raise InvalidObject("objects fail the Kubernetes schemas:\n  " + "\n  ".join(problems))
    return count


def _describe(manifest: dict[str, Any]) -> str:
    meta = manifest.get("metadata", {})
    return f"{manifest.get('kind')} {meta.get('namespace', '')}/{meta.get('name')}"
