"""A GKE cluster for a workshop: one zonal (or regional) cluster, one node pool sized by
infra/platform/sizing.py, Dataplane V2 so the platform's NetworkPolicies are enforced, the Kubernetes
version pinned (no release channel, no auto-upgrade mid-workshop), deletion protection off so
`cd4ml down --cluster` can remove it. Its default StorageClass `standard-rwo` (pd-balanced, CSI) is
what the platform's volumes use. A regional static IP is reserved with the cluster for the ingress
controller's LoadBalancer: the DNS record set the evening before survives a `recreate` of the
platform, and goes with `down --cluster`."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.cluster import KUBERNETES_VERSION

STORAGE_CLASS = "standard-rwo"
NODE_DISK_GB = 100
NODE_ROLES = ("roles/container.defaultNodeServiceAccount", "roles/artifactregistry.reader")
"""The nodes' own service account and what it holds: the minimal node role GKE documents, and pulling
the kit's images from Artifact Registry. The Compute Engine default account the nodes otherwise run as
has no roles in organisations that disable automatic grants to default service accounts (the default
since May 2024), and then cannot pull the kit's images (GKE documentation; not testable here)."""


@dataclass(frozen=True)
class GkeClusterArgs:
    name: str
    project: str
    location: str
    machine_type: str
    node_count: int
    kubernetes_version: str = KUBERNETES_VERSION
    workshop_days: tuple[str, ...] = ()
    """Sorted ISO dates: no upgrade from the first one's start to the day after the last (UTC)."""


def maintenance_policy(days: tuple[str, ...]) -> gcp.container.ClusterMaintenancePolicyArgs | None:
    """A NO_UPGRADES exclusion over the workshop's days. Without a release channel GKE still upgrades the
    control plane (and, with it, may drain nodes); an exclusion is the one way to keep the days quiet, at most
    30 days for such a cluster (GKE documentation; the config validates the span). The dates are written
    down, not computed from today, so a second `up` sees no change."""
    if not days:
        return None
    import datetime

    end = datetime.date.fromisoformat(days[-1]) + datetime.timedelta(days=1)
    return gcp.container.ClusterMaintenancePolicyArgs(
        # GKE requires a window whenever exclusions are set: every night, outside the excluded days anyway.
        daily_maintenance_window=gcp.container.ClusterMaintenancePolicyDailyMaintenanceWindowArgs(start_time="02:00"),
        maintenance_exclusions=[gcp.container.ClusterMaintenancePolicyMaintenanceExclusionArgs(
            exclusion_name="cd4ml-workshop", start_time=f"{days[0]}T00:00:00Z", end_time=f"{end.isoformat()}T00:00:00Z",
            exclusion_options=gcp.container.ClusterMaintenancePolicyMaintenanceExclusionExclusionOptionsArgs(
                scope="NO_UPGRADES"))])


def region_of(location: str) -> str:
    """`europe-west1-b` (a zone) -> `europe-west1`; a region stays itself: a LoadBalancer's IP is regional."""
    head, _, tail = location.rpartition("-")
    return head if len(tail) == 1 and head.count("-") == 1 else location


def kubeconfig(name: str, endpoint: str, ca_certificate: str) -> str:
    """A kubeconfig that logs in through gcloud's auth plugin with the application-default credentials,
    the ones the GCP provider uses (`gcloud auth application-default login`, as the stack file says): without
    the flag the plugin asks `gcloud config config-helper` for the gcloud account's token instead
    (kubernetes/cloud-provider-gcp cmd/gke-gcloud-auth-plugin/main.go, flag
    use_application_default_credentials, default false), a second login a facilitator may not have."""
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
      args: ["--use_application_default_credentials"]
      provideClusterInfo: true
      installHint: Install gke-gcloud-auth-plugin (gcloud components install gke-gcloud-auth-plugin)
"""


class GkeCluster(pulumi.ComponentResource):
    kubeconfig: pulumi.Output[str]
    storage_class: pulumi.Output[str]
    ingress_address: pulumi.Output[str]
    """The reserved external IP the platform's ingress controller takes (its Service's loadBalancerIP)."""

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
            maintenance_policy=maintenance_policy(args.workshop_days),
            resource_labels={"app-kubernetes-io-part-of": "cd4ml"},
            opts=child)
        account_id = f"{args.name}-nodes"[:30]
        nodes = gcp.serviceaccount.Account(
            f"{name}-nodes", account_id=account_id, project=args.project,
            display_name="CD4ML workshop nodes", opts=child)
        # A user-managed account's address, known before it exists (so the plan shows it).
        nodes_email = f"{account_id}@{args.project}.iam.gserviceaccount.com"
        grants = [gcp.projects.IAMMember(
            f"{name}-nodes-{role.rsplit('.', 1)[-1]}", project=args.project, role=role,
            member=f"serviceAccount:{nodes_email}", opts=pulumi.ResourceOptions(parent=self, depends_on=[nodes]))
            for role in NODE_ROLES]
        gcp.container.NodePool(
            f"{name}-nodes", name="cd4ml-nodes", project=args.project, location=args.location, cluster=cluster.name,
            # No `version`: the pool starts at the control plane's exact version and, with auto-upgrade
            # off, stays there. Pinning it to the fuzzy "1.34" made every `up` see a diff against the
            # exact version GKE reports and send an upgrade, which can recreate every node mid-workshop.
            node_count=args.node_count,
            management=gcp.container.NodePoolManagementArgs(auto_repair=True, auto_upgrade=False),
            node_config=gcp.container.NodePoolNodeConfigArgs(
                machine_type=args.machine_type, disk_size_gb=NODE_DISK_GB, disk_type="pd-balanced",
                service_account=nodes_email,
                oauth_scopes=["https://www.googleapis.com/auth/cloud-platform"],
                labels={"app-kubernetes-io-part-of": "cd4ml"}),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[cluster, *grants]))
        self.kubeconfig = pulumi.Output.secret(pulumi.Output.all(
            cluster.name, cluster.endpoint, cluster.master_auth.cluster_ca_certificate).apply(
                lambda parts: kubeconfig(f"gke-{parts[0]}", parts[1], parts[2])))
        self.storage_class = pulumi.Output.from_input(STORAGE_CLASS)
        address = gcp.compute.Address(
            f"{name}-ingress", name=f"{args.name}-ingress", project=args.project, region=region_of(args.location),
            address_type="EXTERNAL", network_tier="PREMIUM", labels={"app-kubernetes-io-part-of": "cd4ml"},
            opts=child)
        self.ingress_address = address.address
        self.register_outputs({"kubeconfig": self.kubeconfig, "storage_class": self.storage_class,
                               "ingress_address": self.ingress_address})
