"""Runs the Pulumi program under Pulumi's own mocks and records every registration."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks


@dataclass(frozen=True)
class Registration:
    urn: str
    type: str
    name: str
    parent: str
    custom: bool
    inputs: dict[str, Any]
    dependencies: tuple[str, ...]
    delete_before_replace: bool = False


class KitMocks(pulumi.runtime.Mocks):
    """Every resource gets its inputs back as state; a random password gets a recognisable value."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        state = dict(args.inputs)
        if args.typ == "pulumi:pulumi:StackReference":
            state["outputs"] = {"kubeconfig": "apiVersion: v1\nkind: Config  # mock kubeconfig of the cluster stack",
                                "ingressAddress": "203.0.113.50"}
        if args.typ == "gcp:compute/address:Address":
            state["address"] = "203.0.113.50"
        if args.typ == "gcp:container/cluster:Cluster":
            state.update(endpoint="203.0.113.10", masterAuth={"clusterCaCertificate": "bW9jay1jYQ=="})
        if args.typ == "eks:index:Cluster":
            state["kubeconfigJson"] = '{"apiVersion": "v1", "kind": "Config", "clusters": "mock eks"}'
        if args.typ == "kubernetes:helm.sh/v3:Release":  # what the provider reports once installed
            state["status"] = {"name": args.inputs.get("name"), "namespace": args.inputs.get("namespace")}
        if args.typ == "random:index/randomPassword:RandomPassword":
            state["result"] = f"mock-password-for-{args.name}"
            state["bcrypt_hash"] = f"$2a$10$mock-bcrypt-of-{args.name}"
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}


class RecordingMonitor(pulumi_mocks.MockMonitor):
    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.registrations: list[Registration] = []

    def ReadResource(self, request):
        """Reads (a StackReference is one) are recorded like registrations, their id as `name`."""
        response = super().ReadResource(request)
        inputs = pulumi_mocks.rpc.deserialize_properties(request.properties)
        self.registrations.append(Registration(
            urn=response.urn, type=request.type, name=request.name, parent=request.parent, custom=True,
            inputs={**inputs, "id": request.id}, dependencies=tuple(request.dependencies)))
        return response

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        inputs = pulumi_mocks.rpc.deserialize_properties(request.object)
        self.registrations.append(Registration(
            urn=response.urn, type=request.type, name=request.name, parent=request.parent,
            custom=request.custom, inputs=inputs, dependencies=tuple(request.dependencies),
            delete_before_replace=request.deleteBeforeReplace))
        return response


def run_program(config: dict[str, Any], stack: str = "local", project: str = "cd4ml") -> RecordingMonitor:
    """Run the platform's program (or, for project cd4ml-cluster, the cluster's) with `config` (keys like
    'cd4ml:profile') under mocks."""
    if project == "cd4ml":
        from infra.program import run
    else:
        from infra.cluster.program import run

    mocks = KitMocks()
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=False, monitor=monitor)
    pulumi.runtime.set_all_config({k: v if isinstance(v, str) else __import__("json").dumps(v)
                                   for k, v in config.items()})

    @pulumi.runtime.test
    def program():
        run()

    program()
    return monitor


def unsecret(value: Any) -> tuple[Any, bool]:
    """A registered input as (plain value, whether Pulumi carried it as a secret)."""
    from pulumi.runtime import rpc

    if isinstance(value, dict) and value.get(rpc._special_sig_key) == rpc._special_secret_sig:
        return value["value"], True
    return value, False
