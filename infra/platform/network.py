"""Network policies derived from the wiring graph: deny everything, then open what the edges say.

Every namespace the kit creates gets `default-deny` (ingress and egress) and DNS. Each edge with an
endpoint opens exactly its path, on both ends: the provider's `allow-to-<node>` policy has one
ingress rule per edge into it, the consumer's `allow-from-<node>` one egress rule per edge out of
it, each naming the peer's namespace, pod labels and container port. Removing an edge removes both
rules; a pair with no edge shares no rule, so participants' namespaces cannot reach each other.

What no edge describes is an `Allowance`, each with the reason it must be open: the API server,
git and plugin downloads, the ECK webhook, Elasticsearch's own transport, and users' ports when
the stack exposes services on NodePorts. `deploy` edges are API calls,
authorized by RBAC; their network path is the consumer's API-server egress.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from infra.config import Exposure, StackConfig
from infra.platform import elasticsearch, fluentd, gocd, hosts, ingress
from infra.platform.access import NODE_PORT_SERVICES
from infra.platform.layout import Namespaces
from infra.platform.model import PART_OF, Labels, Node, Service, Stage, WiringEdge
from infra.platform.wiring import SERVICE_PODS

NAME = "network-policies"
EDGE_KINDS = ("connect", "configure", "manage", "expose")
"""Edges that are network paths (a `deploy` edge goes through the API server)."""
ANYWHERE = [{"ipBlock": {"cidr": "0.0.0.0/0"}}]
API_SERVER_PORTS = (443, 6443)
"""The API server is not a pod and its address differs per cluster; policies see the endpoint after
the kubernetes Service's DNAT: 6443 on kind/kubeadm, 443 on GKE/EKS."""
GIT_PORTS = (22, 443)
DNS_PEER = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}
"""CoreDNS/kube-dns keep the k8s-app=kube-dns label on kind, k3d, minikube, GKE and EKS."""
EDGE_ANNOTATION = "cd4ml.dev/edges"


@dataclass(frozen=True)
class Allowance:
    """A path no wiring edge describes, and why it must be open."""

    name: str
    namespace: str
    pods: Labels
    direction: Literal["Ingress", "Egress"]
    peers: tuple[dict[str, Any], ...] | None
    """None: any source (ingress from outside the cluster, which no selector names)."""
    ports: tuple[tuple[str, int], ...]
    reason: str


def allow_to(node_id: str) -> str:
    """The name of the policy that admits a node's consumers (what a diagnosis names)."""
    return f"allow-to-{slug(node_id)}"


def slug(node_id: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", node_id.lower()).strip("-")


def peer(node: Node) -> dict[str, Any]:
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": node.namespace}},
            "podSelector": node.pod_selector}


def edge_id(edge: WiringEdge) -> str:
    return f"{edge.consumer.id}->{edge.provider.id}"


def network_edges(wiring: tuple[WiringEdge, ...]) -> tuple[WiringEdge, ...]:
    return tuple(e for e in wiring if e.kind in EDGE_KINDS and e.endpoint is not None
                 and e.consumer.pods is not None and e.provider.pods is not None)


def _policy(name: str, namespace: str, pods: Labels, types: list[str], reason: str,
            edges: list[WiringEdge] | None = None, **rules: Any) -> dict[str, Any]:
    annotations = {"cd4ml.dev/reason": reason}
    if edges:
        annotations[EDGE_ANNOTATION] = ",".join(edge_id(e) for e in edges)
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(PART_OF), "annotations": annotations},
        "spec": {"podSelector": {"matchLabels": dict(pods)} if pods else {}, "policyTypes": types, **rules},
    }


def _ports(ports: tuple[tuple[str, int], ...]) -> list[dict[str, Any]]:
    return [{"protocol": protocol, "port": port} for protocol, port in ports]


def edge_policies(wiring: tuple[WiringEdge, ...]) -> list[dict[str, Any]]:
    """Per provider node one ingress policy, per consumer node one egress policy: a rule per edge."""
    into: dict[Node, list[WiringEdge]] = {}
    out_of: dict[Node, list[WiringEdge]] = {}
    for edge in network_edges(wiring):
        into.setdefault(edge.provider, []).append(edge)
        out_of.setdefault(edge.consumer, []).append(edge)
    policies = [
        _policy(allow_to(node.id), node.namespace, node.pods or (), ["Ingress"],
                f"wiring edges into {node.id}", edges,
                ingress=[{"from": [peer(e.consumer)], "ports": [{"protocol": "TCP", "port": e.target.pod_port}]}
                         for e in edges])
        for node, edges in into.items()]
    policies += [
        _policy(f"allow-from-{slug(node.id)}", node.namespace, node.pods or (), ["Egress"],
                f"wiring edges out of {node.id}", edges,
                egress=[{"to": [peer(e.provider)], "ports": [{"protocol": "TCP", "port": e.target.pod_port}]}
                        for e in edges])
        for node, edges in out_of.items()]
    return policies


def allowances(config: StackConfig, ns: Namespaces, services: dict[str, Service],
               wiring: tuple[WiringEdge, ...] = ()) -> tuple[Allowance, ...]:
    """Paths the platform needs that are not wiring edges, each with its reason."""
    found: list[Allowance] = []
    api = tuple(("TCP", port) for port in API_SERVER_PORTS)
    git = tuple(("TCP", port) for port in GIT_PORTS)
    if "gocd" in services:
        found += [
            Allowance("allow-gocd-server-egress", ns.gocd, gocd.SERVER_PODS, "Egress", tuple(ANYWHERE),
                      tuple(dict.fromkeys(api + git)),
                      "the elastic-agent plugin starts agent pods through the API server; the server "
                      "downloads that plugin from GitHub and polls the model repositories (git over https/ssh)"),
            Allowance("allow-gocd-agents-egress", ns.gocd, gocd.AGENT_ROLE, "Egress", tuple(ANYWHERE),
                      tuple(dict.fromkeys(api + git)),
                      "agents clone the model repositories (git over https/ssh) and deploy with kubectl/helm "
                      "through the API server, where RBAC limits them to their own namespaces"),
        ]
    if "fluentd" in services:
        found.append(Allowance("allow-fluentd-api-server", ns.logging, fluentd.PODS, "Egress", tuple(ANYWHERE), api,
                               "the kubernetes_metadata filter reads pod and namespace labels from the API server"))
    if "elasticsearch" in services:
        es_pods = {"podSelector": {"matchLabels": dict(elasticsearch.PODS)}}
        transport = (("TCP", elasticsearch.TRANSPORT_PORT),)
        found += [
            Allowance("allow-eck-operator-api-server", ns.eck_operator, elasticsearch.OPERATOR_PODS, "Egress",
                      tuple(ANYWHERE), api, "the operator reconciles its resources through the API server"),
            Allowance("allow-eck-webhook", ns.eck_operator, elasticsearch.OPERATOR_PODS, "Ingress", None,
                      (("TCP", elasticsearch.OPERATOR_WEBHOOK_PORT),),
                      "the API server calls the operator's validating webhook; it is not a pod to select"),
            Allowance("allow-elasticsearch-transport-in", ns.logging, elasticsearch.PODS, "Ingress", (es_pods,),
                      transport, "Elasticsearch nodes form one cluster over the transport port"),
            Allowance("allow-elasticsearch-transport-out", ns.logging, elasticsearch.PODS, "Egress", (es_pods,),
                      transport, "Elasticsearch nodes form one cluster over the transport port"),
        ]
    if hosts.published(config):
        controller = ingress.controller_pods(ns.ingress)
        controller_peer = peer(Node("ingress-controller", ns.ingress, controller))
        solvers = {"podSelector": {"matchLabels": dict(ingress.ACME_SOLVER_PODS)}}
        solver_port = (("TCP", ingress.ACME_SOLVER_PORT),)
        found += [
            Allowance("allow-users-ingress", ns.ingress, controller, "Ingress", None,
                      (("TCP", ingress.WEB_PORT), ("TCP", ingress.WEBSECURE_PORT)),
                      "people (and Let's Encrypt's HTTP-01 checks) reach the controller through its LoadBalancer"),
            Allowance("allow-ingress-api-server", ns.ingress, controller, "Egress", tuple(ANYWHERE), api,
                      "the controller watches Ingresses, Services and EndpointSlices through the API server"),
            Allowance("allow-ingress-acme-solvers", ns.ingress, controller, "Egress", (solvers,), solver_port,
                      "while a certificate is issued, the controller routes the HTTP-01 challenge to "
                      "cert-manager's solver pod, beside it (the certificates live in its namespace)"),
            Allowance("allow-acme-solver", ns.ingress, ingress.ACME_SOLVER_PODS, "Ingress",
                      (controller_peer,), solver_port,
                      "the ingress controller routes the HTTP-01 challenge to cert-manager's solver pod"),
            Allowance("allow-cert-manager-egress", ns.cert_manager, ingress.CERT_MANAGER_PODS, "Egress",
                      tuple(ANYWHERE), tuple(dict.fromkeys((("TCP", 80),) + api)),
                      "cert-manager works through the API server, orders certificates from the ACME server "
                      "(443) and checks its own HTTP-01 challenge through the public address (80)"),
            # Where the CNI short-circuits a LoadBalancer's IP inside the cluster (kube-proxy, GKE
            # Dataplane V2), the self-check above lands on the controller's pod, not an outside address.
            Allowance("allow-cert-manager-self-check", ns.cert_manager, ingress.CERT_MANAGER_CONTROLLER_PODS,
                      "Egress", (controller_peer,), (("TCP", ingress.WEB_PORT),),
                      "cert-manager checks its HTTP-01 challenge at the public address before Let's Encrypt "
                      "does; inside the cluster that address can be the controller's own pod"),
            Allowance("allow-cert-manager-webhook", ns.cert_manager, ingress.CERT_MANAGER_WEBHOOK_PODS, "Ingress",
                      None, (("TCP", ingress.CERT_MANAGER_WEBHOOK_PORT),),
                      "the API server calls cert-manager's webhook; it is not a pod to select"),
        ]
    if config.exposure is Exposure.NODE_PORT:
        for name in NODE_PORT_SERVICES:
            if name in services and (ep := services[name].endpoint):
                found.append(Allowance(f"allow-users-{name}", ep.namespace, SERVICE_PODS[name], "Ingress", None,
                                       (("TCP", ep.pod_port),),
                                       "exposure node-port: people reach the service on a node's port, from "
                                       "addresses no selector names; it authenticates every request"))
    return tuple(found)


def allowance_policy(allowance: Allowance) -> dict[str, Any]:
    peers = {"from" if allowance.direction == "Ingress" else "to": list(allowance.peers)} if allowance.peers else {}
    rule = {**peers, "ports": _ports(allowance.ports)}
    rules: dict[str, Any] = {allowance.direction.lower(): [rule]}
    return _policy(allowance.name, allowance.namespace, allowance.pods, [allowance.direction], allowance.reason,
                   **rules)


def namespace_policies(namespace: str) -> list[dict[str, Any]]:
    return [
        _policy("default-deny", namespace, (), ["Ingress", "Egress"],
                "nothing reaches or leaves a pod unless a policy below allows it"),
        _policy("allow-dns", namespace, (), ["Egress"], "every pod resolves Service names",
                egress=[{"to": [DNS_PEER], "ports": _ports((("UDP", 53), ("TCP", 53)))}]),
    ]


def build(config: StackConfig, ns: Namespaces, namespaces: tuple[str, ...], services: dict[str, Service],
          wiring: tuple[WiringEdge, ...]) -> Service:
    policies = [p for namespace in namespaces for p in namespace_policies(namespace)]
    policies += edge_policies(wiring)
    policies += [allowance_policy(a) for a in allowances(config, ns, services, wiring)]
    return Service(name=NAME, namespace=ns.gocd, endpoint=None, credentials=None, secrets=(),
                   stages=(Stage(objects=tuple(policies)),), workloads=())
