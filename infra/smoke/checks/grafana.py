"""Grafana: healthy; every datasource the kit provisions is there, points where the wiring graph
says, and passes Grafana's own health check; the kit's dashboards are provisioned and every panel
queries a datasource the kit provisions."""

from __future__ import annotations

from infra.platform.grafana import DATASOURCES, GrafanaSettings
from infra.smoke.core import Check, CheckFailed, Diagnosis, Skip, SmokeContext
from infra.smoke.http import call, json_of


def health(context: SmokeContext) -> str:
    grafana = context.target("grafana")
    expect = 'HTTP 200 {"database": "ok"}'
    body = json_of(call(context, grafana, "GET", "/api/health", expect=expect), grafana, expect)
    if body.get("database") != "ok":
        raise CheckFailed(Diagnosis("grafana", f"{grafana.url}/api/health", expect, str(body),
                                    "Grafana cannot use its own database (volume or permissions)"))
    return f"version {body.get('version', '?')}"


def datasources(context: SmokeContext) -> str:
    grafana = context.target("grafana")
    edge = context.edge("grafana", "elasticsearch")
    for uid in DATASOURCES:
        expect = f"datasource {uid} pointing at {edge.url if edge else None}"
        source = json_of(call(context, grafana, "GET", f"/api/datasources/uid/{uid}", expect=expect), grafana, expect)
        if (edge and edge.url) and source.get("url", "").rstrip("/") != edge.url.rstrip("/"):
            raise CheckFailed(Diagnosis("grafana", f"{grafana.url}/api/datasources/uid/{uid}", expect,
                                        f"url {source.get('url')!r}",
                                        "the provisioned datasource differs from the wiring graph: "
                                        "re-run `up` so the chart values are applied"))
        expect = f"datasource {uid} health OK"
        result = call(context, grafana, "GET", f"/api/datasources/uid/{uid}/health", expect=expect,
                      statuses=(200, 400, 500))
        body = json_of(result, grafana, expect)
        if result.status_code != 200 or body.get("status") != "OK":
            raise CheckFailed(Diagnosis(
                "grafana", f"{grafana.url}/api/datasources/uid/{uid}/health", expect,
                f"HTTP {result.status_code}: {body.get('message', body)}",
                f"Grafana cannot query Elasticsearch at {edge.url if edge else '?'}: wrong host/port, or the "
                f"credentials in {edge.credentials_secret if edge else '?'} are not the Elasticsearch user's"))
    return f"{len(DATASOURCES)} datasources healthy"


def dashboards(context: SmokeContext) -> str:
    grafana, settings = context.target("grafana"), context.settings(GrafanaSettings)
    if not settings.dashboards:
        raise Skip("the platform provisions no dashboards (no Elasticsearch)")
    for uid in settings.dashboards:
        path = f"/api/dashboards/uid/{uid}"
        expect = f"dashboard {uid} provisioned"
        answer = call(context, grafana, "GET", path, expect=expect, statuses=(200, 404))
        if answer.status_code == 404:
            raise CheckFailed(Diagnosis("grafana", f"{grafana.url}{path}", expect, "HTTP 404",
                                        "the dashboard provider or its ConfigMap is missing: re-run `up` so the "
                                        "chart's dashboards values are applied"))
        panels = json_of(answer, grafana, expect).get("dashboard", {}).get("panels", [])
        unknown = sorted({(p.get("datasource") or {}).get("uid") for p in panels} - set(settings.datasources))
        if not panels or unknown:
            raise CheckFailed(Diagnosis("grafana", f"{grafana.url}{path}", f"panels over {settings.datasources}",
                                        f"{len(panels)} panels, unknown datasources {unknown}",
                                        "the dashboard was edited or replaced; the kit provisions it read-only"))
    return f"dashboards {', '.join(settings.dashboards)}"


CHECKS = (
    Check("grafana.health", "grafana", health),
    Check("grafana.datasources", "grafana", datasources),
    Check("grafana.dashboards", "grafana", dashboards),
)
