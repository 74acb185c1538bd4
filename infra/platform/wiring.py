"""The wiring graph: which consumer is given which provider's endpoint and credentials.

Services read their edges from here to build their values, and the network policies are derived
from them (infra/platform/network.py), so an edge is the one place a connection is described:
removing a service removes every edge that touches it, and the path it opened.
"""

from __future__ import annotations

from infra.config import StackConfig
from infra.platform import apps, elasticsearch, fluentd, gitea, gocd, grafana, hosts, ingress, kibana, mlflow
from infra.platform.configure_job import job_pods
from infra.platform.layout import Namespaces
from infra.platform.model import Credentials, Endpoint, Labels, Node, WiringEdge
from infra.platform.tenants import Tenant
from infra.platform.variables import FLUENTD_HOST, FLUENTD_PORT, MLFLOW_TRACKING_URI, MLFLOW_TRACKING_USERNAME

SERVICE_PODS: dict[str, Labels] = {
    "gocd": gocd.SERVER_PODS,
    "elasticsearch": elasticsearch.PODS,
    "kibana": kibana.PODS,
    "fluentd": fluentd.PODS,
    "grafana": grafana.PODS,
    "mlflow": mlflow.PODS,
    "gitea": gitea.PODS,
}
EVERY_POD: Labels = ()


def configure_node(service: str, ns: Namespaces) -> Node:
    """The kit's configure Job of a service (infra/platform/configure_job.py)."""
    return Node(f"{service}-configure", ns.of_service(service), job_pods(service))


def derive_edges(config: StackConfig, ns: Namespaces, tenants: tuple[Tenant, ...]) -> tuple[WiringEdge, ...]:
    edges: list[WiringEdge] = []
    on = config.enabled

    def node(service: str) -> Node:
        return Node(service, ns.of_service(service), SERVICE_PODS[service])

    def configured(service: str, endpoint: Endpoint, credentials: Credentials | None, env: str) -> None:
        edges.append(WiringEdge(configure_node(service, ns), node(service), "configure", endpoint=endpoint,
                                credentials=credentials, delivered_by=f"{service}-configure Job: env {env}"))

    if on("gocd"):
        configured("gocd", gocd.endpoint(ns), gocd.admin_credentials(ns), "GOCD_URL, GOCD_USERNAME/GOCD_PASSWORD")
    if on("elasticsearch"):
        es = elasticsearch.endpoint(ns)
        edges.append(WiringEdge(
            Node("eck-operator", ns.eck_operator, elasticsearch.OPERATOR_PODS), node("elasticsearch"), "manage",
            endpoint=es, delivered_by="ECK: the operator reconciles users and settings through the cluster's API"))
        configured("elasticsearch", es, elasticsearch.user_credentials("admin", ns.logging),
                   "ES_URL, ES_USERNAME/ES_PASSWORD")
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
            configured("kibana", kibana.endpoint(ns), elasticsearch.user_credentials("admin", ns.logging),
                       "KIBANA_URL, KIBANA_USERNAME/KIBANA_PASSWORD")
        if on("grafana"):
            edges.append(WiringEdge(
                node("grafana"), node("elasticsearch"), "connect", endpoint=es,
                credentials=elasticsearch.user_credentials("grafana", ns.monitoring),
                delivered_by="grafana values: provisioned datasources; envValueFrom ES_USERNAME/ES_PASSWORD"))

    if on("grafana") and tenants[0].participant:  # it only adds participants' logins
        configured("grafana", grafana.endpoint(ns), grafana.admin_credentials(ns),
                   "GRAFANA_URL, GRAFANA_USERNAME/GRAFANA_PASSWORD")
    if on("mlflow"):
        configured("mlflow", mlflow.endpoint(ns), mlflow.admin_credentials(ns),
                   "MLFLOW_URL, MLFLOW_USERNAME/MLFLOW_PASSWORD")

    if on("gitea"):
        configured("gitea", gitea.endpoint(ns), gitea.admin_credentials(ns), "GITEA_URL, GITEA_USERNAME/GITEA_PASSWORD")
        if on("gocd") and gitea.serves_ready_repos(config):
            edges.append(WiringEdge(
                node("gocd"), node("gitea"), "connect", endpoint=gitea.endpoint(ns),
                credentials=gitea.reader_credentials(ns),
                delivered_by="GoCD config repositories: git material url/username/password "
                             f"(the gocd-configure Job reads the password from {gitea.READER_SECRET})"))

    if hosts.published(config):
        controller = Node("ingress-controller", ns.ingress, ingress.controller_pods(ns.ingress))
        endpoints = {"gocd": gocd.endpoint, "kibana": kibana.endpoint, "grafana": grafana.endpoint,
                     "mlflow": mlflow.endpoint, "gitea": gitea.endpoint}
        for service in hosts.PUBLIC_SERVICES:
            if on(service):
                edges.append(WiringEdge(controller, node(service), "expose", endpoint=endpoints[service](ns),
                                        delivered_by=f"Ingress {service} (host {hosts.host(config, service)})"))
        for tenant in tenants:
            for env, namespace in tenant.environments:
                hostname = dict(tenant.public_hosts)[env]
                edges.append(WiringEdge(controller, Node(tenant.app_node(env), namespace, EVERY_POD), "expose",
                                        endpoint=apps.ml_app_endpoint(namespace),
                                        delivered_by=f"Ingress {apps.ML_APP_RELEASE} (host {hostname})"))

    for tenant in tenants:
        agents = Node(tenant.agents_node, ns.gocd, gocd.agent_pods(tenant))
        if on("gocd"):
            edges.append(WiringEdge(
                agents, node("gocd"), "connect", endpoint=gocd.endpoint(ns),
                delivered_by=f"GoCD cluster profile {gocd.CLUSTER_PROFILE_ID}: go_server_url "
                             "(the elastic-agent plugin hands it to each agent pod)"))
            if on("mlflow"):
                edges.append(WiringEdge(
                    agents, node("mlflow"), "connect", endpoint=mlflow.endpoint(ns),
                    credentials=mlflow.agents_login(ns, tenant),
                    delivered_by=f"GoCD elastic agent profile {tenant.elastic_profile}: env {MLFLOW_TRACKING_URI}; "
                                 f"{MLFLOW_TRACKING_USERNAME}/PASSWORD from the credentials secret"))
            if on("gitea") and gitea.serves_ready_repos(config):
                edges.append(WiringEdge(
                    agents, node("gitea"), "connect", endpoint=gitea.endpoint(ns),
                    delivered_by="GoCD: each job's material (the config repository, `type: configrepo`), "
                                 "cloned by the agent with the URL and login the server hands it"))
            if on("fluentd"):
                edges.append(WiringEdge(
                    agents, node("fluentd"), "connect", endpoint=fluentd.forward_endpoint(ns),
                    delivered_by=f"GoCD elastic agent profile {tenant.elastic_profile}: "
                                 f"env {FLUENTD_HOST}/{FLUENTD_PORT}"))
            for _env, namespace in tenant.environments:
                edges.append(WiringEdge(
                    agents, Node(f"namespace:{namespace}", namespace), "deploy",
                    delivered_by=f"RoleBinding in {namespace} granting the deployer Role to "
                                 f"ServiceAccount {ns.gocd}/{tenant.service_account}"))
        for env, namespace in tenant.environments:
            app = Node(tenant.app_node(env), namespace, EVERY_POD)
            if on("fluentd"):
                edges.append(WiringEdge(
                    app, node("fluentd"), "connect", endpoint=fluentd.forward_endpoint(ns),
                    delivered_by=f"ConfigMap {namespace}/{apps.ENDPOINTS_CONFIGMAP}: {FLUENTD_HOST}/{FLUENTD_PORT}"))
            if on("mlflow"):
                edges.append(WiringEdge(
                    app, node("mlflow"), "connect", endpoint=mlflow.endpoint(ns),
                    credentials=mlflow.app_login(namespace),
                    delivered_by=f"ConfigMap {namespace}/{apps.ENDPOINTS_CONFIGMAP}: {MLFLOW_TRACKING_URI}; "
                                 f"charts/ml-app env {MLFLOW_TRACKING_USERNAME}/PASSWORD from the credentials secret"))
    return tuple(edges)
