"""Elasticsearch: the cluster answers with authentication and is not red."""

from __future__ import annotations

from infra.smoke.core import Check, CheckFailed, Diagnosis, SmokeContext
from infra.smoke.http import call, json_of


def cluster_health(context: SmokeContext) -> str:
    es = context.target("elasticsearch")
    expect = "cluster health green or yellow"
    health = json_of(call(context, es, "GET", "/_cluster/health", expect=expect), es, expect)
    status = health.get("status")
    if status not in ("green", "yellow"):
        raise CheckFailed(Diagnosis(
            "elasticsearch", f"{es.url}/_cluster/health", expect, f"status {status!r}, "
            f"{health.get('unassigned_shards', '?')} unassigned shards",
            "a primary shard is unassigned: a node is down or its disk is full (watermarks); see "
            "GET _cluster/allocation/explain"))
    return f"status {status}, {health.get('number_of_nodes', '?')} node(s)"


CHECKS = (Check("elasticsearch.health", "elasticsearch", cluster_health),)
