"""A GKE cluster for a workshop: one zonal (or regional) cluster, one node pool sized by
infra/platform/sizing.py, Dataplane V2 so the platform's NetworkPolicies are enforced, the Kubernetes
version pinned (no release channel, no auto-upgrade mid-workshop), deletion protection off so
`cd4ml down --cluster` can remove it. Its default StorageClass `standard-rwo` (pd-balanced, CSI) is
what the platform's volumes use."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.cluster import KUBERNETES_VERSION

STORAGE_CLASS = "standard-rwo"
NODE_DISK_GB = 100


@dataclass(frozen=True)
class GkeClusterArgs:
    name: str
    project: str
    location: str
    machine_type: str
    node_count: int
    kubernetes_version: str = KUBERNETES_VERSION


def kubeconfig(name: str, endpoint: str, ca_certificate: str) -> str:
    """A kubeconfig that logs in through gcloud's auth plugin (the user's own Google credentials)."""
    return f"""apiVersion: v1
kind: Config
clusters:
- name: {name}
  cluster:
    server: https://{endpoint}
    certificate-authority-data: {ca_certificate}
contexts:
- name: {name}
  context: {{cluster: {name}, user: {name}}}
current-context: {name}
users:
- name: {name}
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: gke-gcloud-auth-plugin
      provideClusterInfo: true
      installHint: Install gke-gcloud-auth-plugin (gcloud components install gke-gcloud-auth-plugin)
"""


class GkeCluster(pulumi.ComponentResource):
    kubeconfig: pulumi.Output[str]
    storage_class: pulumi.Output[str]

    def __init__(self, name: str, args: GkeClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cd4ml:cluster:GkeCluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        cluster = gcp.container.Cluster(
            name, name=args.name, project=args.project, location=args.location,
            min_master_version=args.kubernetes_version,
            release_channel=gcp.container.ClusterReleaseChannelArgs(channel="UNSPECIFIED"),
            remove_default_node_pool=True, initial_node_count=1,
            datapath_provider="ADVANCED_DATAPATH",  # Dataplane V2 enforces NetworkPolicies
            deletion_protection=False,
            resource_labels={"app-kubernetes-io-part-of": "cd4ml"},
            opts=child)
        gcp.container.NodePool(
            f"{name}-nodes", name="cd4ml-nodes", project=args.project, location=args.location, cluster=cluster.name,
            node_count=args.node_count, version=args.kubernetes_version,
            management=gcp.container.NodePoolManagementArgs(auto_repair=True, auto_upgrade=False),
            node_config=gcp.container.NodePoolNodeConfigArgs(
                machine_type=args.machine_type, disk_size_gb=NODE_DISK_GB, disk_type="pd-balanced",
                oauth_scopes=["https://www.googleapis.com/auth/cloud-platform"],
                labels={"app-kubernetes-io-part-of": "cd4ml"}),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[cluster]))
        self.kubeconfig = pulumi.Output.secret(pulumi.Output.all(
            cluster.name, cluster.endpoint, cluster.master_auth.cluster_ca_certificate).apply(
                lambda parts: kubeconfig(f"gke-{parts[0]}", parts[1], parts[2])))
        self.storage_class = pulumi.Output.from_input(STORAGE_CLASS)
        self.register_outputs({"kubeconfig": self.kubeconfig, "storage_class": self.storage_class})
