"""The cluster project's program: a local kind cluster, or a GKE or EKS cluster, its kubeconfig
exported (a secret) for the platform stack, with what `cd4ml status` prices: the provider, the
machine type and the node count. `cd4ml up` sets this stack's config from the platform stack file
(`clusterProvider`, `cloudProject`, `cloudRegion`, `machineType`) and the node count from
infra/platform/sizing.py."""

from __future__ import annotations

import pulumi

from infra.cluster import INGRESS_ADDRESS_OUTPUT, KIND_CLUSTER, KIND_NODE_IMAGE, KUBERNETES_VERSION
from infra.cluster.kind import KindCluster, KindClusterArgs

PROVIDERS = ("kind", "gke", "eks")


def run() -> None:
    config = pulumi.Config()
    provider = config.get("provider") or "kind"
    if provider not in PROVIDERS:
        raise pulumi.RunError(f"cd4ml-cluster:provider = {provider!r}: must be one of {', '.join(PROVIDERS)}")
    if provider == "kind":
        cluster = KindCluster("kind", KindClusterArgs(name=KIND_CLUSTER, node_image=KIND_NODE_IMAGE,
                                                      kind=config.get("kindBinary") or "kind"))
        pulumi.export("kubeconfig", cluster.kubeconfig)
        pulumi.export("context", cluster.context)
        pulumi.export("provider", provider)
        return
    name = f"cd4ml-{pulumi.get_stack()}"
    machine_type, node_count = config.require("machineType"), config.require_int("nodeCount")
    if provider == "gke":
        from infra.cluster.gke import GkeCluster, GkeClusterArgs

        cloud = GkeCluster("gke", GkeClusterArgs(name=name, project=config.require("project"),
                                                 location=config.require("region"), machine_type=machine_type,
                                                 node_count=node_count,
                                                 workshop_days=tuple(d for d in (config.get("workshopDays") or "")
                                                                     .split(",") if d)))
        pulumi.export(INGRESS_ADDRESS_OUTPUT, cloud.ingress_address)
    else:
        from infra.cluster.eks import EksCluster, EksClusterArgs

        cloud = EksCluster("eks", EksClusterArgs(name=name, region=config.require("region"),
                                                 machine_type=machine_type, node_count=node_count))
    pulumi.export("kubeconfig", cloud.kubeconfig)
    pulumi.export("storageClass", cloud.storage_class)
    pulumi.export("provider", provider)
    pulumi.export("machineType", machine_type)
    pulumi.export("nodeCount", node_count)
    pulumi.export("kubernetesVersion", KUBERNETES_VERSION)
