"""Kibana through ECK: a `Kibana` resource joined to Elasticsearch by `elasticsearchRef`.

ECK creates Kibana's own Elasticsearch credentials for that association; people log in with the
Elasticsearch admin user. Once Kibana is green a configure Job (infra/configure/kibana.py) ensures
the data views of the kit's index families, model events first, so Discover opens on predictions.
Config keys read: elasticStackVersion, profile.
"""

from __future__ import annotations

from dataclasses import dataclass

from infra import events
from infra.config import Profile
from infra.platform import elasticsearch
from infra.platform.configure_job import configure_job
from infra.platform.context import BuildContext
from infra.platform.hosts import public_url
from infra.platform.kit_images import PYTHON_IMAGE
from infra.platform.layout import Namespaces
from infra.platform.model import (
    PART_OF,
    Container,
    Endpoint,
    Labels,
    Resources,
    Service,
    ServiceSettings,
    Stage,
    Workload,
    await_annotations,
)

RESOURCE_NAME = "kibana"
PODS: Labels = (("kibana.k8s.elastic.co/name", RESOURCE_NAME),)
HTTP_PORT = 5601
SIZES = {
    Profile.LAPTOP: Resources(100, 640, 1000, 1024),
    Profile.CLUSTER: Resources(500, 1536, 2000, 2048),
}
READY_TIMEOUT_SECONDS = 600
CONFIGURE_TIMEOUT_SECONDS = 600
DATA_VIEWS = (
    {"id": elasticsearch.EVENT_INDEX_PREFIX, "name": "Model events (predictions)",
     "title": f"{elasticsearch.EVENT_INDEX_PREFIX}-*", "timeFieldName": "@timestamp"},
    {"id": elasticsearch.LOG_INDEX_PREFIX, "name": "Container logs",
     "title": f"{elasticsearch.LOG_INDEX_PREFIX}-*", "timeFieldName": "@timestamp"},
)
"""Data views by id (stable, so smoke checks and links can address them); the first is the default."""
NODE_HEAP_MB = {Profile.LAPTOP: 640, Profile.CLUSTER: 1280}
"""Node's old-space limit; below the container limit so Kibana is not OOM-killed under load."""


FEEDBACK_QUERY = f"kind:{events.FEEDBACK}"
"""Discover's view of the true values that came back (infra/events.py FEEDBACK)."""


def discover_path(data_view: str, query: str = "", since: str = "") -> str:
    """Discover opened on a data view (and a KQL query, over the time since `since`, e.g. now-24h), in its URL
    state (rison): `_a=(dataSource:...)`, Discover's app state key since 8.15 (kibana PR #182321)."""
    state = f"dataSource:(dataViewId:{data_view},type:dataView)"
    if query:
        quoted = query.replace("!", "!!").replace("'", "!'")  # rison's escapes inside '...'
        state += f",query:(language:kuery,query:'{quoted}')"
    window = f"&_g=(time:(from:{since},to:now))" if since else ""
    return f"/app/discover#/?_a=({state}){window}"


def endpoint(ns: Namespaces) -> Endpoint:
    return Endpoint(f"{RESOURCE_NAME}-kb-http", ns.logging, HTTP_PORT)


@dataclass(frozen=True)
class DataView:
    id: str
    title: str
    """The index pattern it reads."""


@dataclass(frozen=True)
class KibanaSettings(ServiceSettings):
    data_views: tuple[DataView, ...]
    default_data_view: str


def build(ctx: BuildContext) -> Service:
    ns, config = ctx.ns, ctx.config
    size = SIZES[ctx.profile]
    image = ctx.image(elasticsearch.stack_image("kibana", config.elastic_stack_version))
    public = public_url(config, "kibana")
    edge = ctx.edge("kibana", "elasticsearch")
    assert edge is not None, "config validation guarantees Elasticsearch when Kibana is on"
    kibana = {
        "apiVersion": "kibana.k8s.elastic.co/v1",
        "kind": "Kibana",
        "metadata": {"name": RESOURCE_NAME, "namespace": ns.logging, "labels": dict(PART_OF),
                     "annotations": await_annotations("{.status.health}=green", READY_TIMEOUT_SECONDS)},
        "spec": {
            "version": config.elastic_stack_version,
            "image": image.ref,
            "count": 1,
            "elasticsearchRef": {"name": elasticsearch.RESOURCE_NAME, "namespace": edge.provider.namespace},
            "http": {"tls": {"selfSignedCertificate": {"disabled": True}}},
            **({"config": {"server.publicBaseUrl": public}} if public else {}),
            "podTemplate": {"spec": {"containers": [{
                "name": "kibana",
                "resources": size.as_k8s(),
                "env": [{"name": "NODE_OPTIONS", "value": f"--max-old-space-size={NODE_HEAP_MB[ctx.profile]}"}],
            }]}},
        },
    }
    admin = elasticsearch.user_credentials("admin", ns.logging)
    desired = {"data_views": list(DATA_VIEWS), "default_data_view": DATA_VIEWS[0]["id"]}
    configure = configure_job(
        name="kibana-configure", namespace=ns.logging, module="kibana", desired=desired,
        env={"KIBANA_URL": ctx.configure_edge("kibana").target.url,
             "CD4ML_HEALTH_TIMEOUT": str(CONFIGURE_TIMEOUT_SECONDS - 60)},
        secret_env={"KIBANA_USERNAME": admin.username, "KIBANA_PASSWORD": admin.password},
        timeout_seconds=CONFIGURE_TIMEOUT_SECONDS, image=ctx.image(PYTHON_IMAGE))
    return Service(
        name="kibana",
        namespace=ns.logging,
        endpoint=endpoint(ns),
        credentials=admin,
        secrets=(),
        stages=(Stage(objects=(kibana,)), Stage(objects=configure)),
        workloads=(Workload(RESOURCE_NAME, "Kibana", 1,
                            (Container("kibana", image, size),)),),
        after=("elasticsearch",),
        public_url=public,
        extra_images=(ctx.image(PYTHON_IMAGE),),
        settings=KibanaSettings(data_views=tuple(DataView(v["id"], v["title"]) for v in DATA_VIEWS),
                                default_data_view=DATA_VIEWS[0]["id"]),
    )
