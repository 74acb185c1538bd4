"""`build_platform`: the one pure function from a validated stack config to the desired platform."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from infra.config import StackConfig
from infra.platform import apps, elasticsearch, fluentd, gocd, grafana, ingress, kibana, mlflow, network
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
}


def build_platform(config: StackConfig, stack: str) -> Platform:
    ns = Namespaces.from_config(config)
    tenants = derive_tenants(config)
    ctx = BuildContext(config=config, ns=ns, wiring=derive_edges(config, ns, tenants), tenants=tenants)
    services = {name: build(ctx) for name, build in BUILDERS.items() if config.enabled(name)}
    namespaces = ns.in_use(config)
    extras = [apps.build(ctx)]
    if ingress.enabled(config):
        extras.append(_ingress(ctx, services))
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
    from infra.config import project_dir

    folder = Path(charts_dir).expanduser()
    folder = folder if folder.is_absolute() else project_dir() / folder
    stages = tuple(replace(stage, releases=tuple(replace(r, local_chart=str(folder / r.chart)) for r in stage.releases))
                   for stage in part.stages)
    return replace(part, stages=stages)


def _ingress(ctx: BuildContext, services: dict[str, Service]) -> Service:
    """The controller, cert-manager, the issuer, and an Ingress per published service and per
    application namespace: where the `expose` edges of the wiring graph say the controller reaches."""
    service_ingresses = [ingress.ingress(name, e.provider.namespace, ingress.host(ctx.config, name), e.endpoint.service,
                                         e.endpoint.port)
                         for name in services if (e := ctx.edge("ingress-controller", name))]
    app_ingresses, logins = [], []
    for tenant in ctx.tenants:
        login = ingress.model_login(ctx.ns.ingress, tenant.name, tenant.pipeline_login, tenant.pipeline_password)
        logins.append(login)
        for env, namespace in tenant.environments:
            edge = ctx.edge("ingress-controller", tenant.app_node(env))
            app_ingresses.append(ingress.ingress(apps.ML_APP_RELEASE, namespace, dict(tenant.public_hosts)[env],
                                                 edge.endpoint.service, edge.endpoint.port, login))
    # Where each tenant's model services are published, for the smoke checks (a single team too).
    model_services = {t.name: {env: {"url": t.model_urls[env], "namespace": namespace, "node": t.app_node(env)}
                               for env, namespace in t.environments} for t in ctx.tenants}
    return ingress.build(ctx.config, ctx.ns.ingress, ctx.ns.cert_manager, service_ingresses, app_ingresses, logins,
                         model_services, ctx.config.mirrors)
