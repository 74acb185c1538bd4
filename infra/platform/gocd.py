"""GoCD server and agents from the official `gocd/gocd` chart.

Agents run as a ServiceAccount the kit declares, so the application environments can grant it
deploy rights (and nothing else). Their environment carries the wiring edges they consume —
MLflow's tracking URI and Fluentd's forward endpoint. Config keys read: gocdAgents,
gocdStorageGi, storageClass, exposure, profile.
"""

from __future__ import annotations

from infra.config import Exposure, Profile
from infra.platform.context import BuildContext
from infra.platform.layout import Namespaces
from infra.platform.model import (
    PART_OF,
    ChartPin,
    Container,
    Endpoint,
    Image,
    Resources,
    Service,
    Stage,
    WiringEdge,
    Workload,
)

CHART = ChartPin(repo="https://gocd.github.io/helm-chart", chart="gocd", version="2.18.0")
SERVER_IMAGE = Image(repository="gocd/gocd-server", tag="v26.1.0")
AGENT_IMAGE = Image(repository="gocd/gocd-agent-wolfi", tag="v26.1.0")
RELEASE = "gocd"
HTTP_PORT = 8153
AGENTS_NODE = "gocd-agents"
"""Wiring-graph id of the agents: they, not the server, talk to MLflow, Fluentd and the apps."""
AGENT_SERVICE_ACCOUNT = "gocd-agent"
ELASTIC_AGENT_PLUGIN = (
    "GOCD_PLUGIN_INSTALL_kubernetes-elastic-agents",
    "https://github.com/gocd/kubernetes-elastic-agents/releases/download/v5.0.2-779/"
    "kubernetes-elastic-agent-5.0.2-779.jar",
)
"""The chart's default `server.env.extraEnvVars` entry. Helm replaces lists whole, so setting
that list without it would silently drop the elastic-agent plugin."""

SERVER_SIZES = {
    Profile.LAPTOP: Resources(250, 768, 1000, 1024),
    Profile.CLUSTER: Resources(500, 1536, 2000, 2048),
}
SERVER_HEAP = {Profile.LAPTOP: "512m", Profile.CLUSTER: "1024m"}
AGENT_SIZES = {
    Profile.LAPTOP: Resources(100, 256, 1000, 2048),
    Profile.CLUSTER: Resources(250, 512, 2000, 4096),
}


def endpoint(ns: Namespaces) -> Endpoint:
    return Endpoint(f"{RELEASE}-server", ns.gocd, HTTP_PORT, path="/go")


def agent_env(edges: tuple[WiringEdge, ...]) -> list[dict[str, str]]:
    """Agent environment from the agents' outgoing edges; a switched-off service leaves no var."""
    env: list[dict[str, str]] = []
    for edge in edges:
        if edge.kind != "connect" or edge.endpoint is None:
            continue
        if edge.provider.id == "mlflow":
            env.append({"name": "MLFLOW_TRACKING_URI", "value": edge.endpoint.url})
        elif edge.provider.id == "fluentd":
            env += [{"name": "FLUENTD_HOST", "value": edge.endpoint.host},
                    {"name": "FLUENTD_PORT", "value": str(edge.endpoint.port)}]
    deploy_targets = [edge.provider.namespace for edge in edges if edge.kind == "deploy"]
    if deploy_targets:
        env.append({"name": "CD4ML_DEPLOY_NAMESPACES", "value": ",".join(deploy_targets)})
    return env


def build(ctx: BuildContext) -> Service:
    ns, config = ctx.ns, ctx.config
    service_type = "NodePort" if config.exposure is Exposure.NODE_PORT else "ClusterIP"
    persistence: dict = {"enabled": True, "size": f"{config.gocd_storage_gi}Gi"}
    if config.storage_class:
        persistence["storageClass"] = config.storage_class
    values = {
        "server": {
            "image": {"repository": f"{SERVER_IMAGE.registry}/{SERVER_IMAGE.repository}", "tag": SERVER_IMAGE.tag},
            "service": {"type": service_type, "httpPort": HTTP_PORT},
            "ingress": {"enabled": False},
            "resources": SERVER_SIZES[ctx.profile].as_k8s(),
            "env": {
                "goServerJvmOpts": f"-Xmx{SERVER_HEAP[ctx.profile]}",
                "extraEnvVars": [{"name": ELASTIC_AGENT_PLUGIN[0], "value": ELASTIC_AGENT_PLUGIN[1]}],
            },
            "persistence": persistence,
        },
        "agent": {
            "replicaCount": config.gocd_agents,
            "image": {"repository": f"{AGENT_IMAGE.registry}/{AGENT_IMAGE.repository}", "tag": AGENT_IMAGE.tag},
            "resources": AGENT_SIZES[ctx.profile].as_k8s(),
            "env": {"extraEnvVars": agent_env(ctx.edges_from(AGENTS_NODE))},
            "serviceAccount": {
                "reuseTopLevelServiceAccount": False,
                "name": AGENT_SERVICE_ACCOUNT,
                "automountServiceAccountToken": True,
            },
        },
    }
    service_account = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": AGENT_SERVICE_ACCOUNT, "namespace": ns.gocd, "labels": dict(PART_OF)},
    }
    workloads = [Workload(f"{RELEASE}-server", "Deployment", 1,
                          (Container("gocd-server", SERVER_IMAGE, SERVER_SIZES[ctx.profile]),))]
    if config.gocd_agents:
        workloads.append(Workload(f"{RELEASE}-agent", "Deployment", config.gocd_agents,
                                  (Container("gocd-agent", AGENT_IMAGE, AGENT_SIZES[ctx.profile]),)))
    return Service(
        name="gocd",
        namespace=ns.gocd,
        endpoint=endpoint(ns),
        credentials=None,
        secrets=(),
        # The server's JVM start, plugin download and health check take minutes on a laptop.
        stages=(Stage(objects=(service_account,)),
                Stage(releases=(CHART.release(RELEASE, ns.gocd, values, timeout_seconds=900),))),
        workloads=tuple(workloads),
        # Elastic agents are started on demand from this image by the plugin.
        extra_images=(AGENT_IMAGE,),
    )
