"""The cloud machines the kit can size a cluster with, and their prices: pure data, read by the
config rules (which machine types are allowed) and by the sizing (how many nodes, what it costs)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Machine:
    name: str
    cpu_m: int
    memory_mi: int
    max_pods: int
    usd_per_hour: float


MACHINES: dict[str, dict[str, Machine]] = {
    # On-demand list prices, Linux: GKE in us-central1, EKS nodes in us-east-1 (published by Google Cloud
    # and AWS, 2025). Other regions cost up to ~30% more: an estimate to plan a budget with, not a bill.
    "gke": {m.name: m for m in (
        Machine("e2-standard-4", 4000, 16384, 110, 0.134),
        Machine("e2-standard-8", 8000, 32768, 110, 0.268),
        Machine("e2-standard-16", 16000, 65536, 110, 0.536),
    )},
    "eks": {m.name: m for m in (  # max pods: the VPC CNI's ENI limit for the type
        Machine("m6i.xlarge", 4000, 16384, 58, 0.192),
        Machine("m6i.2xlarge", 8000, 32768, 58, 0.384),
        Machine("m6i.4xlarge", 16000, 65536, 234, 0.768),
    )},
}
DEFAULT_MACHINE = {"gke": "e2-standard-8", "eks": "m6i.2xlarge"}
CONTROL_PLANE_USD_PER_HOUR = {"gke": 0.10, "eks": 0.10}
"""GKE's cluster management fee (one zonal cluster per billing account is covered by the free tier)
and EKS's control plane, standard support."""
