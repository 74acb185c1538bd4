"""Smoke in cluster mode, against a fake Kubernetes API at the client boundary (tests/fake_kube.py):
port-forwards carry real bytes to the stand-ins and a real MLflow server, probe pods run their
command locally, and every call that would reach the API server is recorded and asserted on."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest
from fake_kube import FakeCluster
from smoke_fixtures import PASSWORDS, StandInPlatform
from test_smoke import FAULT_MATRIX, mlflow_server  # noqa: F401 - shared session fixture

from infra.smoke.cluster import KubeCluster
from infra.smoke.runner import run_in_cluster, select

AGENT = "system:serviceaccount:cd4ml-gocd:gocd-agent"


def fake_cluster_for(platform: StandInPlatform, mlflow_url: str, grants=None) -> tuple[FakeCluster, dict]:
    document = platform.document()
    local = lambda url: f"127.0.0.1:{urlparse(url).port}"  # noqa: E731
    backends = {"elasticsearch-es-http": local(platform.es.url), "kibana-kb-http": local(platform.kibana.url),
                "grafana": local(platform.grafana.url), "gocd-server": local(platform.gocd.url),
                "fluentd": local(platform.forward.url), "mlflow": local(mlflow_url)}
    secrets = {("cd4ml-logging", "elasticsearch-user-admin"): {"username": "cd4ml-admin",
                                                                "password": PASSWORDS["cd4ml-admin"]},
               ("cd4ml-monitoring", "grafana-admin"): {"admin-user": "admin", "admin-password": "grafana-admin-pw"}}
    mlflow_edge = next(e["url"] for e in document["wiring"] if (e["from"], e["to"]) == ("gocd-agents", "mlflow"))
    cluster = FakeCluster(
        document, backends, secrets,
        grants if grants is not None else {(AGENT, "cd4ml-staging"), (AGENT, "cd4ml-production")},
        es_for_logs=(platform.es.url, ("fluentd", PASSWORDS["fluentd"])), dns={mlflow_edge: mlflow_url})
    return cluster, document


def run(mlflow_url: str, faults=frozenset(), grants=None, tweak=None):
    platform = StandInPlatform(mlflow_url, faults=frozenset(faults))
    try:
        cluster, document = fake_cluster_for(platform, mlflow_url, grants)
        if tweak:
            tweak(cluster)
        results = run_in_cluster(document, KubeCluster(cluster.apis()), select(), timeout=3.0)
    finally:
        platform.stop()
    return {r.name: r for r in results}, cluster


def test_every_check_runs_and_passes_in_cluster_mode(mlflow_server):  # noqa: F811
    results, cluster = run(mlflow_server.url)
    assert {n: r.detail for n, r in results.items() if r.status != "pass"} == {}
    assert len(results) == 15
    calls = [kind for kind, _ in cluster.calls]
    assert calls.count("create_pod") == 2 and calls.count("delete_pod") == 2
    forwarded = {args[1] for kind, args in cluster.calls if kind == "portforward"}
    assert {"elasticsearch-es-http-pod-0", "mlflow-pod-0", "fluentd-pod-0", "grafana-pod-0"} <= forwarded
    assert ("read_secret", ("cd4ml-logging", "elasticsearch-user-admin")) in cluster.calls


def test_probe_pods_run_as_the_agents_with_their_environment(mlflow_server):  # noqa: F811
    _, cluster = run(mlflow_server.url)
    pods = {body["metadata"]["name"].rsplit("-", 1)[1]: body for kind, body in cluster.calls if kind == "create_pod"}
    agents = pods["mlflow"]
    assert agents["metadata"]["namespace"] == "cd4ml-gocd"
    assert agents["spec"]["serviceAccountName"] == "gocd-agent"
    env = {e["name"]: e["value"] for e in agents["spec"]["containers"][0]["env"]}
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow.cd4ml-mlflow.svc.cluster.local:5000"
    assert agents["spec"]["containers"][0]["image"] == "docker.io/burakince/mlflow:3.15.1"
    logs = pods["logs"]
    assert logs["metadata"]["namespace"] == "cd4ml-staging"
    assert logs["spec"]["automountServiceAccountToken"] is False
    assert logs["metadata"]["labels"]["app.kubernetes.io/component"] == "smoke-probe"


def test_deploy_rights_are_asked_for_every_namespace(mlflow_server):  # noqa: F811
    _, cluster = run(mlflow_server.url)
    reviews = {args[3]: args for kind, args in cluster.calls if kind == "access_review"}
    assert set(reviews) == {"cd4ml-staging", "cd4ml-production", "cd4ml-gocd", "cd4ml-logging", "cd4ml-monitoring",
                            "cd4ml-mlflow", "cd4ml-eck-operator"}
    assert all(args[:3] == (AGENT, "create", "deployments") for args in reviews.values())


def no_ready_pod_for_mlflow(cluster: FakeCluster) -> None:
    del cluster.backends["mlflow"]


def logs_not_shipped(cluster: FakeCluster) -> None:
    cluster.ship_container_logs = False


def agents_resolve_mlflow_wrongly(cluster: FakeCluster) -> None:
    cluster.dns = {url: "http://127.0.0.1:9" for url in cluster.dns}


CLUSTER_FAULTS = [
    ("gocd-agents->namespace:cd4ml-staging", "deployer-binding-missing", {"grants": {(AGENT, "cd4ml-production")}},
     {"wire.gocd-agents-deploy"}, "RoleBinding 'deployer' in cd4ml-staging"),
    ("gocd-agents (least privilege)", "agents-may-deploy-into-platform", {"grants": {
        (AGENT, "cd4ml-staging"), (AGENT, "cd4ml-production"), (AGENT, "cd4ml-logging")}},
     {"wire.gocd-agents-deploy"}, "rights beyond the application namespaces"),
    ("gocd-agents->mlflow", "agents-cannot-reach-mlflow", {"tweak": agents_resolve_mlflow_wrongly},
     {"wire.gocd-agents-mlflow"}, "agents cannot reach MLflow"),
    ("app->fluentd (container logs)", "container-logs-not-shipped", {"tweak": logs_not_shipped},
     {"wire.container-logs-elasticsearch"}, "does not tail"),
    ("mlflow (cluster)", "no-ready-mlflow-pod", {"tweak": no_ready_pod_for_mlflow},
     {"mlflow.health", "mlflow.rest", "mlflow.run", "wire.gocd-agents-mlflow"}, "no ready pod"),
]


@pytest.mark.parametrize("edge, fault, options, expected, cause", CLUSTER_FAULTS, ids=[f[1] for f in CLUSTER_FAULTS])
def test_cluster_fault_is_caught_by_exactly_the_right_checks(mlflow_server, edge, fault, options, expected,  # noqa: F811
                                                             cause):
    results, _ = run(mlflow_server.url, **options)
    failed = {n for n, r in results.items() if r.status == "fail"}
    FAULT_MATRIX.append((edge, fault, ", ".join(sorted(failed)) or "-", "caught" if failed == expected else "WRONG"))
    assert failed == expected
    assert cause in results[sorted(expected)[-1]].detail, results[sorted(expected)[-1]].detail
    assert all(r.status == "pass" for n, r in results.items() if n not in expected)
