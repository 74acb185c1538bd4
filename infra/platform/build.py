"""`build_platform`: the one pure function from a validated stack config to the desired platform."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from infra.config import StackConfig
from infra.platform import apps, elasticsearch, fluentd, gitea, gocd, grafana, hosts, ingress, kibana, mlflow, network
from infra.platform.context import BuildContext
from infra.platform.layout import Namespaces
from infra.platform.model import Platform, Service
from infra.platform.tenants import derive_tenants
from infra.platform.wiring import derive_edges

BUILDERS = {
    "gocd": gocd.build,
    "elasticsearch": elasticsearch.build,
    "kibana": kibana.build,
    "fluentd": fluentd.build,
    "grafana": grafana.build,
    "mlflow": mlflow.build,
    "gitea": gitea.build,
}


def build_platform(config: StackConfig, stack: str) -> Platform:
    ns = Namespaces.from_config(config)
    tenants = derive_tenants(config)
    ctx = BuildContext(config=config, ns=ns, wiring=derive_edges(config, ns, tenants), tenants=tenants)
    services = {name: build(ctx) for name, build in BUILDERS.items() if config.enabled(name)}
    namespaces = ns.in_use(config)
    extras = [apps.build(ctx)]
    if hosts.published(config):
        extras.append(ingress.build(ctx, services))
    extras.append(network.build(config, ns, namespaces, services, ctx.wiring))
    if config.charts_dir:
        services = {name: from_local_charts(part, config.charts_dir) for name, part in services.items()}
        extras = [from_local_charts(part, config.charts_dir) for part in extras]
    return Platform(
        stack=stack,
        profile=config.profile.value,
        namespaces=namespaces,
        pod_security={name: ns.pod_security(name) for name in namespaces},
        services=services,
        wiring=ctx.wiring,
        extras=tuple(extras),
        tenants=tenants if ctx.workshop else (),
        previews=apps.ml_app_previews(ctx),
    )


def from_local_charts(part: Service, charts_dir: str) -> Service:
    """Every release of the part installed from `chartsDir/<chart>` (a venue without internet)."""
    from infra.paths import project_dir

    folder = Path(charts_dir).expanduser()
    folder = folder if folder.is_absolute() else project_dir() / folder
    stages = tuple(replace(stage, releases=tuple(replace(r, local_chart=str(folder / r.chart)) for r in stage.releases))
                   for stage in part.stages)
    return replace(part, stages=stages)
