"""Runs the Pulumi program under Pulumi's own mocks and records every registration.

Pulumi's public mock surface is `pulumi.runtime.Mocks` (what a resource's state is) and
`pulumi.runtime.mocks.MockMonitor` (the engine's side of the ResourceMonitor protocol, which
`set_mocks` accepts). `Mocks.new_resource` is not told a resource's parent, dependencies or
deleteBeforeReplace, which the tests assert on, so the recorder extends MockMonitor's protocol methods
(RegisterResource, ReadResource: pulumi/proto/pulumi/resource.proto) and reads
values with `pulumi.runtime.rpc`'s public helpers only.

The runtime lives in ContextVars (the settings bag, the root stack, the config); `mocked_runtime` puts
every one of them back when it ends, so no test inherits another's mocks, stack or config.
"""

from __future__ import annotations

import contextvars
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockMonitor


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


class RecordingMonitor(MockMonitor):
    """MockMonitor that also keeps what each registration request carried, in order."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.registrations: list[Registration] = []

    def ReadResource(self, request):
        """Reads (a StackReference is one) are recorded like registrations, their id as `name`."""
        response = super().ReadResource(request)
        inputs = rpc.deserialize_properties(request.properties)
        self.registrations.append(Registration(
            urn=response.urn, type=request.type, name=request.name, parent=request.parent, custom=True,
            inputs={**inputs, "id": request.id}, dependencies=tuple(request.dependencies)))
        return response

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        inputs = rpc.deserialize_properties(request.object)
        self.registrations.append(Registration(
            urn=response.urn, type=request.type, name=request.name, parent=request.parent,
            custom=request.custom, inputs=inputs, dependencies=tuple(request.dependencies),
            delete_before_replace=request.deleteBeforeReplace))
        return response


def _restore(before: contextvars.Context) -> None:
    """Every ContextVar set now goes back to its value in `before`, or to its default if it had none."""
    for var, value in contextvars.copy_context().items():
        if var in before:
            if before[var] is not value:
                var.set(before[var])
            continue
        try:
            var.set(contextvars.Context().run(var.get))  # its default: what an untouched context reads
        except LookupError:  # no default: nothing to go back to
            pass


@contextmanager
def mocked_runtime(project: str = "cd4ml", stack: str = "local",
                   config: dict[str, Any] | None = None) -> Iterator[RecordingMonitor]:
    """Pulumi's mocks installed (`pulumi.runtime.set_mocks`) with `config` (keys like 'cd4ml:profile'),
    for the block; then the runtime as it was before, whatever the block did."""
    before = contextvars.copy_context()
    mocks = KitMocks()
    monitor = RecordingMonitor(mocks)
    try:
        pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=False, monitor=monitor)
        pulumi.runtime.set_all_config({k: v if isinstance(v, str) else json.dumps(v)
                                       for k, v in (config or {}).items()})
        yield monitor
    finally:
        _restore(before)


def run_program(config: dict[str, Any], stack: str = "local", project: str = "cd4ml",
                program: Callable[[], None] | None = None) -> RecordingMonitor:
    """Run the platform's program (or, for project cd4ml-cluster, the cluster's; or `program`) with
    `config` under mocks, and return what it registered; the runtime is put back afterwards."""
    if program is None and project == "cd4ml":
        from infra.program import run as program
    elif program is None:
        from infra.cluster.program import run as program

    with mocked_runtime(project, stack, config) as monitor:
        pulumi.runtime.test(program)()
    return monitor


def unsecret(value: Any) -> tuple[Any, bool]:
    """A registered input as (plain value, whether Pulumi carried it as a secret)."""
    return rpc.unwrap_rpc_secret(value), rpc.is_rpc_secret(value)
