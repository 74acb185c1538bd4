"""The Pulumi program under Pulumi's own mocks: what it registers, under which parent, in what order."""

from __future__ import annotations

import pulumi
import pytest
from pulumi_harness import RecordingMonitor, run_program, unsecret

from infra.config import load_config
from infra.platform.build import build_platform

COMPONENT_TYPES = {
    "gocd": "cd4ml:platform:GoCD",
    "elasticsearch": "cd4ml:platform:Elasticsearch",
    "kibana": "cd4ml:platform:Kibana",
    "fluentd": "cd4ml:platform:Fluentd",
    "grafana": "cd4ml:platform:Grafana",
    "mlflow": "cd4ml:platform:MLflow",
}


@pytest.fixture(scope="module")
def program() -> RecordingMonitor:
    return run_program({"cd4ml:profile": "laptop"})


@pytest.fixture(scope="module")
def model():
    return build_platform(load_config({"cd4ml:profile": "laptop"}), "local")


def by_type(monitor: RecordingMonitor, type_: str):
    return [r for r in monitor.registrations if r.type == type_]


def one(monitor: RecordingMonitor, name: str):
    (found,) = [r for r in monitor.registrations if r.name == name]
    return found


def waits_for(monitor: RecordingMonitor, resource) -> set[str]:
    """Every URN a resource waits for, directly or through what it waits for."""
    dependencies = {r.urn: r.dependencies for r in monitor.registrations}
    seen: set[str] = set()
    todo = list(resource.dependencies)
    while todo:
        urn = todo.pop()
        if urn not in seen:
            seen.add(urn)
            todo += dependencies.get(urn, ())
    return seen


def test_one_component_per_service(program):
    for service, type_ in COMPONENT_TYPES.items():
        components = by_type(program, type_)
        assert [c.name for c in components] == [service]


def test_every_kubernetes_resource_is_parented_to_a_kit_component(program):
    components = {r.urn: r.type for r in program.registrations if r.type.startswith("cd4ml:platform:")}
    kube = [r for r in program.registrations
            if r.type.startswith("kubernetes:") and r.type != "pulumi:providers:kubernetes"]
    assert len(kube) > 20
    for resource in kube:
        assert resource.parent in components, f"{resource.type} {resource.name} has parent {resource.parent}"


def test_releases_are_the_models_pinned_charts_with_its_values(program, model):
    releases = {r.inputs["name"]: r for r in by_type(program, "kubernetes:helm.sh/v3:Release")}
    expected = {r.name: r for s in model.services.values() for r in s.releases}
    assert set(releases) == set(expected)
    for name, release in expected.items():
        registered = releases[name].inputs
        assert registered["chart"] == release.chart
        assert registered["version"] == release.version
        assert registered["repositoryOpts"]["repo"] == release.repo
        assert registered["namespace"] == release.namespace
        assert registered["values"] == release.values


def test_generated_passwords_reach_the_secrets(program):
    passwords = {r.name: f"mock-password-for-{r.name}"
                 for r in by_type(program, "random:index/randomPassword:RandomPassword")}
    assert len(passwords) == 9
    string_data = {}
    for r in by_type(program, "kubernetes:core/v1:Secret"):
        data, is_secret = unsecret(r.inputs["stringData"])
        key = (r.inputs["metadata"]["namespace"], r.inputs["metadata"]["name"])
        assert is_secret or key == ("cd4ml-logging", "elasticsearch-roles"), f"{key} is not carried as a secret"
        string_data[key] = data
    assert string_data[("cd4ml-logging", "elasticsearch-user-fluentd")] == {
        "username": "fluentd", "roles": "cd4ml_log_writer", "password": passwords["passwords-elasticsearch-fluentd"]}
    # Grafana's copy of its Elasticsearch user holds the same generated password as the realm's.
    realm = string_data[("cd4ml-logging", "elasticsearch-user-grafana")]["password"]
    copy = string_data[("cd4ml-monitoring", "elasticsearch-user-grafana")]["password"]
    assert realm == copy == passwords["passwords-elasticsearch-grafana"]
    admin = string_data[("cd4ml-monitoring", "grafana-admin")]
    assert admin["admin-password"] == passwords["passwords-grafana-admin"]
    # GoCD: the admin login, and a password file holding only the bcrypt hash of the same password.
    gocd_admin = string_data[("cd4ml-gocd", "gocd-admin")]
    assert gocd_admin == {"username": "cd4ml-admin", "password": passwords["passwords-gocd-admin"]}
    password_file = string_data[("cd4ml-gocd", "gocd-password-file")]["password.properties"]
    assert password_file == "cd4ml-admin:$2a$10$mock-bcrypt-of-passwords-gocd-admin\n"


def test_eck_resources_wait_for_the_operator_and_kibana_for_elasticsearch(program):
    operator = one(program, "elasticsearch-elastic-operator")
    es_objects = one(program, "elasticsearch-elasticsearch-elasticsearch")
    assert es_objects.type == "kubernetes:elasticsearch.k8s.elastic.co/v1:Elasticsearch"
    assert operator.urn in es_objects.dependencies
    assert es_objects.inputs["metadata"]["annotations"]["pulumi.com/waitFor"] == "jsonpath={.status.phase}=Ready"
    kibana = one(program, "kibana-kibana-kibana")
    assert kibana.type == "kubernetes:kibana.k8s.elastic.co/v1:Kibana"
    assert es_objects.urn in waits_for(program, kibana)
    for release in ("fluentd-fluentd", "grafana-grafana"):
        assert es_objects.urn in waits_for(program, one(program, release))


def test_everything_waits_for_the_namespaces(program):
    namespaces = {r.urn for r in by_type(program, "kubernetes:core/v1:Namespace")}
    assert len(namespaces) == 8
    for r in program.registrations:
        if r.type.startswith("kubernetes:") and r.type != "kubernetes:core/v1:Namespace":
            assert namespaces <= waits_for(program, r), f"{r.name} does not wait for every namespace"


def test_kit_chart_objects_are_the_rendered_chart(program, model):
    from infra.render import render_kit_chart

    group = one(program, "app-environments-objects-0")
    (chart,) = model.extra("app-environments").kit_charts
    assert group.inputs["objs"] == render_kit_chart(chart)


def test_gocd_is_configured_only_after_its_release_and_secrets(program):
    configure = one(program, "gocd-objects-2")
    kinds = [o["kind"] for o in configure.inputs["objs"]]
    assert kinds == ["ConfigMap", "Job"]
    assert one(program, "gocd-gocd").urn in configure.dependencies
    release_waits = waits_for(program, one(program, "gocd-gocd"))
    # The release mounts the password file, so it waits for that Secret (and the admin Secret the Job reads).
    for secret in ("gocd-secret-cd4ml-gocd-gocd-password-file", "gocd-secret-cd4ml-gocd-gocd-admin"):
        assert one(program, secret).urn in release_waits


def test_switched_off_service_registers_nothing():
    monitor = run_program({"cd4ml:services": ["gocd", "mlflow"]})
    types = {r.type for r in monitor.registrations}
    assert "cd4ml:platform:GoCD" in types and "cd4ml:platform:MLflow" in types
    assert not types & {COMPONENT_TYPES[s] for s in ("elasticsearch", "kibana", "fluentd", "grafana")}
    # GoCD's and MLflow's are left: the Elasticsearch users and Grafana's admin went with their services.
    assert sorted(r.name for r in by_type(monitor, "random:index/randomPassword:RandomPassword")) == [
        "passwords-cd4ml-pipelines", "passwords-gocd-admin", "passwords-mlflow-admin"]


def test_bad_config_creates_nothing():
    with pytest.raises(pulumi.RunError) as caught:
        run_program({"cd4ml:elasticsearchNodes": "0"})
    assert "cd4ml:elasticsearchNodes = '0': must be an integer from 1 to 9" in str(caught.value)


@pytest.mark.parametrize("pulumi_mocks", [{"project": "cd4ml-cluster", "stack": "local",
                                           "config": {"cd4ml-cluster:kindBinary": "/opt/kind"}}], indirect=True)
def test_the_cluster_stack_program_creates_kind_and_exports_a_secret_kubeconfig(pulumi_mocks):
    from infra.cluster import KIND_NODE_IMAGE
    from infra.cluster.program import run

    pulumi.runtime.test(run)()
    monitor = pulumi_mocks
    commands = {r.name: r for r in monitor.registrations if r.type == "command:local:Command"}
    cluster = commands["kind-cluster"]
    assert cluster.inputs["create"] == f"/opt/kind create cluster --name cd4ml --image {KIND_NODE_IMAGE} --wait 5m"
    assert cluster.inputs["delete"] == "/opt/kind delete cluster --name cd4ml"
    assert commands["kind-kubeconfig"].inputs["create"] == "/opt/kind get kubeconfig --name cd4ml"
    assert cluster.urn in commands["kind-kubeconfig"].dependencies
    # Replaced (a new node image), the old cluster goes first: kind refuses a second one of the same name.
    assert cluster.delete_before_replace is True
    # ...and the new cluster's kubeconfig is read again (its own API server port and certificates).
    assert commands["kind-kubeconfig"].inputs["triggers"] == ["kind-cluster-id"]
    component = next(r for r in monitor.registrations if r.type == "cd4ml:cluster:KindCluster")
    assert all(c.parent == component.urn for c in commands.values())


def test_the_platform_deploys_with_the_cluster_stacks_kubeconfig():
    monitor = run_program({"cd4ml:clusterStack": "organization/cd4ml-cluster/local"})
    reference = next(r for r in monitor.registrations if r.type == "pulumi:pulumi:StackReference")
    assert reference.inputs["id"] == "organization/cd4ml-cluster/local"
    provider = next(r for r in monitor.registrations if r.type == "pulumi:providers:kubernetes")
    assert "context" not in provider.inputs and "deleteUnreachable" not in provider.inputs
    kubeconfig, _ = unsecret(provider.inputs["kubeconfig"])
    assert kubeconfig.endswith("# mock kubeconfig of the cluster stack")


@pytest.mark.parametrize("environ, recorded", [
    ({"CD4ML_KUBE_CONTEXT": "k3d-lab"}, {"context": "k3d-lab", "clusterStack": None}),
    ({"CD4ML_CLUSTER_STACK": "organization/cd4ml-cluster/local"},
     {"context": None, "clusterStack": "organization/cd4ml-cluster/local"}),
])
def test_the_stack_records_the_cluster_it_runs_on(monkeypatch, environ, recorded):
    """`cd4ml up` tells the program where it deploys (never by writing the user's stack file); the
    provider is pinned to it and the stack exports it, so smoke and status check that cluster and a
    later `up` deploys there, whatever the current kube context is by then."""
    import pulumi

    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    seen = {}
    original = pulumi.export
    monkeypatch.setattr(pulumi, "export", lambda name, value: (seen.__setitem__(name, value), original(name, value)))
    monitor = run_program({})
    assert seen["kube"] == recorded
    provider = next(r for r in monitor.registrations if r.type == "pulumi:providers:kubernetes")
    if recorded["context"]:
        assert provider.inputs["context"] == recorded["context"]
