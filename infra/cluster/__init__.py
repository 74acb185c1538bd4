"""The local cluster as its own Pulumi stack (project `cd4ml-cluster`, in `cluster/`), so the
platform can be destroyed and recreated without the cluster, and `down --cluster` removes both.
The platform stack reads the cluster's kubeconfig through a stack reference.

Constants only here (no Pulumi import): the lifecycle commands read them too."""

CLUSTER_PROJECT = "cd4ml-cluster"
KIND_VERSION = "v0.32.0"
KIND_NODE_IMAGE = (
    "kindest/node:v1.36.1@sha256:3489c7674813ba5d8b1a9977baea8a6e553784dab7b84759d1014dbd78f7ebd5"
)
"""kind v0.32.0's default node image (pkg/apis/config/defaults/image.go), pinned by digest."""
KIND_CLUSTER = "cd4ml"
KUBERNETES_VERSION = "1.34"
"""Cloud clusters' pinned minor (GKE and EKS both offer it; inside the kit's supported 1.32-1.36)."""
INGRESS_ADDRESS_OUTPUT = "ingressAddress"
"""The cluster stack's output a GKE platform's ingress controller takes as its LoadBalancer's IP."""


def cluster_stack_reference(stack: str) -> str:
    """The fully qualified name of a cluster stack in the local file backend."""
    return f"organization/{CLUSTER_PROJECT}/{stack}"
