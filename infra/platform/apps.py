"""The application environments (staging, production, ...) the pipelines deploy model services into.

Rendered from the kit's own chart `charts/app-environments`: per environment a namespace, a
`deployer` Role bound to the GoCD agents' ServiceAccount (the gocd-agents -> namespace edges),
the `platform-endpoints` ConfigMap a model service reads (the app -> fluentd/mlflow edges), and a
quota so one runaway deployment cannot starve the platform. Config keys read: appEnvironments,
profile.
"""

from __future__ import annotations

from typing import Any

import yaml

from infra.config import Profile
from infra.paths import CHARTS_DIR
from infra.platform.context import BuildContext
from infra.platform.kit_images import MODEL_RUNTIME
from infra.platform.model import Endpoint, KitChart, Service, Stage
from infra.platform.variables import CD4ML_TENANT, client_variables, tenant_variables

NAME = "app-environments"
CHART_DIR = CHARTS_DIR / NAME
ML_APP_CHART_DIR = CHARTS_DIR / "ml-app"
ML_APP_RELEASE = "model-service"
"""The release name the example pipeline's deploy step uses (examples/model-repo/deploy.sh)."""
PREVIEW_MODEL = {"name": "example-model", "version": "1", "uri": "models:/example-model/1"}
ENDPOINTS_CONFIGMAP = "platform-endpoints"
QUOTAS = {
    Profile.LAPTOP: {"requests.cpu": "1", "requests.memory": "1Gi", "limits.cpu": "2", "limits.memory": "2Gi",
                     "pods": "10"},
    Profile.CLUSTER: {"requests.cpu": "4", "requests.memory": "8Gi", "limits.cpu": "8", "limits.memory": "16Gi",
                      "pods": "50"},
}
CONTAINER_DEFAULTS = {
    "default": {"cpu": "500m", "memory": "512Mi"},
    "defaultRequest": {"cpu": "100m", "memory": "128Mi"},
}
"""LimitRange defaults: a quota'd namespace rejects pods without requests; these fill them in."""


def ml_app_endpoint(namespace: str) -> Endpoint:
    """The model service a pipeline deploys with charts/ml-app, as the chart's defaults make it."""
    defaults = yaml.safe_load((ML_APP_CHART_DIR / "values.yaml").read_text())
    return Endpoint(ML_APP_RELEASE, namespace, defaults["service"]["port"], target_port=defaults["containerPort"])


def ml_app_previews(ctx: BuildContext) -> tuple[KitChart, ...]:
    """charts/ml-app in every environment, with the values a deploy stage passes: the endpoints are
    the app's wiring edges; the model and pipeline label are placeholders a pipeline fills in.
    Without MLflow there is no model to serve, so nothing to preview. In workshop mode only the first
    participant's are rendered: the others differ in names only, and plan time must not grow with them."""
    previews = []
    tenant = ctx.tenants[0]
    for env, namespace in tenant.environments:
        endpoints = {e.provider.id: e.endpoint for e in ctx.edges_from(tenant.app_node(env)) if e.endpoint}
        if "mlflow" not in endpoints:
            continue
        values: dict[str, Any] = {"model": PREVIEW_MODEL, "pipelineLabel": "1", "environment": env,
                                  "tenant": tenant.name,
                        "source": {"serve.py": "# the model repository's service/serve.py\n"},
                        "image": {"repository": f"{MODEL_RUNTIME.image(ctx.config).registry}/"
                                                f"{MODEL_RUNTIME.image(ctx.config).repository}",
                                  "tag": MODEL_RUNTIME.tag}}
        edge = ctx.edge(tenant.app_node(env), "mlflow")
        login = edge.credentials if edge else None
        values["mlflow"] = {"trackingUri": endpoints["mlflow"].url, "credentialsSecret": login.secret if login else ""}
        if "fluentd" in endpoints:
            values["fluentd"] = {"host": endpoints["fluentd"].host, "port": endpoints["fluentd"].port}
        previews.append(KitChart(name=ML_APP_RELEASE, namespace=namespace, chart_dir=str(ML_APP_CHART_DIR),
                                 values=values))
    return tuple(previews)


def build(ctx: BuildContext) -> Service:
    ns = ctx.ns
    accounts = {tenant.agents_node: tenant.service_account for tenant in ctx.tenants}
    deployers_of: dict[str, list[dict[str, Any]]] = {}
    for edge in ctx.edges_of_kind("deploy"):
        deployers_of.setdefault(edge.provider.namespace, []).append(
            {"name": accounts[edge.consumer.id], "namespace": edge.consumer.namespace})
    environments = []
    for tenant in ctx.tenants:
        for env, namespace in tenant.environments:
            endpoints = {e.provider.id: e.endpoint for e in ctx.edges_from(tenant.app_node(env)) if e.endpoint}
            variables: dict[str, str] = {**client_variables(endpoints), **{
                k: v for k, v in tenant_variables(tenant).items() if k != CD4ML_TENANT}}
            environments.append({
                "name": env,
                "namespace": namespace,
                "tenant": tenant.name,
                # CD4ML_TENANT comes from `tenant` in the chart; the rest of the tenant's names here.
                "endpoints": variables,
                "deployers": deployers_of.get(namespace, []),
            })
    values = {
        "environments": environments,
        "endpointsConfigMap": ENDPOINTS_CONFIGMAP,
        # A participant's namespaces get the laptop-sized quota whatever the profile: one runaway
        # model service must not starve the other participants on a shared cluster.
        "quota": QUOTAS[Profile.LAPTOP if ctx.workshop else ctx.profile],
        "containerDefaults": CONTAINER_DEFAULTS,
    }
    chart = KitChart(name=NAME, namespace=ns.apps[0][1], chart_dir=str(CHART_DIR), values=values)
    first = ns.apps[0][1]
    return Service(
        name=NAME,
        namespace=first,
        endpoint=None,
        credentials=None,
        secrets=(),
        stages=(Stage(kit_charts=(chart,)),),
        workloads=(),
    )
