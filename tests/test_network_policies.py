"""Network policies from the wiring graph: default-deny everywhere, exactly the edges open.

Two independent readings of the policies `cd4ml plan` writes:
- a direct one (which policy's rules name an edge's peer and port), for "exactly one policy";
- np-guard's network-config-analyzer (NCA, IBM's NetworkPolicy semantics engine, run as a CLI),
  which computes the whole connectivity map of the plan's policies over one stand-in pod per
  wiring node plus a "stranger" pod per namespace. It is not a CNI: whether a cluster's CNI
  enforces policies (kind's kindnet does since v0.24; Calico, Cilium, GKE Dataplane V2 do) is
  for the e2e run. The pods' labels are the model's; that the charts' pods carry them is checked
  against the rendered upstream charts (tests/test_upstream_charts.py).
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from stack_settings import workshop as workshop_settings
from tools import tool

from infra.config import load_config
from infra.plan import write_plan
from infra.platform import network
from infra.platform.build import build_platform
from infra.platform.layout import Namespaces
from infra.platform.model import Platform

KUBE_SYSTEM = "kube-system"


def plan(tmp_path_factory, settings: dict, name: str) -> tuple[Platform, Path]:
    platform = build_platform(load_config(settings), name)
    out = tmp_path_factory.mktemp(name)
    write_plan(platform, out)
    return platform, out


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    return plan(tmp_path_factory, {}, "local")


@pytest.fixture(scope="module")
def workshop(tmp_path_factory):
    return plan(tmp_path_factory, workshop_settings(participants=3), "workshop")


@pytest.fixture(scope="module")
def node_port(tmp_path_factory):
    return plan(tmp_path_factory, {"cd4ml:exposure": "node-port"}, "nodeport")


def policies_in(out: Path) -> list[dict]:
    return [yaml.safe_load(p.read_text()) for p in sorted((out / "objects").glob("*__networkpolicy__*.yaml"))]


def selects(selector: dict, labels: dict) -> bool:
    """matchLabels only: the kit's policies use nothing else (asserted below)."""
    return set(selector.get("matchLabels", {}).items()) <= set(labels.items())


def peer_matches(peer: dict, namespace: str, labels: dict) -> bool:
    if "ipBlock" in peer:
        return False  # addresses outside the cluster: no pod selected by labels
    ns_labels = {"kubernetes.io/metadata.name": namespace}
    return selects(peer.get("namespaceSelector", {}), ns_labels) and selects(peer.get("podSelector", {}), labels)


def rules_allowing(policies: list[dict], direction: str, at: tuple[str, dict], peer: tuple[str, dict],
                   port: int) -> list[str]:
    """Names of the policies with a rule of `direction` letting `at` talk with `peer` on `port`."""
    key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    found = []
    for policy in policies:
        spec = policy["spec"]
        if policy["metadata"]["namespace"] != at[0] or not selects(spec["podSelector"], at[1]):
            continue
        for rule in spec.get(key, []):
            ports = {p["port"] for p in rule.get("ports", [])}
            if port in ports and any(peer_matches(p, *peer) for p in rule.get(peers_key, [])):
                found.append(policy["metadata"]["name"])
    return found


def network_edges(out: Path) -> list[dict]:
    document = json.loads((out / "platform.json").read_text())
    return [e for e in document["wiring"] if e["kind"] in network.EDGE_KINDS]


def test_every_namespace_has_default_deny_and_dns(local, workshop):
    for platform, out in (local, workshop):
        policies = policies_in(out)
        for namespace in platform.namespaces:
            deny = [p for p in policies if p["metadata"]["namespace"] == namespace
                    and p["metadata"]["name"] == "default-deny"]
            assert len(deny) == 1, namespace
            assert deny[0]["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
        # Every selector is plain matchLabels, which the direct reading above relies on.
        for policy in policies:
            for selector in [policy["spec"]["podSelector"]] + [
                    peer.get(k, {}) for rules in (policy["spec"].get("ingress", []), policy["spec"].get("egress", []))
                    for rule in rules for peer in rule.get("from", rule.get("to", [])) for k in peer]:
                assert set(selector) <= {"matchLabels", "cidr"}, policy["metadata"]


def test_every_edge_is_allowed_by_exactly_one_policy_on_each_end(local, workshop):
    for _, out in (local, workshop):
        policies = policies_in(out)
        edges = network_edges(out)
        assert len(edges) >= 12
        for edge in edges:
            consumer = (edge["from_namespace"], edge["from_pods"])
            provider = (edge["to_namespace"], edge["to_pods"])
            into = rules_allowing(policies, "Ingress", provider, consumer, edge["pod_port"])
            out_of = rules_allowing(policies, "Egress", consumer, provider, edge["pod_port"])
            assert into == [f"allow-to-{network.slug(edge['to'])}"], edge
            assert out_of == [f"allow-from-{network.slug(edge['from'])}"], edge


def test_deploy_edges_go_through_the_api_server_egress(local):
    platform, out = local
    policies = policies_in(out)
    deploys = [e for e in platform.wiring if e.kind == "deploy"]
    assert deploys
    for edge in deploys:
        consumer = (edge.consumer.namespace, dict(edge.consumer.pods))
        for port in network.API_SERVER_PORTS:
            assert rules_allowing(policies, "Egress", consumer, (edge.provider.namespace, {}), port) == [], \
                "an API-server rule must name addresses, not the deploy namespace's pods"
        api = [p for p in policies if p["metadata"]["namespace"] == consumer[0]
               and selects(p["spec"]["podSelector"], consumer[1])
               and any({"ipBlock": {"cidr": "0.0.0.0/0"}} in r.get("to", []) and
                       {6443, 443} <= {x["port"] for x in r["ports"]} for r in p["spec"].get("egress", []))]
        assert [p["metadata"]["name"] for p in api] == ["allow-gocd-agents-egress"]


def test_removing_an_edge_removes_exactly_its_rules():
    config = load_config(workshop_settings(participants=2))
    platform = build_platform(config, "workshop")
    dropped = next(e for e in platform.wiring if e.consumer.id == "gocd-agents:p01" and e.provider.id == "mlflow")
    kept = tuple(e for e in platform.wiring if e is not dropped)
    before = {(p["metadata"]["namespace"], p["metadata"]["name"]): p for p in network.edge_policies(platform.wiring)}
    after = {(p["metadata"]["namespace"], p["metadata"]["name"]): p for p in network.edge_policies(kept)}
    assert before.keys() == after.keys()  # both nodes keep their other edges
    changed = {key for key in before if before[key] != after[key]}
    assert changed == {("cd4ml-mlflow", "allow-to-mlflow"), ("cd4ml-gocd", "allow-from-gocd-agents-p01")}
    ingress_before, ingress_after = (d[("cd4ml-mlflow", "allow-to-mlflow")]["spec"]["ingress"] for d in (before, after))
    assert [r for r in ingress_before if r not in ingress_after] == [
        {"from": [network.peer(dropped.consumer)], "ports": [{"protocol": "TCP", "port": 5000}]}]
    assert len(ingress_after) == len(ingress_before) - 1
    # And an edge added opens its path: a model change, nothing hand-written.
    extra = dataclasses.replace(dropped, consumer=dataclasses.replace(dropped.consumer, id="gocd-agents:p02"))
    grown = {(p["metadata"]["namespace"], p["metadata"]["name"]) for p in network.edge_policies(kept + (extra,))}
    assert grown == after.keys()


# --- the connectivity map, computed by NCA ------------------------------------------------------------

NCA_LINE = re.compile(r"^(?P<src>\S+?)(?:\[Pod\])? => (?P<dst>\S+?)(?:\[Pod\])? : (?P<conn>.+)$")


def stand_in_pods(out: Path, namespaces: tuple[str, ...]) -> dict[str, dict]:
    """One pod per wiring node (its model labels), one stranger per namespace that has no
    node selecting every pod: name -> Pod manifest."""
    pods: dict[str, dict] = {}
    document = json.loads((out / "platform.json").read_text())
    every_pod = set()
    for edge in document["wiring"]:
        for side in ("from", "to"):
            labels = edge[f"{side}_pods"]
            if labels is None:
                continue
            namespace = edge[f"{side}_namespace"]
            if not labels:
                every_pod.add(namespace)
            pods[f"{namespace}/{network.slug(edge[side])}"] = {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": network.slug(edge[side]), "namespace": namespace,
                             "labels": labels or {"cd4ml.dev/stand-in": "any"}},
                "spec": {"containers": [{"name": "c", "image": "stand-in:1"}]}}
    for namespace in namespaces:
        if namespace not in every_pod:
            pods[f"{namespace}/stranger"] = {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "stranger", "namespace": namespace, "labels": {"who": "stranger"}},
                "spec": {"containers": [{"name": "c", "image": "stand-in:1"}]}}
    return pods


def connectivity(out: Path, platform: Platform, tmp_path: Path) -> dict[tuple[str, str], str]:
    """(source, destination) -> NCA's connection text, for every allowed pair."""
    world = tmp_path / "world"
    world.mkdir()
    for path in (out / "objects").glob("*.yaml"):
        if "__networkpolicy__" in path.name or "__namespace__" in path.name:
            (world / path.name).write_text(path.read_text())
    pods = stand_in_pods(out, platform.namespaces)
    (world / "pods.yaml").write_text(yaml.safe_dump_all(list(pods.values())))
    result = subprocess.run([str(tool("nca")), "--connectivity", str(world), "--resource_list", str(world),
                             "--output_format", "txt_no_fw_rules"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    pairs = {}
    for line in result.stdout.splitlines():
        match = NCA_LINE.match(line.strip())
        if match:
            pairs[match["src"], match["dst"]] = match["conn"]
    assert pairs, result.stdout[-2000:]
    return pairs


def ports_of(connection: str) -> set[int] | str:
    if connection.strip() == "All connections":
        return "all"
    match = re.search(r"dst_ports:([\d,\-]+)", connection)
    return {int(p) for p in match[1].split(",")} if match else "all"


def pod_to_pod(pairs: dict[tuple[str, str], str]) -> dict[tuple[str, str], set[int] | str]:
    return {(src, dst): ports_of(conn) for (src, dst), conn in pairs.items()
            if "/" in src and "/" in dst and not dst.startswith(KUBE_SYSTEM) and not src.startswith(KUBE_SYSTEM)}


def expected_pod_to_pod(out: Path) -> dict[tuple[str, str], set[int]]:
    expected: dict[tuple[str, str], set[int]] = {}
    for edge in network_edges(out):
        pair = (f"{edge['from_namespace']}/{network.slug(edge['from'])}",
                f"{edge['to_namespace']}/{network.slug(edge['to'])}")
        expected.setdefault(pair, set()).add(edge["pod_port"])
    return expected


@pytest.mark.parametrize("stack", ["local", "workshop"])
def test_connectivity_is_exactly_the_wiring_graph(stack, request, tmp_path):
    platform, out = request.getfixturevalue(stack)
    pairs = connectivity(out, platform, tmp_path)
    assert pod_to_pod(pairs) == expected_pod_to_pod(out)
    # Every pod resolves names, and nothing else in kube-system is reachable.
    for src in {s for s, _ in pairs if "/" in s and not s.startswith(KUBE_SYSTEM)}:
        dns = [ports_of(c) for (s, d), c in pairs.items() if s == src and d.startswith(KUBE_SYSTEM)]
        assert dns == [{53}], src
    # Only the listed allowances leave the cluster, on their ports.
    leaving = {src: ports_of(c) for (src, dst), c in pairs.items()
               if "/" in src and not src.startswith(KUBE_SYSTEM) and "/" not in dst}
    agents = {f"{e.consumer.namespace}/{network.slug(e.consumer.id)}" for e in platform.wiring
              if e.consumer.id.startswith("gocd-agents")}
    assert len(agents) == max(1, len(platform.tenants))
    # A workshop is published: its ingress controller reads Ingresses from the API server.
    controller = {"cd4ml-ingress/ingress-controller": {443, 6443}} if platform.optional_extra("ingress") else {}
    assert leaving == {"cd4ml-gocd/gocd": {22, 443, 6443}, **dict.fromkeys(agents, {22, 443, 6443}),
                       "cd4ml-logging/fluentd": {443, 6443}, "cd4ml-eck-operator/eck-operator": {443, 6443},
                       **controller}
    arriving = {dst: ports_of(c) for (src, dst), c in pairs.items()
                if "/" not in src and "/" in dst and not dst.startswith(KUBE_SYSTEM)}
    # ... and is what the outside reaches (Traefik's web and websecure entry points).
    entry = {"cd4ml-ingress/ingress-controller": {8000, 8443}} if controller else {}
    assert arriving == {"cd4ml-eck-operator/eck-operator": {9443}, **entry}


def test_participants_cannot_reach_each_other(workshop, tmp_path):
    platform, out = workshop
    pairs = pod_to_pod(connectivity(out, platform, tmp_path))
    names = [t.name for t in platform.tenants]
    assert names == ["p01", "p02", "p03"]
    for src, dst in pairs:
        owners = {n for n in names for end in (src, dst) if f"-{n}-" in end or end.endswith(f"-{n}")}
        assert len(owners) <= 1, (src, dst)
    # Each participant's model service reaches exactly Fluentd and MLflow.
    for name in names:
        for env in ("staging", "production"):
            src = f"cd4ml-{name}-{env}/app-{name}-{env}"
            assert {dst for s, dst in pairs if s == src} == {"cd4ml-logging/fluentd", "cd4ml-mlflow/mlflow"}


def test_node_port_exposure_opens_exactly_the_exposed_ports(node_port, tmp_path):
    platform, out = node_port
    pairs = connectivity(out, platform, tmp_path)
    arriving = {dst: ports_of(c) for (src, dst), c in pairs.items()
                if "/" not in src and "/" in dst and not dst.startswith(KUBE_SYSTEM)}
    assert arriving == {"cd4ml-eck-operator/eck-operator": {9443}, "cd4ml-gocd/gocd": {8153},
                        "cd4ml-monitoring/grafana": {3000}, "cd4ml-mlflow/mlflow": {5000}, "cd4ml-git/gitea": {3000}}


def test_every_pod_the_kit_declares_is_a_node_of_the_graph(local):
    """The configure Jobs, the elastic agent pods and the model services carry the labels their
    node's policies select, so none of them is a stranger to its own rules."""
    platform, out = local
    nodes = {(e.namespace, e.pods) for edge in platform.wiring for e in (edge.consumer, edge.provider)
             if e.pods is not None}
    templates = []
    for folder in ("objects", "embedded", "deploys"):
        for path in sorted((out / folder).glob("*.yaml")):
            obj = yaml.safe_load(path.read_text())
            if obj["kind"] == "Pod":
                templates.append((obj["metadata"]["namespace"], obj["metadata"]["labels"], path.name))
            elif obj["kind"] in ("Job", "Deployment", "StatefulSet", "DaemonSet"):
                templates.append((obj["metadata"]["namespace"], obj["spec"]["template"]["metadata"]["labels"],
                                  path.name))
    assert len(templates) >= 7
    for namespace, labels, name in templates:
        assert any(ns == namespace and set(pods) <= set(labels.items()) for ns, pods in nodes), name


def test_the_readme_table_of_reach_is_the_models():
    """The README's 'may reach' and 'reached by' columns say what the local stack's edges and
    allowances allow, service by service: a changed edge without a changed README fails here."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("**Who authenticates how", 1)[1].split("\n\n", 2)[1]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in section.splitlines()[2:]]
    table = {row[0]: (row[3], row[4]) for row in rows}
    platform = build_platform(load_config({}), "local")
    edges = network.network_edges(platform.wiring)

    def row_of(node_id: str) -> str:
        return {"gocd": "gocd (server)", "app:staging": "model services (`app:<env>`)",
                "app:production": "model services (`app:<env>`)"}.get(node_id, node_id)

    for node in {e.consumer.id for e in edges} | {e.provider.id for e in edges}:
        if node.endswith("-configure"):
            continue
        reach, reached = table[row_of(node)]
        for edge in edges:
            if edge.consumer.id == node:
                assert edge.provider.id in reach, (node, edge.provider.id)
            if edge.provider.id == node and not edge.consumer.id.startswith("app:"):
                assert edge.consumer.id in reached, (node, edge.consumer.id)
            if edge.provider.id == node and edge.consumer.id.startswith("app:"):
                assert "every application namespace" in reached, node
    config = load_config({})
    api_users = {a.name for a in network.allowances(config, Namespaces.from_config(config), platform.services)
                 if set(network.API_SERVER_PORTS) <= {port for _, port in a.ports} and a.direction == "Egress"}
    assert api_users == {"allow-gocd-server-egress", "allow-gocd-agents-egress", "allow-fluentd-api-server",
                         "allow-eck-operator-api-server"}
    for name in ("gocd (server)", "gocd-agents", "fluentd", "eck-operator"):
        assert "API server" in table[name][0], name
    for name in ("grafana", "mlflow", "kibana", "elasticsearch"):
        assert "API server" not in table[name][0], name
