"""The cloud cluster stacks (infra/cluster/gke.py, eks.py) under Pulumi's mocks, and the node sizing
they are given (infra/platform/sizing.py) for 1, 30 and 100 participants. Nothing here reaches a
cloud: that a real GCP or AWS account accepts these resources is for `cd4ml up --stack gke|eks`."""

from __future__ import annotations

import functools
from pathlib import Path

import pulumi
import pytest
from pulumi.runtime.sync_await import _sync_await
from pulumi_harness import run_program, unsecret
from stack_settings import workshop

from infra.cluster import KUBERNETES_VERSION
from infra.config import ConfigError, load_config
from infra.platform.build import build_platform
from infra.platform.sizing import HEADROOM, MACHINES, MIN_NODES, _daemon_requests, allocatable, plan_nodes


def by_type(monitor, resource_type: str):
    return [r for r in monitor.registrations if r.type == resource_type]


def cluster(provider: str, **extra):
    config = {"cd4ml-cluster:provider": provider, "cd4ml-cluster:region": "europe-west1-b",
              "cd4ml-cluster:machineType": "e2-standard-8" if provider == "gke" else "m6i.2xlarge",
              "cd4ml-cluster:nodeCount": "3", **extra}
    if provider == "gke":
        config["cd4ml-cluster:project"] = "workshop-project"
    return run_program(config, stack="gke" if provider == "gke" else "eks", project="cd4ml-cluster")


def test_gke_cluster_is_pinned_enforces_policies_and_has_the_sized_pool():
    monitor = cluster("gke")
    [component] = by_type(monitor, "cd4ml:cluster:GkeCluster")
    [gke] = by_type(monitor, "gcp:container/cluster:Cluster")
    assert gke.parent == component.urn
    assert gke.inputs["minMasterVersion"] == KUBERNETES_VERSION and gke.inputs["releaseChannel"] == {
        "channel": "UNSPECIFIED"}
    assert gke.inputs["datapathProvider"] == "ADVANCED_DATAPATH"  # Dataplane V2: NetworkPolicies enforced
    assert gke.inputs["deletionProtection"] is False and gke.inputs["removeDefaultNodePool"] is True
    assert (gke.inputs["project"], gke.inputs["location"], gke.inputs["name"]) == (
        "workshop-project", "europe-west1-b", "cd4ml-gke")
    [pool] = by_type(monitor, "gcp:container/nodePool:NodePool")
    assert pool.parent == component.urn and pool.inputs["nodeCount"] == 3
    # The pool follows the control plane's exact version once: a fuzzy "1.34" here diffs on every `up`.
    assert "version" not in pool.inputs and pool.inputs["management"]["autoUpgrade"] is False
    assert pool.inputs["nodeConfig"]["machineType"] == "e2-standard-8"
    # The nodes run as their own account, which may pull from Artifact Registry (not the default one).
    [account] = by_type(monitor, "gcp:serviceaccount/account:Account")
    assert account.parent == component.urn
    email = f"{account.inputs['accountId']}@workshop-project.iam.gserviceaccount.com"
    assert pool.inputs["nodeConfig"]["serviceAccount"] == email
    roles = {m.inputs["role"] for m in by_type(monitor, "gcp:projects/iAMMember:IAMMember")}
    assert roles == {"roles/container.defaultNodeServiceAccount", "roles/artifactregistry.reader"}


def test_eks_cluster_is_pinned_enforces_policies_and_has_a_default_storage_class():
    monitor = cluster("eks")
    [component] = by_type(monitor, "cd4ml:cluster:EksCluster")
    [eks] = by_type(monitor, "eks:index:Cluster")
    assert eks.parent == component.urn
    assert eks.inputs["version"] == KUBERNETES_VERSION and eks.inputs["instanceType"] == "m6i.2xlarge"
    assert eks.inputs["desiredCapacity"] == eks.inputs["minSize"] == eks.inputs["maxSize"] == 3
    assert eks.inputs["vpcCniOptions"]["enableNetworkPolicy"] is True
    assert eks.inputs["storageClasses"]["gp3"]["default"] is True
    assert eks.inputs["storageClasses"]["gp3"]["metadata"]["name"] == "gp3"  # not auto-named gp3-<suffix>
    [provider] = by_type(monitor, "pulumi:providers:aws")
    assert provider.inputs["region"] == "europe-west1-b"
    [attachment] = by_type(monitor, "aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    assert attachment.inputs["policyArn"].endswith("/AmazonEBSCSIDriverPolicy")
    [role] = by_type(monitor, "aws:iam/role:Role")
    assert "pods.eks.amazonaws.com" in role.inputs["assumeRolePolicy"]  # only the CSI controller's SA gets it
    addons = {r.inputs["addonName"]: r for r in by_type(monitor, "aws:eks/addon:Addon")}
    assert set(addons) == {"eks-pod-identity-agent", "aws-ebs-csi-driver"}
    csi = addons["aws-ebs-csi-driver"].inputs
    assert csi["clusterName"] == "cd4ml-eks"
    assert csi["podIdentityAssociations"][0]["serviceAccount"] == "ebs-csi-controller-sa"


@pytest.mark.parametrize("provider", ["gke", "eks"])
def test_the_kubeconfig_is_a_secret_output(provider, monkeypatch):
    """The component's kubeconfig, exported as `kubeconfig`, is carried as a Pulumi secret."""
    seen = {}
    original = pulumi.export

    def record(name, value):
        seen[name] = value
        original(name, value)

    monkeypatch.setattr(pulumi, "export", record)
    cluster(provider)
    assert {"kubeconfig", "storageClass", "provider", "machineType", "nodeCount"} <= set(seen)
    kubeconfig = seen["kubeconfig"]
    assert _sync_await(kubeconfig.is_secret()) is True
    assert _sync_await(kubeconfig.future()).startswith(("apiVersion: v1", '{"apiVersion"'))


def test_gke_reserves_the_ingress_controllers_address_with_the_cluster(monkeypatch):
    """The DNS record set the evening before must survive `recreate` (which deletes the platform's
    load balancer): the address belongs to the cluster stack, in the cluster's region."""
    seen = {}
    original = pulumi.export
    monkeypatch.setattr(pulumi, "export", lambda name, value: (seen.__setitem__(name, value), original(name, value)))
    monitor = cluster("gke")
    [component] = by_type(monitor, "cd4ml:cluster:GkeCluster")
    [address] = by_type(monitor, "gcp:compute/address:Address")
    assert address.parent == component.urn
    assert (address.inputs["region"], address.inputs["addressType"], address.inputs["project"]) == (
        "europe-west1", "EXTERNAL", "workshop-project")
    assert _sync_await(seen["ingressAddress"].future()) == "203.0.113.50"
    assert not by_type(cluster("eks"), "gcp:compute/address:Address")


@pytest.mark.parametrize("location, region", [("europe-west1-b", "europe-west1"), ("europe-west1", "europe-west1"),
                                              ("northamerica-northeast1-a", "northamerica-northeast1")])
def test_a_zonal_clusters_address_is_in_its_region(location, region):
    from infra.cluster.gke import region_of

    assert region_of(location) == region


@pytest.mark.parametrize("provider, expected", [("gke", "203.0.113.50"), ("eks", None)])
def test_the_gke_platforms_controller_takes_the_reserved_address(provider, expected):
    from infra.config import load_stack

    stacks = Path(__file__).resolve().parents[1] / "stacks"
    settings = {f"cd4ml:{k}": v for k, v in load_stack(stacks, provider).model_dump(by_alias=True).items()}
    monitor = run_program({**{k: v for k, v in settings.items() if v not in (None, "", [], {})},
                           "cd4ml:clusterStack": f"organization/cd4ml-cluster/{provider}"}, stack=provider)
    [traefik] = [r for r in monitor.registrations if r.type == "kubernetes:helm.sh/v3:Release"
                 and r.inputs["name"] == "traefik"]
    spec = traefik.inputs["values"]["service"]["spec"]
    assert spec.get("loadBalancerIP") == expected and spec["type"] == "LoadBalancer"


def test_an_unknown_provider_fails_before_creating_anything():
    with pytest.raises(Exception, match="must be one of kind, gke, eks"):
        cluster("aks")


@pytest.fixture(scope="module")
def workshop_of():
    """`workshop_of(n)`: the model of a cluster-profile workshop of n (a second of building at 100),
    built once per n for the tests here, which only read it."""
    return functools.cache(lambda participants: build_platform(
        load_config(workshop(participants=participants)), "w"))


@pytest.mark.parametrize("participants, gke_nodes, eks_nodes", [(1, 2, 2), (30, 4, 4), (100, 9, 9)])
def test_nodes_for_n_participants(workshop_of, participants, gke_nodes, eks_nodes):
    platform = workshop_of(participants)
    for provider, expected in (("gke", gke_nodes), ("eks", eks_nodes)):
        plan = plan_nodes(platform, provider)
        assert plan.nodes == expected, plan.as_dict()
        alloc_cpu, alloc_memory = allocatable(plan.machine)
        # What is asked fits with the headroom kept free, and one node fewer would not do (unless at the minimum).
        assert plan.requested_cpu_m <= plan.nodes * alloc_cpu * (1 - HEADROOM)
        assert plan.requested_memory_mi <= plan.nodes * alloc_memory * (1 - HEADROOM)
        per_node_cpu = _daemon_requests(platform)[0]  # the DaemonSets every node runs
        assert plan.nodes == MIN_NODES or plan.requested_cpu_m > (plan.nodes - 1) * (
            alloc_cpu * (1 - HEADROOM) - per_node_cpu)


def test_sizing_grows_with_participants_and_fits_pods_on_small_machines(workshop_of):
    counts = [plan_nodes(workshop_of(n), "eks", "m6i.xlarge") for n in (10, 50, 100)]
    assert [c.nodes for c in counts] == sorted(c.nodes for c in counts) and counts[0].nodes < counts[-1].nodes
    biggest = counts[-1]
    assert biggest.pods <= biggest.nodes * MACHINES["eks"]["m6i.xlarge"].max_pods * (1 - HEADROOM)


def test_cost_is_nodes_times_price_plus_control_plane(workshop_of):
    platform = workshop_of(30)
    plan = plan_nodes(platform, "gke", "e2-standard-8")
    assert plan.usd_per_hour == round(plan.nodes * 0.268 + 0.10, 2)


def test_a_machine_outside_the_price_table_is_refused():
    with pytest.raises(ConfigError, match="machineType"):
        load_config({"cd4ml:profile": "cluster", "cd4ml:clusterProvider": "gke", "cd4ml:cloudProject": "p",
                     "cd4ml:cloudRegion": "europe-west1-b", "cd4ml:machineType": "n1-highmem-96"})
    assert unsecret("x") == ("x", False)


def test_the_gke_kubeconfig_logs_in_with_the_credentials_the_provider_uses():
    """One login for the facilitator: the GCP provider and the kubeconfig's auth plugin both use the
    application-default credentials (the plugin's flag; without it, gcloud's own account)."""
    import yaml

    from infra.cluster.gke import kubeconfig

    config = yaml.safe_load(kubeconfig("gke-cd4ml", "203.0.113.10", "Q0E="))
    (user,) = config["users"]
    assert user["user"]["exec"]["command"] == "gke-gcloud-auth-plugin"
    assert user["user"]["exec"]["args"] == ["--use_application_default_credentials"]


def test_gke_upgrades_nothing_during_the_workshops_days():
    """Without a release channel GKE still upgrades the control plane: the workshop's days, written in the
    stack (`workshopDays`), become a NO_UPGRADES exclusion from the first day's start to the last day's end."""
    monitor = cluster("gke", **{"cd4ml-cluster:workshopDays": "2026-12-08,2026-12-09"})
    [gke] = by_type(monitor, "gcp:container/cluster:Cluster")
    (exclusion,) = gke.inputs["maintenancePolicy"]["maintenanceExclusions"]
    assert (exclusion["startTime"], exclusion["endTime"]) == ("2026-12-08T00:00:00Z", "2026-12-10T00:00:00Z")
    assert exclusion["exclusionOptions"]["scope"] == "NO_UPGRADES"
    [plain] = by_type(cluster("gke"), "gcp:container/cluster:Cluster")
    assert "maintenancePolicy" not in plain.inputs
