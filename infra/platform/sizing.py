"""How many nodes of which machine a cloud cluster needs for N participants, and what it costs.

From the platform's own numbers, not a guess: the summed requests of every workload the model
declares (`Platform.requests`), plus, per participant, what a workshop runs at its busiest — one
elastic agent pod per participant (everyone triggers their pipeline at once) and the model service
in each of their environments (charts/ml-app's requests) — plus, per node, the DaemonSets (Fluentd
and the provider's own). Nodes are filled to their allocatable capacity minus `HEADROOM`, and never
beyond their pod limit. Pure: the cluster stacks, `cd4ml plan` and `cd4ml status` all call it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import yaml

from infra.config import Profile
from infra.machines import CONTROL_PLANE_USD_PER_HOUR, DEFAULT_MACHINE, MACHINES, Machine
from infra.paths import CHARTS_DIR
from infra.platform.gocd import AGENT_SIZES
from infra.platform.model import Platform

HEADROOM = 0.25
"""Kept free on every node: rolling updates, a second pipeline run, a participant's extra pod."""
MIN_NODES = 2
"""A node's upgrade or failure must not stop the workshop."""
SYSTEM_DAEMONS_PER_NODE = (200, 300)
"""(millicores, MiB) the provider's own DaemonSets request on each node (CNI, kube-proxy, metadata and
logging agents): GKE's and EKS's defaults measure 150-250m and 200-350Mi."""
ML_APP_VALUES = CHARTS_DIR / "ml-app" / "values.yaml"


def hourly_usd(provider: str, machine_type: str, nodes: int) -> float:
    """The cluster's estimated on-demand cost per hour: nodes at list price plus the control plane."""
    return round(nodes * MACHINES[provider][machine_type].usd_per_hour + CONTROL_PLANE_USD_PER_HOUR[provider], 2)


def allocatable(machine: Machine) -> tuple[int, int]:
    """(millicores, MiB) left for pods after the kubelet's reservations, GKE's documented formula
    (EKS's AMI reserves about the same): CPU 6% of the first core, 1% of the next, 0.5% of the next
    two, 0.25% above four; memory 25% of the first 4 GiB, 20% of the next 4, 10% of the next 8, 6% of
    the next 112, 2% above, plus 100 MiB for eviction."""
    cores = machine.cpu_m / 1000
    cpu_reserved = 60 + 10 * min(max(cores - 1, 0), 1) + 5 * min(max(cores - 2, 0), 2) + 2.5 * max(cores - 4, 0)
    gib = machine.memory_mi / 1024
    tiers = ((4, 0.25), (4, 0.20), (8, 0.10), (112, 0.06), (math.inf, 0.02))
    reserved_gib, left = 0.0, gib
    for size, share in tiers:
        step = min(left, size)
        reserved_gib += step * share
        left -= step
    return int(machine.cpu_m - cpu_reserved), int(machine.memory_mi - reserved_gib * 1024 - 100)


def _ml_app_requests() -> tuple[int, int]:
    """(millicores, MiB) charts/ml-app requests, read as Kubernetes reads quantities."""
    from kubernetes.utils.quantity import parse_quantity  # only sizing needs the client library

    requests = yaml.safe_load(ML_APP_VALUES.read_text())["resources"]["requests"]
    return int(parse_quantity(requests["cpu"]) * 1000), int(parse_quantity(requests["memory"]) / 2**20)


@dataclass(frozen=True)
class NodePlan:
    provider: str
    machine: Machine
    nodes: int
    participants: int
    requested_cpu_m: int
    requested_memory_mi: int
    pods: int
    limited_by: str

    @property
    def usd_per_hour(self) -> float:
        return hourly_usd(self.provider, self.machine.name, self.nodes)

    def as_dict(self) -> dict[str, Any]:
        return {"provider": self.provider, "machineType": self.machine.name, "nodes": self.nodes,
                "participants": self.participants, "requestedCpuMillicores": self.requested_cpu_m,
                "requestedMemoryMiB": self.requested_memory_mi, "pods": self.pods, "limitedBy": self.limited_by,
                "usdPerHour": self.usd_per_hour}


def plan_nodes(platform: Platform, provider: str, machine_type: str = "") -> NodePlan:
    machine = MACHINES[provider][machine_type or DEFAULT_MACHINE[provider]]
    agents = max(len(platform.tenants), 1)  # one busy agent pod per tenant
    model_services = len({e.provider.namespace for e in platform.wiring if e.kind == "deploy"})
    agent = AGENT_SIZES[Profile(platform.profile)]
    app_cpu, app_memory = _ml_app_requests()
    cpu = platform.requests["cpu_millicores"] + agents * agent.cpu_request_m + model_services * app_cpu
    memory = platform.requests["memory_mib"] + agents * agent.memory_request_mi + model_services * app_memory
    pods = sum(w.replicas for w in platform.workloads) + agents + model_services
    per_node = _daemon_requests(platform)
    alloc_cpu, alloc_memory = allocatable(machine)
    needs = {"cpu": math.ceil(cpu / (alloc_cpu * (1 - HEADROOM) - per_node[0])),
             "memory": math.ceil(memory / (alloc_memory * (1 - HEADROOM) - per_node[1])),
             "pods": math.ceil(pods / (machine.max_pods * (1 - HEADROOM) - per_node[2]))}
    limited_by = max(needs, key=lambda k: needs[k])
    nodes = max(MIN_NODES, needs[limited_by])
    return NodePlan(provider, machine, nodes, len(platform.tenants), cpu, memory, pods,
                    limited_by if needs[limited_by] >= MIN_NODES else "minimum")


def _daemon_requests(platform: Platform) -> tuple[int, int, int]:
    """Per node: the platform's DaemonSets (counted once in Platform.requests) and the provider's."""
    daemons = [w for w in platform.workloads if w.kind == "DaemonSet"]
    cpu = sum(c.resources.cpu_request_m for w in daemons for c in w.containers) + SYSTEM_DAEMONS_PER_NODE[0]
    memory = sum(c.resources.memory_request_mi for w in daemons for c in w.containers) + SYSTEM_DAEMONS_PER_NODE[1]
    return cpu, memory, len(daemons) + 4
