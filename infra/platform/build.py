"""`build_platform`: the one pure function from a validated stack config to the desired platform."""

from __future__ import annotations

from infra.config import StackConfig
from infra.platform import apps, elasticsearch, fluentd, gocd, grafana, kibana, mlflow, network
from infra.platform.context import BuildContext
from infra.platform.layout import Namespaces
from infra.platform.model import Platform
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
    return Platform(
        stack=stack,
        profile=config.profile.value,
        namespaces=namespaces,
        pod_security={name: ns.pod_security(name) for name in namespaces},
        services=services,
        wiring=ctx.wiring,
        extras=(apps.build(ctx), network.build(config, ns, namespaces, services, ctx.wiring)),
        tenants=tenants if ctx.workshop else (),
        previews=apps.ml_app_previews(ctx),
    )
