"""Smoke in cluster mode, against a fake Kubernetes API at the client boundary (tests/fake_kube.py):
port-forwards carry real bytes to the stand-ins and a real MLflow server, probe pods run their
command locally, and every call that would reach the API server is recorded and asserted on."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest
from fake_kube import FakeCluster
from smoke_fixtures import (
    GOCD_ADMIN,
    MLFLOW_ADMIN,
    PASSWORDS,
    PIPELINES_LOGIN,
    STACK_CONFIG,
    StandInPlatform,
    runs_ahead,
)
from test_smoke import FAULT_MATRIX, PUBLISHED_ONLY, WORKSHOP_ONLY

from infra.config import load_config
from infra.platform.build import build_platform
from infra.render import render_kit_chart
from infra.smoke.cluster import KubeCluster
from infra.smoke.runner import declared_pods, run_in_cluster, select

AGENT = "system:serviceaccount:cd4ml-gocd:gocd-agent"
(APP_CHART,) = build_platform(load_config({}), "local").extra("app-environments").kit_charts
APP_OBJECTS = render_kit_chart(APP_CHART)
"""The ConfigMaps the kit's app-environments chart really renders: what probes' envFrom reads."""


def fake_cluster_for(platform: StandInPlatform, mlflow_url: str, grants=None) -> tuple[FakeCluster, dict]:
    document = platform.document()
    as_json = document.to_json()
    local = lambda url: f"127.0.0.1:{urlparse(url).port}"  # noqa: E731
    backends = {"elasticsearch-es-http": local(platform.es.url), "kibana-kb-http": local(platform.kibana.url),
                "grafana": local(platform.grafana.url), "gocd-server": local(platform.gocd.url),
                "fluentd": local(platform.forward.url), "mlflow": local(mlflow_url),
                "gitea-http": local(platform.gitea.url)}
    secrets = {("cd4ml-logging", "elasticsearch-user-admin"): {"username": "cd4ml-admin",
                                                                "password": PASSWORDS["cd4ml-admin"]},
               ("cd4ml-monitoring", "grafana-admin"): {"admin-user": "admin", "admin-password": "grafana-admin-pw"},
               ("cd4ml-gocd", "gocd-admin"): {"username": GOCD_ADMIN[0], "password": GOCD_ADMIN[1]},
               ("cd4ml-mlflow", "mlflow-admin"): dict(zip(("username", "password"), MLFLOW_ADMIN, strict=True)),
               ("cd4ml-git", "gitea-admin"): {"username": "cd4ml-admin", "password": "gitea-admin-pw"}}
    # The tenant's MLflow login wherever its edges say the consumers find it.
    for edge in as_json["wiring"]:
        if edge["to"] == "mlflow" and edge["kind"] == "connect":
            secrets[tuple(edge["credentials_secret"].split("/", 1))] = dict(zip(("username", "password"),
                                                                                 PIPELINES_LOGIN, strict=True))
    mlflow_edge = next(e["url"] for e in as_json["wiring"] if (e["from"], e["to"]) == ("gocd-agents", "mlflow"))
    gocd_edge = next(e["url"] for e in as_json["wiring"] if (e["from"], e["to"]) == ("gocd-agents", "gocd"))
    gitea_edge = next(e["url"] for e in as_json["wiring"] if (e["from"], e["to"]) == ("gocd-agents", "gitea"))
    forward = urlparse(next(e["url"] for e in as_json["wiring"] if (e["from"], e["to"]) == ("gocd-agents", "fluentd")))
    configmaps = {(o["metadata"]["namespace"], o["metadata"]["name"]): dict(o["data"]) for o in APP_OBJECTS
                  if o["kind"] == "ConfigMap"}
    cluster = FakeCluster(
        as_json, backends, secrets,
        grants if grants is not None else {(AGENT, "cd4ml-staging"), (AGENT, "cd4ml-production")},
        es_for_logs=(platform.es.url, ("fluentd", PASSWORDS["fluentd"])),
        dns={mlflow_edge: mlflow_url, f"{forward.hostname}:{forward.port}": backends["fluentd"],
             gocd_edge: platform.gocd.url + "/go", gitea_edge: platform.gitea.url},
        configmaps=configmaps)
    return cluster, document


def run(mlflow_url: str, faults=frozenset(), grants=None, tweak=None, checks=None):
    """Every check (or `checks`) in cluster mode against the stand-ins behind the fake API."""
    platform = StandInPlatform(mlflow_url, faults=frozenset(faults))
    try:
        cluster, document = fake_cluster_for(platform, mlflow_url, grants)
        if tweak:
            tweak(cluster)
        results = run_in_cluster(document, KubeCluster(cluster.apis()), checks or select(), timeout=3.0,
                                 declared_pods=declared_pods(build_platform(load_config(STACK_CONFIG), "local"), document))
    finally:
        platform.stop()
    return {r.name: r for r in results}, cluster


PLATFORM_CHECKS = tuple(c for c in select() if c.service == "platform")
"""What the Kubernetes API alone answers (infra/smoke/checks/kubernetes.py)."""


@pytest.fixture(scope="module")
def healthy(mlflow_server):
    """One healthy run, for the tests that read what it reported and sent (none changes either)."""
    return run(mlflow_server.url)


def test_every_check_runs_and_passes_in_cluster_mode(healthy):
    results, cluster = healthy
    assert {n: r.status for n, r in results.items() if r.status != "pass"} == dict.fromkeys(
        PUBLISHED_ONLY | WORKSHOP_ONLY, "skip")
    assert len(results) == 41
    calls = [kind for kind, _ in cluster.calls]
    assert calls.count("create_pod") == 9 and calls.count("delete_pod") == 9  # 2 + agents x 3 + 2 envs x 2
    forwarded = {args[1] for kind, args in cluster.calls if kind == "portforward"}
    assert {"elasticsearch-es-http-pod-0", "mlflow-pod-0", "fluentd-pod-0", "grafana-pod-0"} <= forwarded
    assert ("read_secret", ("cd4ml-logging", "elasticsearch-user-admin")) in cluster.calls


def test_probe_pods_run_as_the_agents_with_their_environment(healthy):
    _, cluster = healthy
    pods = {body["metadata"]["name"].split("-", 3)[3]: body for kind, body in cluster.calls if kind == "create_pod"}
    agents = pods["mlflow"]
    assert agents["metadata"]["namespace"] == "cd4ml-gocd"
    assert agents["spec"]["serviceAccountName"] == "gocd-agent"
    env = {e["name"]: e.get("value") or e["valueFrom"]["secretKeyRef"] for e in agents["spec"]["containers"][0]["env"]}
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow.cd4ml-mlflow.svc.cluster.local:5000"
    # The agents' MLflow login, from the Secret their edge names, never a literal in the pod spec.
    assert env["MLFLOW_TRACKING_PASSWORD"] == {"name": "mlflow-login-cd4ml", "key": "password"}
    assert agents["spec"]["containers"][0]["image"] == "docker.io/burakince/mlflow:3.15.1"
    logs = pods["logs"]
    assert logs["metadata"]["namespace"] == "cd4ml-staging"
    assert logs["spec"]["automountServiceAccountToken"] is False
    assert logs["metadata"]["labels"]["cd4ml.dev/smoke-probe"] == "true"
    # The agents' probe is, to the network policies, one of the agents' pods; all pass `restricted`.
    assert agents["metadata"]["labels"]["cd4ml.dev/tenant"] == "cd4ml"
    assert agents["metadata"]["labels"]["app.kubernetes.io/component"] == "gocd-agent"
    for pod in pods.values():
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        assert pod["spec"]["containers"][0]["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_deploy_rights_are_asked_for_every_namespace(healthy):
    _, cluster = healthy
    reviews = {args[3]: args for kind, args in cluster.calls if kind == "access_review"}
    assert set(reviews) == {"cd4ml-staging", "cd4ml-production", "cd4ml-gocd", "cd4ml-logging", "cd4ml-monitoring",
                            "cd4ml-mlflow", "cd4ml-eck-operator", "cd4ml-git"}
    assert all(args[:3] == (AGENT, "create", "deployments") for args in reviews.values())


def no_ready_pod_for_mlflow(cluster: FakeCluster) -> None:
    del cluster.backends["mlflow"]


def grafana_service_missing(cluster: FakeCluster) -> None:
    del cluster.services["grafana"]


def logs_not_shipped(cluster: FakeCluster) -> None:
    cluster.ship_container_logs = False


def agents_cannot_reach_mlflow(cluster: FakeCluster) -> None:
    mlflow_url = next(url for url in cluster.dns if url.startswith("http://mlflow."))
    cluster.namespace_dns["cd4ml-gocd"] = {mlflow_url: "http://127.0.0.1:9"}


def app_mlflow_login_refused(cluster: FakeCluster) -> None:
    """The staging namespace's MLflow login Secret holds a password MLflow does not know."""
    cluster.secrets[("cd4ml-staging", "mlflow-login")] = {"username": "cd4ml-pipelines",
                                                           "password": "not-the-generated-password"}


def agents_cannot_reach_gocd(cluster: FakeCluster) -> None:
    """What a network policy without the agents -> gocd rule does: the agents' namespace has no way there."""
    gocd_url = next(url for url in cluster.dns if url.startswith("http://gocd-server."))
    cluster.namespace_dns["cd4ml-gocd"] = {gocd_url: "http://127.0.0.1:9/go"}


def agents_cannot_reach_gitea(cluster: FakeCluster) -> None:
    """What a network policy without the agents -> gitea rule does: jobs cannot check out their material."""
    gitea_url = next(url for url in cluster.dns if url.startswith("http://gitea-http."))
    cluster.namespace_dns["cd4ml-gocd"] = {gitea_url: "http://127.0.0.1:9"}


def agents_fluentd_host_wrong(cluster: FakeCluster) -> None:
    cluster.dns = {k: ("127.0.0.1:9" if ":" in k and not k.startswith("http") else v) for k, v in cluster.dns.items()}


def configmap_points_elsewhere(namespace: str):
    def tweak(cluster: FakeCluster) -> None:
        data = cluster.configmaps[(namespace, "platform-endpoints")]
        data["FLUENTD_PORT"] = "24225"
        data["MLFLOW_TRACKING_URI"] = "http://mlflow.cd4ml-mlflow.svc.cluster.local:5001"
    return tweak


CLUSTER_FAULTS = [
    ("gocd-agents->fluentd", "agents-fluentd-unreachable", {"tweak": agents_fluentd_host_wrong},
     {"wire.gocd-agents-fluentd", "wire.app-fluentd"}, "FLUENTD_HOST/FLUENTD_PORT"),
    ("app:staging->fluentd, ->mlflow", "staging-configmap-wrong",
     {"tweak": configmap_points_elsewhere("cd4ml-staging")},
     {"wire.app-fluentd", "wire.app-mlflow"}, "ConfigMap cd4ml-staging/platform-endpoints"),
    ("app:production->fluentd, ->mlflow", "production-configmap-wrong",
     {"tweak": configmap_points_elsewhere("cd4ml-production")},
     {"wire.app-fluentd", "wire.app-mlflow"}, "ConfigMap cd4ml-production/platform-endpoints"),
    ("gocd-agents->namespace:cd4ml-production", "deployer-binding-missing-production",
     {"grants": {(AGENT, "cd4ml-staging")}}, {"wire.gocd-agents-deploy"}, "RoleBinding 'deployer' in cd4ml-production"),
    ("gocd-agents->namespace:cd4ml-staging", "deployer-binding-missing", {"grants": {(AGENT, "cd4ml-production")}},
     {"wire.gocd-agents-deploy"}, "RoleBinding 'deployer' in cd4ml-staging"),
    ("gocd-agents (least privilege)", "agents-may-deploy-into-platform", {"grants": {
        (AGENT, "cd4ml-staging"), (AGENT, "cd4ml-production"), (AGENT, "cd4ml-logging")}},
     {"wire.gocd-agents-deploy"}, "rights beyond the application namespaces"),
    ("app:staging->mlflow (login)", "app-mlflow-login-refused", {"tweak": app_mlflow_login_refused},
     {"wire.app-mlflow"}, "is refused (HTTP 401)"),
    ("gocd-agents->gocd", "agents-cannot-reach-gocd", {"tweak": agents_cannot_reach_gocd},
     {"wire.gocd-agents-gocd"}, "agents could not register"),
    ("gocd-agents->gitea", "agents-cannot-reach-gitea", {"tweak": agents_cannot_reach_gitea},
     {"wire.gocd-agents-gitea"}, "could not check out their repository"),
    ("gocd-agents->mlflow", "agents-cannot-reach-mlflow", {"tweak": agents_cannot_reach_mlflow},
     {"wire.gocd-agents-mlflow"}, "agents cannot reach MLflow"),
    ("app->fluentd (container logs)", "container-logs-not-shipped", {"tweak": logs_not_shipped},
     {"wire.container-logs-elasticsearch"}, "does not tail"),
    ("mlflow (cluster)", "no-ready-mlflow-pod", {"tweak": no_ready_pod_for_mlflow},
     {"mlflow.health", "mlflow.rest", "mlflow.run", "wire.gocd-agents-mlflow"}, "no ready pod"),
    ("grafana (cluster)", "grafana-service-missing", {"tweak": grafana_service_missing},
     {"grafana.health", "grafana.datasources", "grafana.dashboards",
                                                       "wire.grafana-elasticsearch"}, "cannot read Service"),
]


@pytest.fixture(scope="module")
def fault_runs(request, mlflow_server):
    """The selected faults' runs, ahead of their tests (smoke_fixtures.runs_ahead), two at a time: the
    probes are processes of their own, which a second core runs beside the first."""
    options = {fault: options for _, fault, options, _, _ in CLUSTER_FAULTS}
    with runs_ahead(request, "fault", lambda fault: run(mlflow_server.url, **options[fault]), workers=2) as futures:
        yield futures


@pytest.mark.parametrize("edge, fault, options, expected, cause", CLUSTER_FAULTS, ids=[f[1] for f in CLUSTER_FAULTS])
def test_cluster_fault_is_caught_by_exactly_the_right_checks(fault_runs, edge, fault, options, expected, cause):
    results, _ = fault_runs[fault].result()
    failed = {n for n, r in results.items() if r.status == "fail"}
    FAULT_MATRIX.append((edge, fault, ", ".join(sorted(failed)) or "-", "caught" if failed == expected else "WRONG"))
    assert failed == expected
    assert cause in results[sorted(expected)[-1]].detail, results[sorted(expected)[-1]].detail
    assert all(r.status == "pass" for n, r in results.items() if n not in expected | PUBLISHED_ONLY | WORKSHOP_ONLY)


EDGE_FAULTS = {
    ("fluentd", "elasticsearch"): "fluentd-wrong-credentials",
    ("kibana", "elasticsearch"): "kibana-wrong-host",
    ("grafana", "elasticsearch"): "grafana-wrong-credentials",
    ("gocd-agents", "gocd"): "agents-cannot-reach-gocd",
    ("gocd", "gitea"): "gitea-reader-not-collaborator",
    ("gocd-agents", "gitea"): "agents-cannot-reach-gitea",
    ("gocd-agents", "mlflow"): "agents-cannot-reach-mlflow",
    ("gocd-agents", "fluentd"): "agents-fluentd-unreachable",
    ("gocd-agents", "namespace:cd4ml-staging"): "deployer-binding-missing",
    ("gocd-agents", "namespace:cd4ml-production"): "deployer-binding-missing-production",
    ("app:staging", "fluentd"): "staging-configmap-wrong",
    ("app:staging", "mlflow"): "staging-configmap-wrong",
    ("app:production", "fluentd"): "production-configmap-wrong",
    ("app:production", "mlflow"): "production-configmap-wrong",
}
"""Which injected fault breaks which wiring edge (each fault is in FAULTS or CLUSTER_FAULTS)."""
PROVEN_BY_UP = {"configure", "manage"}
"""Edges `up` itself proves: a configure Job is awaited to completion, and the Elasticsearch resource
to health green, which ECK reports only once it reaches the cluster's API."""


def test_fault_matrix_covers_every_wiring_edge():
    from test_smoke import FAULTS

    from infra.config import SERVICE_NAMES
    from infra.document import PlatformDocument

    every_service = load_config({"cd4ml:services": list(SERVICE_NAMES)})  # the defaults, as it happens
    wiring = PlatformDocument.of(build_platform(every_service, "local")).to_json()["wiring"]
    edges = {(e["from"], e["to"]) for e in wiring if e["kind"] not in PROVEN_BY_UP}
    assert edges == set(EDGE_FAULTS), "a wiring edge without an injected fault, or a stale entry"
    assert {e["kind"] for e in wiring} == {"connect", "deploy"} | PROVEN_BY_UP
    known_faults = {f[1] for f in FAULTS} | {f[1] for f in CLUSTER_FAULTS}
    assert set(EDGE_FAULTS.values()) <= known_faults


def test_api_only_checks_what_the_api_answers_and_skips_the_rest_saying_why(mlflow_server):
    """A cluster whose pods run nothing (envtest): login Secrets, network policies, the admission of the
    kit's pods and the agents' deploy rights are checked for real; everything needing a running pod is
    skipped with the reason, and no port-forward is even tried."""
    platform = StandInPlatform(mlflow_server.url)
    try:
        cluster, document = fake_cluster_for(platform, mlflow_server.url)
        results = {r.name: r for r in run_in_cluster(
            document, KubeCluster(cluster.apis()), select(), timeout=3.0, api_only=True,
            declared_pods=declared_pods(build_platform(load_config(STACK_CONFIG), "local"), document))}
    finally:
        platform.stop()
    ran = {name for name, r in results.items() if r.status != "skip"}
    assert ran == {"platform.credentials", "platform.network-policies", "platform.admission", "wire.gocd-agents-deploy"}
    assert all(r.status == "pass" for name, r in results.items() if name in ran), results
    skipped = [r for r in results.values() if r.status == "skip" and not r.name.startswith("ingress.")
               and r.name not in WORKSHOP_ONLY]
    assert skipped and all("needs running pods (--api-only" in r.detail for r in skipped)
    assert "fewer than two participants" in results["gocd.agents-isolation"].detail
    assert not [c for c in cluster.calls if c[0] in ("portforward", "create_pod")]


def test_a_deleted_policy_and_a_refused_pod_are_each_caught_by_their_check(mlflow_server):
    """Only the API's checks run: what this asserts on (the fault matrix covers the rest)."""
    def break_it(cluster):
        cluster.network_policies["cd4ml-mlflow"].discard("default-deny")
        cluster.pod_security["cd4ml-gocd"] = "restricted"  # the agent pod needs baseline's leeway? (it does not)

    results, _ = run(mlflow_server.url, tweak=break_it, checks=PLATFORM_CHECKS)
    assert results["platform.network-policies"].status == "fail"
    assert "default-deny" in results["platform.network-policies"].detail
    assert results["platform.admission"].status == "pass"  # the agents' pod passes even `restricted`

    def forbid(cluster):
        cluster.pod_security["cd4ml-staging"] = "baseline"
        original = cluster.create_namespaced_pod

        def refuse(namespace, body, dry_run=None):
            if dry_run and namespace == "cd4ml-staging":
                raise RuntimeError("(403) exceeded quota: environment-quota, requested: limits.cpu=100m")
            return original(namespace, body, dry_run=dry_run)

        cluster.create_namespaced_pod = refuse

    results, _ = run(mlflow_server.url, tweak=forbid, checks=PLATFORM_CHECKS)
    assert results["platform.admission"].status == "fail" and "exceeded quota" in results["platform.admission"].detail
