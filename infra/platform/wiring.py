"""The wiring graph: which consumer is given which provider's endpoint and credentials.

Services read their edges from here to build their values, so an edge is the one place a
connection is described; removing a service removes every edge that touches it.
"""

from __future__ import annotations

from infra.config import StackConfig
from infra.platform import elasticsearch, fluentd, mlflow
from infra.platform.layout import Namespaces
from infra.platform.model import Node, WiringEdge
from infra.platform.tenants import Tenant


def derive_edges(config: StackConfig, ns: Namespaces, tenants: tuple[Tenant, ...]) -> tuple[WiringEdge, ...]:
    edges: list[WiringEdge] = []
    on = config.enabled

    def node(service: str) -> Node:
        return Node(service, ns.of_service(service))

    if on("elasticsearch"):
        es = elasticsearch.endpoint(ns)
        if on("fluentd"):
            edges.append(WiringEdge(
                node("fluentd"), node("elasticsearch"), "connect", endpoint=es,
                credentials=elasticsearch.user_credentials("fluentd", ns.logging),
                delivered_by="fluentd values: fileConfigs 04_outputs.conf host/port/scheme; "
                             "env ES_USERNAME/ES_PASSWORD from the credentials secret"))
        if on("kibana"):
            edges.append(WiringEdge(
                node("kibana"), node("elasticsearch"), "connect", endpoint=es,
                delivered_by="ECK association: Kibana.spec.elasticsearchRef (ECK issues Kibana's own token)"))
        if on("grafana"):
            edges.append(WiringEdge(
                node("grafana"), node("elasticsearch"), "connect", endpoint=es,
                credentials=elasticsearch.user_credentials("grafana", ns.monitoring),
                delivered_by="grafana values: provisioned datasources; envValueFrom ES_USERNAME/ES_PASSWORD"))

    for tenant in tenants:
        agents = Node(tenant.agents_node, ns.gocd)
        if on("gocd"):
            if on("mlflow"):
                edges.append(WiringEdge(
                    agents, node("mlflow"), "connect", endpoint=mlflow.endpoint(ns),
                    delivered_by=f"GoCD elastic agent profile {tenant.elastic_profile}: env MLFLOW_TRACKING_URI"))
            if on("fluentd"):
                edges.append(WiringEdge(
                    agents, node("fluentd"), "connect", endpoint=fluentd.forward_endpoint(ns),
                    delivered_by=f"GoCD elastic agent profile {tenant.elastic_profile}: env FLUENTD_HOST/FLUENTD_PORT"))
            for _env, namespace in tenant.environments:
                edges.append(WiringEdge(
                    agents, Node(f"namespace:{namespace}", namespace), "deploy",
                    delivered_by=f"RoleBinding in {namespace} granting the deployer Role to "
                                 f"ServiceAccount {ns.gocd}/{tenant.service_account}"))
        for env, namespace in tenant.environments:
            app = Node(tenant.app_node(env), namespace)
            if on("fluentd"):
                edges.append(WiringEdge(
                    app, node("fluentd"), "connect", endpoint=fluentd.forward_endpoint(ns),
                    delivered_by=f"ConfigMap {namespace}/platform-endpoints: FLUENTD_HOST/FLUENTD_PORT"))
            if on("mlflow"):
                edges.append(WiringEdge(
                    app, node("mlflow"), "connect", endpoint=mlflow.endpoint(ns),
                    delivered_by=f"ConfigMap {namespace}/platform-endpoints: MLFLOW_TRACKING_URI"))
    return tuple(edges)
