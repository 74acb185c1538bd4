"""Grafana from the chart's current home (grafana-community), with Elasticsearch datasources.

The admin comes from a kit Secret with a generated password (the chart's own random password
relies on Helm `lookup` and would change on every render). Datasources have fixed uids so
health checks and dashboards can address them; their password is read from the environment.
The model monitoring dashboard (dashboards/model-monitoring.json, queries over the fields of
infra/events.py) is provisioned read-only, with links to MLflow and Kibana.
Config keys read: exposure, profile.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.config import Profile
from infra.platform import elasticsearch, kibana, mlflow
from infra.platform.access import service_type, user_url
from infra.platform.configure_job import configure_job
from infra.platform.context import BuildContext
from infra.platform.hosts import public_url
from infra.platform.kit_images import PYTHON_IMAGE
from infra.platform.layout import Namespaces
from infra.platform.model import (
    PART_OF,
    ChartPin,
    Container,
    Credentials,
    Endpoint,
    GeneratedPassword,
    Image,
    KitSecret,
    Labels,
    Resources,
    Service,
    ServiceSettings,
    Stage,
    Workload,
)

CHART = ChartPin(repo="https://grafana-community.github.io/helm-charts", chart="grafana", version="12.11.1")
IMAGE = Image(repository="grafana/grafana", tag="13.2.0")
RELEASE = "grafana"
PODS: Labels = (("app.kubernetes.io/name", "grafana"), ("app.kubernetes.io/instance", RELEASE))
HTTP_PORT = 80
CONTAINER_PORT = 3000
"""The chart's `grafana` container port behind Service port 80."""
ADMIN_SECRET = "grafana-admin"
SIZES = {
    Profile.LAPTOP: Resources(50, 192, 500, 512),
    Profile.CLUSTER: Resources(100, 256, 1000, 768),
}
"""The chart sets GOMEMLIMIT to the whole memory limit (grafana chart 12.11.1 _pod.tpl l.1482-1488; a second
GOMEMLIMIT in `env` would be a duplicate variable, no clean override), so the Go runtime may grow to the
limit with nothing left for what it does not count: SQLite's cgo allocations, mmapped files, plugin
processes. The limit leaves Grafana 13 that room (helm-charts#754)."""
STORAGE_GI = 1
"""Grafana's database: the participants' logins the configure Job creates live there, and an emptyDir
lost them whenever the pod was replaced (a reschedule, an upgrade, a node drain)."""
DATASOURCES = {
    "cd4ml-es-logs": ("Elasticsearch: container logs", elasticsearch.LOG_INDEX_PREFIX),
    "cd4ml-es-events": ("Elasticsearch: model events", elasticsearch.EVENT_INDEX_PREFIX),
}
"""uid -> (name, index prefix). The uids are fixed: health checks and dashboards use them."""


DASHBOARDS_DIR = Path(__file__).parent / "dashboards"
PARTICIPANT_LOGINS_SECRET = "grafana-participant-logins"
PARTICIPANT_LOGINS_DIR = "/etc/cd4ml/participants"
DASHBOARD_PROVIDER = "cd4ml"
DASHBOARDS_CONFIGMAP = "grafana-dashboards-cd4ml"
"""The kit's own ConfigMap, mounted through the chart's `dashboardsConfigMaps`: the chart's inline
`dashboards` value would also add an init container pulling curl to download nothing."""
MODEL_DASHBOARD_UID = "cd4ml-model-monitoring"


def model_dashboard(links: dict[str, str]) -> dict[str, Any]:
    """The dashboard as provisioned: the file in the repository plus links to the other tools."""
    dashboard: dict[str, Any] = json.loads((DASHBOARDS_DIR / "model-monitoring.json").read_text())
    dashboard["links"] = [{"title": title, "type": "link", "url": url, "targetBlank": True, "icon": "external link"}
                          for title, url in links.items()]
    return dashboard


def endpoint(ns: Namespaces) -> Endpoint:
    return Endpoint(RELEASE, ns.monitoring, HTTP_PORT, target_port=CONTAINER_PORT)


def admin_credentials(ns: Namespaces) -> Credentials:
    """The chart's own key names, so `admin.existingSecret` needs no key overrides."""
    return Credentials(ns.monitoring, ADMIN_SECRET, username_key="admin-user", password_key="admin-password")


def datasources(es: Endpoint) -> list[dict[str, Any]]:
    return [{
        "name": name,
        "uid": uid,
        "type": "elasticsearch",
        "access": "proxy",
        "url": f"{es.scheme}://{es.host}:{es.port}",
        "basicAuth": True,
        "basicAuthUser": "${ES_USERNAME}",
        "jsonData": {"index": f"{prefix}-*", "timeField": "@timestamp"},
        "secureJsonData": {"basicAuthPassword": "${ES_PASSWORD}"},
        "editable": False,
    } for uid, (name, prefix) in DATASOURCES.items()]


@dataclass(frozen=True)
class GrafanaSettings(ServiceSettings):
    datasources: tuple[str, ...]
    """Datasource uids the provisioned dashboards use."""
    dashboards: tuple[str, ...]
    participant_logins: tuple[str, ...]


def build(ctx: BuildContext) -> Service:
    ns = ctx.ns
    admin = admin_credentials(ns)
    size = SIZES[ctx.profile]
    image = ctx.image(IMAGE)
    public = public_url(ctx.config, "grafana")
    values: dict[str, Any] = {
        "image": {"registry": image.registry, "repository": image.repository, "tag": image.tag},
        "service": {"type": service_type("grafana", ctx.config.exposure),
                    "port": HTTP_PORT},
        "admin": {"existingSecret": admin.secret, "userKey": admin.username_key, "passwordKey": admin.password_key},
        "resources": size.as_k8s(),
        "persistence": {"enabled": True, "type": "pvc", "size": f"{STORAGE_GI}Gi",
                        **({"storageClassName": ctx.config.storage_class} if ctx.config.storage_class else {})},
        # One pod on a ReadWriteOnce volume: the old pod must let go of it before the new one starts.
        "deploymentStrategy": {"type": "Recreate"},
        # The chart's root init container that chowns the volume breaks Pod Security `restricted`; the
        # pod's fsGroup (the chart's securityContext, 472) already makes the volume Grafana's.
        "initChownData": {"enabled": False},
        "testFramework": {"enabled": False},
        "grafana.ini": {
            **({"server": {"root_url": public}} if public else {}),
            "auth.anonymous": {"enabled": False},
            # Nothing reaches out to grafana.com (the network policies would drop it): no update checks,
            # and none of the ~19 default plugins Grafana 13 installs in the background unless told not
            # to, nor their signing keys (setting.go, setting_plugins.go; tests/contracts/grafana.yaml).
            "analytics": {"reporting_enabled": False, "check_for_updates": False, "check_for_plugin_updates": False},
            "plugins": {"preinstall_disabled": True, "public_key_retrieval_disabled": True},
        },
    }
    edge = ctx.edge("grafana", "elasticsearch")
    dashboards_configmap = None
    if edge and edge.endpoint and edge.credentials:
        values["envValueFrom"] = {
            "ES_USERNAME": edge.credentials.username.as_env_source(),
            "ES_PASSWORD": edge.credentials.password.as_env_source(),
        }
        values["datasources"] = {"datasources.yaml": {"apiVersion": 1, "datasources": datasources(edge.endpoint)}}
        links = {"MLflow": user_url(ctx.config, "mlflow", mlflow.endpoint(ns))} if ctx.config.enabled("mlflow") else {}
        if ctx.config.enabled("kibana"):
            base = user_url(ctx.config, "kibana", kibana.endpoint(ns))
            links["Kibana: model events"] = base + kibana.discover_path(elasticsearch.EVENT_INDEX_PREFIX)
            # Feedback arrives long after its prediction: a day, not Discover's default quarter hour.
            links["Kibana: feedback"] = base + kibana.discover_path(elasticsearch.EVENT_INDEX_PREFIX,
                                                                    kibana.FEEDBACK_QUERY, since="now-24h")
        values["dashboardProviders"] = {"dashboardproviders.yaml": {"apiVersion": 1, "providers": [{
            "name": DASHBOARD_PROVIDER, "orgId": 1, "folder": "CD4ML", "type": "file",
            "disableDeletion": True, "editable": False, "allowUiUpdates": False,
            "options": {"path": f"/var/lib/grafana/dashboards/{DASHBOARD_PROVIDER}"},
        }]}}
        values["dashboardsConfigMaps"] = {DASHBOARD_PROVIDER: DASHBOARDS_CONFIGMAP}
        dashboards_configmap = {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": DASHBOARDS_CONFIGMAP, "namespace": ns.monitoring, "labels": dict(PART_OF)},
            "data": {"model-monitoring.json": json.dumps(model_dashboard(links), indent=2)},
        }
    admin_secret = KitSecret(namespace=ns.monitoring, name=admin.secret, literals=((admin.username_key, "admin"),),
                             generated=((admin.password_key, GeneratedPassword("grafana-admin")),))
    secrets = [admin_secret]
    stages = [Stage(objects=(dashboards_configmap,) if dashboards_configmap else ()),
              Stage(releases=(CHART.release(RELEASE, ns.monitoring, values),))]
    participants = [t for t in ctx.tenants if t.participant]
    if participants:
        # Workshop mode: a Viewer login per participant, same password as their GoCD, Kibana and MLflow logins.
        secrets.append(KitSecret(ns.monitoring, PARTICIPANT_LOGINS_SECRET,
                                 generated=tuple((t.login, t.password) for t in participants
                                                 if t.login and t.password)))
        stages.append(Stage(objects=configure_job(
            name="grafana-configure", namespace=ns.monitoring, module="grafana",
            desired={"users": [t.login for t in participants], "password_dir": PARTICIPANT_LOGINS_DIR},
            env={"GRAFANA_URL": ctx.configure_edge("grafana").target.url, "CD4ML_HEALTH_TIMEOUT": "540"},
            secret_env={"GRAFANA_USERNAME": admin.username, "GRAFANA_PASSWORD": admin.password},
            timeout_seconds=600, image=ctx.image(PYTHON_IMAGE),
            secret_files=((PARTICIPANT_LOGINS_SECRET, PARTICIPANT_LOGINS_DIR),))))
    return Service(
        name="grafana",
        namespace=ns.monitoring,
        endpoint=endpoint(ns),
        credentials=admin,
        secrets=tuple(secrets),
        stages=tuple(stages),
        workloads=(Workload(RELEASE, "Deployment", 1, (Container("grafana", image, size),)),),
        after=("elasticsearch",),
        public_url=public,
        settings=GrafanaSettings(datasources=tuple(sorted(DATASOURCES)),
                                 dashboards=(MODEL_DASHBOARD_UID,) if edge else (),
                                 participant_logins=tuple(t.login for t in participants if t.login)),
        extra_images=(ctx.image(PYTHON_IMAGE),) if participants else (),
    )
