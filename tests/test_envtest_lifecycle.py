"""The kit's own `up` and `down` through the real Pulumi engine, its real Kubernetes provider and the kit's
real policy pack, against a real Kubernetes control plane on loopback (tests/envtest/controlplane.py:
etcd and kube-apiserver, no kubelet): the lifecycle faults of a first `make up` that mocks cannot see.

The stack is the kit's program with `services: []` — namespaces, network policies, generated passwords,
the application environments (the kit's own chart, a Helm release from a local path): everything but
the upstream charts, which need their repositories. Nothing runs in the cluster (no kubelet); objects
are stored, admitted (RBAC, PodSecurity) and served as on a cluster.

Needs the binaries `make envtest` builds (tests/envtest/build.sh) and the kit's runtime venv (`.venv`,
which `make up` creates); skipped, saying so, without them. Marker: envtest.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent / "envtest"))
from controlplane import BIN, NODE_CAPACITY, ControlPlane, missing_binaries  # noqa: E402

from infra.config import SERVICE_NAMES  # noqa: E402
from infra.platform.kit_images import REPO_ROOT  # noqa: E402

pytestmark = pytest.mark.envtest

ENGINE = ("pulumi", "pulumi-language-python", "pulumi-resource-kubernetes", "pulumi-resource-random",
          "pulumi-resource-command")
RUNTIME_VENV = REPO_ROOT / ".venv"


def _skip_reason() -> str | None:
    missing = missing_binaries(("etcd", "kube-apiserver", *ENGINE))
    if missing:
        return (f"envtest binaries not built ({', '.join(missing)} missing in {BIN}): run `make envtest` "
                "(about an hour of Go builds on 2 cores, once)")
    if not (RUNTIME_VENV / "bin" / "python").exists():
        return f"the kit's runtime venv {RUNTIME_VENV} is missing: `make .venv/bin/cd4ml` (what `make up` creates)"
    return None


if _skip_reason():
    pytestmark = [pytest.mark.envtest, pytest.mark.skip(reason=_skip_reason())]


def plugin_version(binary: str) -> str:
    """The version the kit pins for a provider: its Python package's pulumi-plugin.json in the runtime venv."""
    name = binary.removeprefix("pulumi-resource-")
    found = next(RUNTIME_VENV.glob(f"lib/python*/site-packages/pulumi_{name}/pulumi-plugin.json"))
    return json.loads(found.read_text())["version"].lstrip("v")


@pytest.fixture(scope="module")
def pulumi_home(tmp_path_factory) -> Path:
    """A Pulumi home holding exactly the kit's plugins, from the local build; acquisition off, so a
    missing one fails at once rather than downloading."""
    import subprocess

    home = tmp_path_factory.mktemp("pulumi-home")
    for binary in ENGINE[2:]:
        name = binary.removeprefix("pulumi-resource-")
        done = subprocess.run([str(BIN / "pulumi"), "plugin", "install", "resource", name, f"v{plugin_version(binary)}",
                               "--file", str(BIN / binary)], env={**os.environ, "PULUMI_HOME": str(home)},
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    return home


def upstream_charts(request, scratch: Path) -> Path:
    """The pinned charts' sources as `cd4ml charts --pull` lays them out. Charts taken from their git
    sources lack the dependency charts their packaged release carries (MLflow's postgresql, mysql, minio)
    and Helm refuses a chart whose declared dependencies are missing: a stub of each, of the declared
    name and version, stands where `helm dependency build` puts it — never rendered, since the kit's
    values turn every one of them off (checked here)."""
    given = request.config.getoption("--upstream-charts") or os.environ.get("CD4ML_UPSTREAM_CHARTS")
    if not given or not (Path(given) / "mlflow" / "Chart.yaml").is_file():
        pytest.skip("the pinned upstream charts' sources are not given (--upstream-charts DIR or CD4ML_UPSTREAM_CHARTS; "
                    "`cd4ml charts --pull DIR` fetches them): the stack installs them with chartsDir")
    charts = scratch / "charts"
    shutil.copytree(given, charts, symlinks=True)
    from infra.platform.gitea import CHART as GITEA

    for chart_file in charts.glob("*/Chart.yaml"):
        chart = yaml.safe_load(chart_file.read_text())
        if chart["name"] == GITEA.chart and chart["version"] == "0.0.0":
            # Gitea's chart from its git source (its release stamps the version; 12.7.0 is not fetchable
            # here): stamped with the pinned version, said so in the closing note. Not the pinned chart.
            chart_file.write_text(chart_file.read_text().replace("version: 0.0.0", f"version: {GITEA.version}", 1))
        for dependency in chart.get("dependencies") or []:
            folder = chart_file.parent / "charts" / dependency["name"]
            packaged = list((chart_file.parent / "charts").glob(f"{dependency['name']}-*.tgz"))
            if folder.exists() or packaged:
                continue
            condition = dependency.get("condition", "")
            defaults = yaml.safe_load((chart_file.parent / "values.yaml").read_text()) or {}
            enabled = defaults
            for key in condition.split(".") if condition else []:
                enabled = (enabled or {}).get(key) if isinstance(enabled, dict) else None
            assert condition and enabled is False, f"{chart['name']}: dependency {dependency['name']} is not off"
            folder.mkdir(parents=True)
            (folder / "Chart.yaml").write_text(yaml.safe_dump({"apiVersion": "v2", "name": dependency["name"],
                                                               "version": str(dependency["version"])}))
    return charts


@pytest.fixture
def kit(tmp_path, monkeypatch, pulumi_home, request):
    """A checkout of the kit in a temporary directory, on its own control plane, with the locally built
    Pulumi CLI where `cd4ml up` installs it and a stack file naming the envtest context. Parametrized
    indirectly with the stack's services; upstream services install from the charts' sources
    (`chartsDir`), on two kwok nodes."""
    param = getattr(request, "param", [])
    stack = workshop(param["workshop"]) if isinstance(param, dict) else {"services": param}
    services = stack["services"]
    project = tmp_path / "kit"
    project.mkdir()
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(REPO_ROOT / name, project)
    for name in ("infra", "charts", "policy", "stacks", "cluster"):
        (project / name).symlink_to(REPO_ROOT / name) if name != "stacks" else shutil.copytree(REPO_ROOT / name,
                                                                                               project / name)
    (project / ".venv").symlink_to(RUNTIME_VENV)
    (project / ".tools" / "pulumi").mkdir(parents=True)
    (project / ".tools" / "pulumi" / "bin").symlink_to(BIN)
    stack_file = project / "stacks" / "Pulumi.envtest.yaml"
    # Upstream services from their charts' sources; the kit's own images from a registry (no Docker here).
    charts = (f"  cd4ml:chartsDir: {upstream_charts(request, tmp_path)}\n"
              "  cd4ml:imageRegistry: registry.example.com/cd4ml\n" if services else "")
    settings = {"cd4ml:profile": "laptop", "cd4ml:services": services, "cd4ml:kubeContext": "envtest",
                **stack.get("config", {})}
    stack_file.write_text("# the kit's program on envtest\nconfig:\n"
                          + "".join(f"  {key}: {json.dumps(value)}\n" for key, value in settings.items()) + charts)
    plane = ControlPlane(Path(tempfile.mkdtemp(prefix="cd4ml-envtest-")),
                         nodes=stack.get("nodes", 2 if services else 0),
                         capacity=stack.get("capacity", dict(NODE_CAPACITY)),
                         stages=tuple(sorted((Path(__file__).parent / "envtest" / "stages").glob("*.yaml"))),
                         # A workshop is published: cert-manager's webhook would admit its issuer and
                         # certificate, and no container runs here to answer (not proven: cert-manager itself);
                         # the ingress controller's LoadBalancer gets an address as a cloud would give it, and
                         # each Ingress that address, as Traefik publishes it (neither runs here).
                         unserved_webhooks=("cert-manager-webhook",) if isinstance(param, dict) else (),
                         load_balancers=isinstance(param, dict)).start()
    monkeypatch.chdir(project)
    monkeypatch.setenv("KUBECONFIG", str(plane.kubeconfig))
    monkeypatch.setenv("PULUMI_HOME", str(pulumi_home))
    monkeypatch.setenv("PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION", "true")
    monkeypatch.setenv("PATH", f"{BIN}:{os.environ['PATH']}")
    from infra.cli import stacks, tools

    monkeypatch.setattr(stacks, "PASSPHRASE_FILE", tmp_path / "passphrase")
    monkeypatch.setattr(tools, "POLICY_PACK_DIR", project / "policy")
    yield project, plane, stack_file
    plane.destroy()


def cli(*args: str):
    from typer.testing import CliRunner

    from infra.cli.main import app

    return CliRunner().invoke(app, list(args))


def checkpoint_types(project: Path, stack: str = "envtest") -> list[str]:
    document = json.loads((project / ".pulumi-state" / ".pulumi" / "stacks" / "cd4ml" / f"{stack}.json").read_text())
    return [r["type"] for r in (document["checkpoint"].get("latest") or {}).get("resources") or []]


def kubectl(plane: ControlPlane, *args: str) -> str:
    import subprocess

    done = subprocess.run(["kubectl", "--kubeconfig", str(plane.kubeconfig), *args], capture_output=True, text=True)
    return done.stdout + done.stderr


def test_up_then_down_on_a_cluster_that_is_gone(kit):
    project, plane, stack_file = kit
    tracked = stack_file.read_bytes()
    started = time.monotonic()
    up = cli("up", "--stack", "envtest", "--no-smoke")
    assert up.exit_code == 0, up.output
    print(f"\n  up: {time.monotonic() - started:.1f}s")
    assert "✓ a second `up` would change nothing" in up.output  # the real no-change preview
    # The policy pack ran (in the kit's venv) and the objects are in the cluster.
    assert "cd4ml-staging" in kubectl(plane, "get", "namespaces")
    assert "platform-endpoints" in kubectl(plane, "-n", "cd4ml-staging", "get", "configmaps")
    assert "default-deny" in kubectl(plane, "-n", "cd4ml-staging", "get", "networkpolicies")
    assert "random:index/randomPassword:RandomPassword" in checkpoint_types(project) or "kubernetes:core/v1:Namespace" in checkpoint_types(project)
    # The user's stack file is as it was: the salt went beside the state.
    assert stack_file.read_bytes() == tracked
    assert "encryptionsalt" in (project / ".pulumi-state" / "stack-config" / "Pulumi.envtest.yaml").read_text()

    plane.stop()  # the cluster is gone (Docker reset, kind deleted)
    started = time.monotonic()
    down = cli("down", "--stack", "envtest")
    assert down.exit_code == 0, down.output
    print(f"  down on a gone cluster: {time.monotonic() - started:.1f}s")
    assert "does not answer" in down.output and "dropped from the state" in down.output
    assert checkpoint_types(project) == []


def test_up_while_the_api_server_is_down_keeps_the_state(kit, monkeypatch):
    """A refresh against an API server that is briefly unreachable must not drop the state (it did with
    deleteUnreachable on the provider): `up` waits, then stops with a line, and the next `up` is a no-op."""
    from infra.cli import lifecycle, stacks

    project, plane, _ = kit
    first = cli("up", "--stack", "envtest", "--no-smoke")
    assert first.exit_code == 0, first.output
    before = sorted(checkpoint_types(project))
    plane.stop()
    monkeypatch.setattr(lifecycle, "CLUSTER_ANSWER_TIMEOUT", 5.0)
    failed = cli("up", "--stack", "envtest", "--no-smoke")
    assert failed.exit_code == 1 and "did not answer within 5s" in failed.output
    # Even the engine itself, refreshing with the API server down, keeps every resource.
    stack = stacks.open_stack(project, "envtest")
    from pulumi import automation as auto

    with pytest.raises(auto.CommandError):
        stack.refresh(color="never", config_file=stacks.platform_config_file(project, "envtest"))
    assert sorted(checkpoint_types(project)) == before
    plane.start()
    again = cli("up", "--stack", "envtest", "--no-smoke")
    assert again.exit_code == 0, again.output
    assert sorted(checkpoint_types(project)) == before


def test_a_live_down_deletes_and_the_checkpoint_says_so(kit):
    """After `down` the checkpoint file stays (no `stack rm`) with nothing in it: what the kit reads to
    tell a destroyed stack from a deployed one."""
    from infra.cli import stacks

    project, plane, _ = kit
    first = cli("up", "--stack", "envtest", "--no-smoke")
    assert first.exit_code == 0, first.output
    assert stacks.deployed(project, "envtest")
    down = cli("down", "--stack", "envtest")
    assert down.exit_code == 0, down.output
    assert "cd4ml-staging" not in kubectl(plane, "get", "namespaces", "-o", "name") or "Terminating" in kubectl(
        plane, "get", "namespaces")
    assert (project / ".pulumi-state" / ".pulumi" / "stacks" / "cd4ml" / "envtest.json").is_file()
    assert not stacks.deployed(project, "envtest")


@pytest.mark.parametrize("kit", [["gocd"]], indirect=True, ids=["gocd"])
def test_a_service_from_its_pinned_chart_up_and_down_on_a_gone_cluster(kit):
    """GoCD from its pinned chart (chartsDir), its volume, its configure Job awaited to completion (kwok
    completes it; the Job's code is proven against the GoCD stand-in elsewhere), the policy pack over it,
    the no-change preview; then the cluster gone: pulumi-kubernetes refuses to delete a Helm release
    from an unreachable cluster, so `down` must forget it by a refresh, or every later `down` fails.
    (GoCD's chart, not MLflow's: the MLflow chart's git source lacks the dependency charts its packaged
    release carries, and Helm refuses a chart whose declared dependencies are missing.)"""
    project, plane, _ = kit
    started = time.monotonic()
    up = cli("up", "--stack", "envtest", "--no-smoke")
    assert up.exit_code == 0, up.output
    print(f"\n  up with gocd: {time.monotonic() - started:.1f}s")
    assert "✓ a second `up` would change nothing" in up.output
    assert "kubernetes:helm.sh/v3:Release" in checkpoint_types(project)
    assert "deployment.apps/gocd-server" in kubectl(plane, "-n", "cd4ml-gocd", "get", "deployments", "-o", "name")
    assert "Complete" in kubectl(plane, "-n", "cd4ml-gocd", "get", "jobs", "-o",
                                 "jsonpath={.items[*].status.conditions[*].type}")
    plane.stop()
    # What `down` did before: a destroy, even with the provider's delete-unreachable option, fails on
    # the Helm release (pulumi-kubernetes provider.go Delete; pulumi-kubernetes#2675), every time.
    from pulumi import automation as auto

    from infra.cli import stacks

    plain = stacks.open_stack(project, "envtest", program_env={"PULUMI_K8S_DELETE_UNREACHABLE": "true"})
    with pytest.raises(auto.CommandError, match="can't delete Helm Release with unreachable cluster"):
        plain.destroy(color="never", config_file=stacks.platform_config_file(project, "envtest"),
                      show_secrets=False)
    started = time.monotonic()
    down = cli("down", "--stack", "envtest")
    assert down.exit_code == 0, down.output
    print(f"  down on a gone cluster, with a Helm release: {time.monotonic() - started:.1f}s")
    assert checkpoint_types(project) == []


ALL_SERVICES = list(SERVICE_NAMES)
"""Every service, the git server included (the default)."""


@pytest.mark.parametrize("kit", [ALL_SERVICES], indirect=True, ids=["local"])
def test_the_laptop_platform_through_its_whole_lifecycle(kit, monkeypatch):
    """The whole laptop stack: every release from its pinned chart, ECK's resources after its CRDs (their
    readiness set by kwok in the operator's place), every configure Job awaited, the policy pack over all
    of it, PodSecurity admitting every pod, a second `up` changing nothing; then recreate, down, up; then
    the cluster gone: down, and a clean up on a new control plane."""
    project, plane, _ = kit

    def timed(*args: str) -> str:
        started = time.monotonic()
        result = cli(*args)
        assert result.exit_code == 0, result.output
        print(f"\n  {' '.join(args[:1])}: {time.monotonic() - started:.1f}s", end="")
        return result.output

    up = timed("up", "--stack", "envtest", "--no-smoke")
    assert "✓ a second `up` would change nothing" in up
    # Smoke on a cluster whose pods run nothing: the checks the API alone answers, for real (the API
    # server's own admission of the kit's pods, its RBAC on the agents' rights); the rest skipped, saying so.
    smoke = cli("smoke", "--stack", "envtest", "--api-only", "--timeout", "30")
    assert smoke.exit_code == 0, smoke.output
    for check in ("platform.credentials", "platform.network-policies", "platform.admission", "wire.gocd-agents-deploy"):
        assert any(check in line and "pass" in line for line in smoke.output.splitlines()), (check, smoke.output)

    def platform_on(cluster: ControlPlane) -> None:
        releases = kubectl(cluster, "get", "secrets", "-A", "-l", "owner=helm", "-o",
                           "jsonpath={.items[*].metadata.name}")
        for release in ("gocd", "elastic-operator", "fluentd", "grafana", "mlflow"):
            assert f"sh.helm.release.v1.{release}." in releases, release
        for job in kubectl(cluster, "get", "jobs", "-A", "-o", "name").split():
            namespace = kubectl(cluster, "get", "jobs", "-A", "--field-selector", f"metadata.name={job.split('/')[1]}",
                                "-o", "jsonpath={.items[0].metadata.namespace}")
            assert "Complete" in kubectl(cluster, "-n", namespace, "get", job, "-o",
                                         "jsonpath={.status.conditions[*].type}"), job

    platform_on(plane)
    assert "elasticsearch" in kubectl(plane, "-n", "cd4ml-logging", "get", "elasticsearch", "-o", "name")
    timed("recreate", "--stack", "envtest", "--no-smoke")
    platform_on(plane)
    timed("down", "--stack", "envtest")
    assert "cd4ml-gocd" not in kubectl(plane, "get", "namespaces", "-o", "name")
    timed("up", "--stack", "envtest", "--no-smoke")
    platform_on(plane)
    plane.stop()
    timed("down", "--stack", "envtest")
    assert checkpoint_types(project) == []
    fresh = ControlPlane(Path(tempfile.mkdtemp(prefix="cd4ml-envtest-")), nodes=2,
                         stages=plane.stages).start()
    try:
        monkeypatch.setenv("KUBECONFIG", str(fresh.kubeconfig))
        timed("up", "--stack", "envtest", "--no-smoke")
        platform_on(fresh)
    finally:
        fresh.destroy()


def workshop(participants: int) -> dict:
    """The shipped workshop stack's settings, for N participants, on cloud-sized nodes (e2-standard-8,
    the kit's sizing for a workshop: infra/platform/sizing.py) as many as it sizes."""
    from infra.config import load_stack
    from infra.platform.build import build_platform
    from infra.platform.sizing import plan_nodes

    shipped = yaml.safe_load((REPO_ROOT / "stacks" / "Pulumi.workshop.yaml").read_text())["config"]
    config = {**shipped, "cd4ml:participants": participants}
    nodes = plan_nodes(build_platform(load_stack(REPO_ROOT / "stacks", "workshop",
                                                 {"participants": str(participants)}), "workshop"), "gke", "")
    return {"services": ALL_SERVICES, "config": {k: v for k, v in config.items() if k != "cd4ml:services"},
            "nodes": nodes.nodes, "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110",
                                               "ephemeral-storage": "100Gi"}}


@pytest.mark.parametrize("kit", [{"workshop": 30}, {"workshop": 100}], indirect=True, ids=["30", "100"])
def test_a_workshop_up_and_down(kit):
    """The workshop stack for 30 and for 100 participants: thousands of resources through the real engine,
    every participant's namespaces, RoleBindings, quotas, logins and configure Jobs; then down."""
    project, plane, stack_file = kit
    participants = yaml.safe_load(stack_file.read_text())["config"]["cd4ml:participants"]
    started = time.monotonic()
    # At 100 the engine's step-by-step state saves dominate (quadratic): the facilitator's option.
    up = cli("up", "--stack", "envtest", "--no-smoke", *(["--skip-checkpoints"] if participants >= 100 else []))
    assert up.exit_code == 0, up.output[-3000:]
    print(f"\n  up, {participants} participants: {time.monotonic() - started:.1f}s, "
          f"{len(checkpoint_types(project))} resources")
    assert "✓ a second `up` would change nothing" in up.output
    namespaces = kubectl(plane, "get", "namespaces", "-o", "name").split()
    assert len([n for n in namespaces if n.endswith("-staging")]) == participants
    started = time.monotonic()
    down = cli("down", "--stack", "envtest", *(["--skip-checkpoints"] if participants >= 100 else []))
    assert down.exit_code == 0, down.output[-3000:]
    print(f"  down, {participants} participants: {time.monotonic() - started:.1f}s")
    assert checkpoint_types(project) == []


def test_the_kits_own_cluster_stack_up_down_and_up_again(tmp_path, monkeypatch, pulumi_home):
    """No kube context: `up` creates the cluster as the kit's cluster stack (pulumi-command running
    `kind create`), deploys through the stack reference's kubeconfig; `down --cluster` destroys both;
    the next `up` sees the empty checkpoint and creates the cluster again. `kind` here is
    tests/envtest/fake_kind.py: kind's commands and outputs, a real control plane behind them."""
    from infra.cli import stacks
    from infra.cli import tools as kit_tools

    project = tmp_path / "kit"
    project.mkdir()
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(REPO_ROOT / name, project)
    for name in ("infra", "charts", "policy"):
        (project / name).symlink_to(REPO_ROOT / name)
    for name in ("stacks", "cluster"):
        shutil.copytree(REPO_ROOT / name, project / name)
    (project / ".venv").symlink_to(RUNTIME_VENV)
    (project / ".tools" / "pulumi").mkdir(parents=True)
    (project / ".tools" / "pulumi" / "bin").symlink_to(BIN)
    (project / "stacks" / "Pulumi.envtest.yaml").write_text(
        "config:\n  cd4ml:profile: laptop\n  cd4ml:services: []\n")
    tools = tmp_path / "bin"
    tools.mkdir()
    for name, body in (("kind", f'exec {sys.executable} {Path(__file__).parent / "envtest" / "fake_kind.py"} "$@"'),
                       ("docker", 'if [ "$1" = info ]; then echo 28.2.2; fi')):
        (tools / name).write_text(f"#!/bin/sh\n{body}\n")
        (tools / name).chmod(0o755)
    kind_home = tmp_path / "kind-clusters"
    monkeypatch.chdir(project)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kubeconfig"))  # no context at all: a new laptop
    monkeypatch.setenv("CD4ML_FAKE_KIND_HOME", str(kind_home))
    monkeypatch.setenv("PULUMI_HOME", str(pulumi_home))
    monkeypatch.setenv("PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION", "true")
    monkeypatch.setenv("PATH", f"{tools}:{BIN}:{os.environ['PATH']}")
    monkeypatch.setattr(stacks, "PASSPHRASE_FILE", tmp_path / "passphrase")
    monkeypatch.setattr(kit_tools, "POLICY_PACK_DIR", project / "policy")
    try:
        for round_ in (1, 2):
            started = time.monotonic()
            up = cli("up", "--stack", "envtest", "--no-smoke")
            assert up.exit_code == 0, up.output
            print(f"\n  up with its own cluster (round {round_}): {time.monotonic() - started:.1f}s", end="")
            assert "creating kind cluster 'cd4ml'" in up.output
            assert stacks.cluster_deployed(project, "envtest")
            assert (kind_home / "cd4ml" / "kubeconfig").exists()
            assert stacks.stack_outputs(project, "envtest")["kube"]["clusterStack"] == \
                "organization/cd4ml-cluster/envtest"
            down = cli("down", "--stack", "envtest", "--cluster")
            assert down.exit_code == 0, down.output
            assert not (kind_home / "cd4ml").exists()  # `kind delete cluster` ran
            assert not stacks.cluster_deployed(project, "envtest") and not stacks.deployed(project, "envtest")
    finally:
        import fake_kind

        fake_kind.HOME = kind_home
        fake_kind.main(["delete", "cluster", "--name", "cd4ml"])
