"""Kibana through ECK: a `Kibana` resource joined to Elasticsearch by `elasticsearchRef`.

ECK creates Kibana's own Elasticsearch credentials for that association; people log in with the
Elasticsearch admin user. Config keys read: elasticStackVersion, profile.
"""

from __future__ import annotations

from infra.config import Profile
from infra.platform import elasticsearch
from infra.platform.context import BuildContext
from infra.platform.layout import Namespaces
from infra.platform.model import PART_OF, Container, Endpoint, Resources, Service, Stage, Workload, await_annotations

RESOURCE_NAME = "kibana"
HTTP_PORT = 5601
SIZES = {
    Profile.LAPTOP: Resources(100, 640, 1000, 1024),
    Profile.CLUSTER: Resources(500, 1536, 2000, 2048),
}
READY_TIMEOUT_SECONDS = 600
NODE_HEAP_MB = {Profile.LAPTOP: 640, Profile.CLUSTER: 1280}
"""Node's old-space limit; below the container limit so Kibana is not OOM-killed under load."""


def endpoint(ns: Namespaces) -> Endpoint:
    return Endpoint(f"{RESOURCE_NAME}-kb-http", ns.logging, HTTP_PORT)


def build(ctx: BuildContext) -> Service:
    ns, config = ctx.ns, ctx.config
    size = SIZES[ctx.profile]
    edge = ctx.edge("kibana", "elasticsearch")
    assert edge is not None, "config validation guarantees Elasticsearch when Kibana is on"
    kibana = {
        "apiVersion": "kibana.k8s.elastic.co/v1",
        "kind": "Kibana",
        "metadata": {"name": RESOURCE_NAME, "namespace": ns.logging, "labels": dict(PART_OF),
                     "annotations": await_annotations("{.status.health}=green", READY_TIMEOUT_SECONDS)},
        "spec": {
            "version": config.elastic_stack_version,
            "count": 1,
            "elasticsearchRef": {"name": elasticsearch.RESOURCE_NAME, "namespace": edge.provider.namespace},
            "http": {"tls": {"selfSignedCertificate": {"disabled": True}}},
            "podTemplate": {"spec": {"containers": [{
                "name": "kibana",
                "resources": size.as_k8s(),
                "env": [{"name": "NODE_OPTIONS", "value": f"--max-old-space-size={NODE_HEAP_MB[ctx.profile]}"}],
            }]}},
        },
    }
    return Service(
        name="kibana",
        namespace=ns.logging,
        endpoint=endpoint(ns),
        credentials=elasticsearch.user_credentials("admin", ns.logging),
        secrets=(),
        stages=(Stage(objects=(kibana,)),),
        workloads=(Workload(RESOURCE_NAME, "Kibana", 1,
                            (Container("kibana", elasticsearch.stack_image("kibana", config.elastic_stack_version),
                                       size),)),),
        after=("elasticsearch",),
    )
