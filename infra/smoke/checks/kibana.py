"""Kibana: available, and connected to Elasticsearch (its own status says so)."""

from __future__ import annotations

from infra.smoke.core import Check, CheckFailed, Diagnosis, SmokeContext
from infra.smoke.http import call, json_of


def status(context: SmokeContext) -> str:
    kibana = context.target("kibana")
    expect = "overall level 'available' and core.elasticsearch 'available'"
    body = json_of(call(context, kibana, "GET", "/api/status", expect=expect), kibana, expect)
    statuses = body.get("status", {})
    overall = statuses.get("overall", {}).get("level")
    elasticsearch = statuses.get("core", {}).get("elasticsearch", {}).get("level")
    if elasticsearch != "available":
        edge = context.edge("kibana", "elasticsearch") or {}
        raise CheckFailed(Diagnosis(
            "kibana", f"{kibana.url}/api/status", expect, f"core.elasticsearch {elasticsearch!r}",
            f"Kibana cannot use Elasticsearch at {edge.get('url', '?')}: check the ECK association "
            f"(Kibana.spec.elasticsearchRef) and Elasticsearch's health"))
    if overall != "available":
        raise CheckFailed(Diagnosis("kibana", f"{kibana.url}/api/status", expect, f"overall {overall!r}",
                                    "a Kibana plugin is degraded; read the Kibana pod's log"))
    return "available, Elasticsearch connected"


CHECKS = (Check("kibana.status", "kibana", status),)
