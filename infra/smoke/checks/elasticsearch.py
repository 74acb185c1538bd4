"""Elasticsearch: the cluster answers with authentication and is not red; the retention policy
and the index templates the kit installs are in place (without them a laptop disk fills up and
the first day's indices get the wrong mappings)."""

from __future__ import annotations

from infra.platform.elasticsearch import ElasticsearchSettings
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


CONFIGURE_HINT = ("the configure Job did not finish before consumers wrote: kubectl -n {namespace} logs -l "
                  "app.kubernetes.io/component=elasticsearch-configure")


def index_templates(context: SmokeContext) -> str:
    es, service = context.target("elasticsearch"), context.service("elasticsearch")
    settings, hint = context.settings(ElasticsearchSettings), CONFIGURE_HINT.format(namespace=service.namespace)
    policy = settings.retention_policy
    expect = f"lifecycle policy {policy} deleting indices after {settings.retention_days}d"
    answer = call(context, es, "GET", f"/_ilm/policy/{policy}", expect=expect, statuses=(200, 404))
    phases = (json_of(answer, es, expect).get(policy) or {}).get("policy", {}).get("phases", {})
    if answer.status_code == 404 or phases.get("delete", {}).get("min_age") != f"{settings.retention_days}d":
        raise CheckFailed(Diagnosis("elasticsearch", f"{es.url}/_ilm/policy/{policy}", expect,
                                    "missing" if answer.status_code == 404 else f"phases {phases}", hint))
    for name in settings.index_templates:
        expect = f"index template {name} with lifecycle {policy} and {settings.replicas} replica(s)"
        answer = call(context, es, "GET", f"/_index_template/{name}", expect=expect, statuses=(200, 404))
        found = json_of(answer, es, expect).get("index_templates") or [{}]
        index = found[0].get("index_template", {}).get("template", {}).get("settings", {}).get("index", {})
        seen = {"lifecycle": (index.get("lifecycle") or {}).get("name"), "replicas": index.get("number_of_replicas")}
        if seen != {"lifecycle": policy, "replicas": str(settings.replicas)}:
            raise CheckFailed(Diagnosis("elasticsearch", f"{es.url}/_index_template/{name}", expect,
                                        "missing" if answer.status_code == 404 else str(seen), hint))
    return f"policy {policy} ({settings.retention_days}d), templates {', '.join(settings.index_templates)}"


CHECKS = (
    Check("elasticsearch.health", "elasticsearch", cluster_health),
    Check("elasticsearch.index-templates", "elasticsearch", index_templates),
)
