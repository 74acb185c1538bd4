"""Kibana: available, connected to Elasticsearch (its own status says so), and the kit's data views
are there, so Discover shows the model events without anyone configuring it."""

from __future__ import annotations

from infra.platform.kibana import KibanaSettings
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
        edge = context.edge("kibana", "elasticsearch")
        raise CheckFailed(Diagnosis(
            "kibana", f"{kibana.url}/api/status", expect, f"core.elasticsearch {elasticsearch!r}",
            f"Kibana cannot use Elasticsearch at {edge.url if edge else '?'}: check the ECK association "
            f"(Kibana.spec.elasticsearchRef) and Elasticsearch's health"))
    if overall != "available":
        raise CheckFailed(Diagnosis("kibana", f"{kibana.url}/api/status", expect, f"overall {overall!r}",
                                    "a Kibana plugin is degraded; read the Kibana pod's log"))
    return "available, Elasticsearch connected"


def data_views(context: SmokeContext) -> str:
    kibana, service = context.target("kibana"), context.service("kibana")
    settings = context.settings(KibanaSettings)
    hint = (f"the configure Job did not finish: kubectl -n {service.namespace} logs -l "
            "app.kubernetes.io/component=kibana-configure")
    for view in settings.data_views:
        path = f"/api/data_views/data_view/{view.id}"
        expect = f"data view {view.id} over {view.title}"
        answer = call(context, kibana, "GET", path, expect=expect, statuses=(200, 404))
        found = json_of(answer, kibana, expect).get("data_view") or {}
        if found.get("title") != view.title:
            raise CheckFailed(Diagnosis("kibana", f"{kibana.url}{path}", expect,
                                        "missing" if answer.status_code == 404 else f"title {found.get('title')!r}",
                                        hint))
    expect = f"default data view {settings.default_data_view}"
    default = json_of(call(context, kibana, "GET", "/api/data_views/default", expect=expect), kibana, expect)
    if default.get("data_view_id") != settings.default_data_view:
        raise CheckFailed(Diagnosis("kibana", f"{kibana.url}/api/data_views/default", expect,
                                    f"{default.get('data_view_id')!r}", hint))
    return f"data views {', '.join(v.id for v in settings.data_views)}"


CHECKS = (
    Check("kibana.status", "kibana", status),
    Check("kibana.data-views", "kibana", data_views),
)
