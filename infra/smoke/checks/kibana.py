"""Kibana: available, connected to Elasticsearch (its own status says so), and the kit's data views
are there, so Discover shows the model events without anyone configuring it."""

from __future__ import annotations

from infra.platform.kibana import KibanaSettings
from infra.smoke.core import Check, CheckFailed, Diagnosis, SmokeContext
from infra.smoke.http import call, json_of
from infra.upstream.kibana import NEEDED_CORE_SERVICES, core_levels


def status(context: SmokeContext) -> str:
    """Kibana answers 503 while a core service is unavailable, else 200 (status.ts); the kit needs its
    Elasticsearch connection and saved objects. A degraded plugin is reported, not failed."""
    kibana = context.target("kibana")
    expect = " and ".join(f"core.{service} 'available'" for service in NEEDED_CORE_SERVICES)
    body = json_of(call(context, kibana, "GET", "/api/status", expect=expect, statuses=(200, 503)), kibana, expect)
    levels = core_levels(body)
    if levels["elasticsearch"] != "available":
        edge = context.edge("kibana", "elasticsearch")
        raise CheckFailed(Diagnosis(
            "kibana", f"{kibana.url}/api/status", expect, f"core.elasticsearch {levels['elasticsearch']!r}",
            f"Kibana cannot use Elasticsearch at {edge.url if edge else '?'}: check the ECK association "
            f"(Kibana.spec.elasticsearchRef) and Elasticsearch's health"))
    if any(level != "available" for level in levels.values()):
        raise CheckFailed(Diagnosis("kibana", f"{kibana.url}/api/status", expect,
                                    ", ".join(f"core.{s} {level!r}" for s, level in levels.items()),
                                    "Kibana's saved objects are not ready (migrations): read the Kibana pod's log"))
    overall = ((body.get("status") or {}).get("overall") or {}).get("level")
    return "Elasticsearch connected, saved objects ready" + (
        "" if overall == "available" else f" (overall {overall!r}: a plugin is busy, which the kit does not need)")


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
