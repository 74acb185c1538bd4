"""The cluster project's program: one kind cluster, its kubeconfig exported for the platform stack."""

from __future__ import annotations

import pulumi

from infra.cluster import KIND_CLUSTER, KIND_NODE_IMAGE
from infra.cluster.kind import KindCluster, KindClusterArgs


def run() -> None:
    config = pulumi.Config()
    cluster = KindCluster("kind", KindClusterArgs(name=KIND_CLUSTER, node_image=KIND_NODE_IMAGE,
                                                  kind=config.get("kindBinary") or "kind"))
    pulumi.export("kubeconfig", cluster.kubeconfig)
    pulumi.export("context", cluster.context)
