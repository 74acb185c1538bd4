"""An EKS cluster for a workshop (pulumi-eks): a managed control plane at the pinned Kubernetes
version, one node group sized by infra/platform/sizing.py in the default VPC, the VPC CNI with
network policy enforcement on, the EBS CSI driver (its IAM rights bound to its own ServiceAccount
through EKS Pod Identity), and a default StorageClass `gp3` the platform's volumes use.
`cd4ml down --cluster` destroys all of it."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_eks as eks

from infra.cluster import KUBERNETES_VERSION

STORAGE_CLASS = "gp3"
NODE_DISK_GB = 100
EBS_CSI_POLICY = "arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"
EBS_CSI_SERVICE_ACCOUNT = "ebs-csi-controller-sa"
ASSUMED_BY_POD_IDENTITY = ('{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": '
                           '{"Service": "pods.eks.amazonaws.com"}, "Action": ["sts:AssumeRole", "sts:TagSession"]}]}')


@dataclass(frozen=True)
class EksClusterArgs:
    name: str
    region: str
    machine_type: str
    node_count: int
    kubernetes_version: str = KUBERNETES_VERSION


class EksCluster(pulumi.ComponentResource):
    kubeconfig: pulumi.Output[str]
    storage_class: pulumi.Output[str]

    def __init__(self, name: str, args: EksClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cd4ml:cluster:EksCluster", name, None, opts)
        region = aws.Provider(f"{name}-aws", region=args.region, opts=pulumi.ResourceOptions(parent=self))
        on_aws = pulumi.ResourceOptions(parent=self, providers={"aws": region})
        cluster = eks.Cluster(
            name, name=args.name, version=args.kubernetes_version,
            instance_type=args.machine_type, desired_capacity=args.node_count, min_size=args.node_count,
            max_size=args.node_count, node_root_volume_size=NODE_DISK_GB,
            vpc_cni_options=eks.VpcCniOptionsArgs(enable_network_policy=True),  # enforce NetworkPolicies
            # The class's name given, not left to the map key: pulumi-eks creates it with the metadata it
            # is passed (nodejs/eks/storageclass.ts, createStorageClass), and without a name Pulumi
            # auto-names it `gp3-<suffix>`, which the platform's claims, asking for `gp3`, never find.
            storage_classes={STORAGE_CLASS: eks.StorageClassArgs(
                type="gp3", default=True, encrypted=True, allow_volume_expansion=True,
                volume_binding_mode="WaitForFirstConsumer", metadata={"name": STORAGE_CLASS})},
            tags={"app.kubernetes.io/part-of": "cd4ml"},
            opts=on_aws)
        # Kubernetes 1.23+ provisions EBS volumes through the CSI driver. Its rights go to its controller's
        # ServiceAccount alone (EKS Pod Identity), not to every pod on the nodes.
        after_cluster = pulumi.ResourceOptions.merge(on_aws, pulumi.ResourceOptions(depends_on=[cluster]))
        agent = aws.eks.Addon(f"{name}-pod-identity-agent", cluster_name=args.name,
                              addon_name="eks-pod-identity-agent", opts=after_cluster)
        role = aws.iam.Role(f"{name}-ebs-csi", assume_role_policy=ASSUMED_BY_POD_IDENTITY, opts=on_aws)
        attached = aws.iam.RolePolicyAttachment(f"{name}-ebs-csi", role=role.name, policy_arn=EBS_CSI_POLICY,
                                                opts=on_aws)
        aws.eks.Addon(f"{name}-ebs-csi-driver", cluster_name=args.name, addon_name="aws-ebs-csi-driver",
                      pod_identity_associations=[aws.eks.AddonPodIdentityAssociationArgs(
                          role_arn=role.arn, service_account=EBS_CSI_SERVICE_ACCOUNT)],
                      opts=pulumi.ResourceOptions.merge(after_cluster, pulumi.ResourceOptions(
                          depends_on=[cluster, agent, attached])))
        self.kubeconfig = pulumi.Output.secret(cluster.kubeconfig_json)
        self.storage_class = pulumi.Output.from_input(STORAGE_CLASS)
        self.register_outputs({"kubeconfig": self.kubeconfig, "storage_class": self.storage_class})
