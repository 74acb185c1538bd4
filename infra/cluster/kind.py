"""A kind cluster as a Pulumi resource: created by `kind create cluster`, deleted by `kind delete
cluster` when the stack is destroyed, its kubeconfig a secret output."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_command as command


@dataclass(frozen=True, kw_only=True)
class KindClusterArgs:
    name: str
    node_image: str
    kind: str = "kind"
    """The kind binary (the lifecycle installs a pinned one into .tools/bin when none is on PATH)."""


class KindCluster(pulumi.ComponentResource):
    kubeconfig: pulumi.Output[str]
    context: pulumi.Output[str]

    def __init__(self, name: str, args: KindClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cd4ml:cluster:KindCluster", name, None, opts)
        cluster = command.local.Command(
            f"{name}-cluster",
            create=f"{args.kind} create cluster --name {args.name} --image {args.node_image} --wait 5m",
            delete=f"{args.kind} delete cluster --name {args.name}",
            # A new node image means a new cluster; kind refuses a second cluster of the same name
            # ("node(s) already exist"), so the old one goes first, not after (Pulumi's default).
            triggers=[args.node_image, args.name],
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True))
        kubeconfig = command.local.Command(
            f"{name}-kubeconfig",
            create=f"{args.kind} get kubeconfig --name {args.name}",
            # A new cluster has a new API server port and certificates: read its kubeconfig again.
            triggers=[cluster.id],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[cluster], additional_secret_outputs=["stdout"]))
        self.kubeconfig = pulumi.Output.secret(kubeconfig.stdout)
        self.context = pulumi.Output.from_input(f"kind-{args.name}")
        self.register_outputs({"kubeconfig": self.kubeconfig, "context": self.context})
