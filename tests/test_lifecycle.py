"""`cd4ml up`'s decisions, with the outside world (Docker, kind, Pulumi) replaced by fakes.

What these cannot show — that kind and `pulumi up` really bring the platform up — needs Docker
or a cluster; see the README.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from rich.console import Console
from stack_settings import PUBLISHED
from typer.testing import CliRunner

from infra.cli import errors, images, lifecycle, stacks, tools
from infra.cli.main import app
from infra.cluster import KIND_VERSION
from infra.config import load_config
from infra.platform.kit_images import GOCD_AGENT_ML, KIT_IMAGES, MODEL_RUNTIME


class FakeRun:
    """Stands in for subprocess.run; records the commands and answers with fixed exit codes (and
    `kind version` with the pinned version)."""

    def __init__(self, codes: dict[str, int]):
        self.codes = codes
        self.commands: list[list[str]] = []

    def __call__(self, command, **_kwargs):
        self.commands.append(list(command))
        program = Path(command[0]).name
        stdout = f"kind {KIND_VERSION} go1.25 linux/amd64\n" if command[1:] == ["version"] else ""
        return subprocess.CompletedProcess(command, self.codes.get(program, 0), stdout=stdout, stderr="")


@pytest.fixture
def no_kubeconfig(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))


def test_configured_context_is_used_without_docker(tmp_path, no_kubeconfig):
    run = FakeRun({"docker": 1})
    config = load_config({"cd4ml:kubeContext": "my-cluster"})
    assert lifecycle.ensure_cluster(tmp_path, config, Console(), run=run) == "my-cluster"
    assert run.commands == []


def test_current_context_is_used(tmp_path, monkeypatch):
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\ncurrent-context: k3d-lab\n")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    run = FakeRun({})
    assert lifecycle.ensure_cluster(tmp_path, load_config({}), Console(), run=run) == "k3d-lab"
    assert run.commands == []


def test_no_context_and_no_docker_says_what_to_do(tmp_path, no_kubeconfig, monkeypatch):
    monkeypatch.setattr(tools.shutil, "which", lambda name: "/usr/bin/docker" if name == "docker" else None)
    with pytest.raises(errors.LifecycleError, match="Docker is not running"):
        lifecycle.ensure_cluster(tmp_path, load_config({}), Console(), run=FakeRun({"docker": 1}))


class FakeWorkspace:
    """The plugins already installed: all the kit needs, unless a test says otherwise."""

    def __init__(self):
        self.plugins = [SimpleNamespace(kind="resource", name=name, version=version)
                        for name, version in tools.required_plugins()]
        self.installed: list[tuple[str, str]] = []

    def list_plugins(self):
        return self.plugins

    def install_plugin(self, name, version, kind="resource"):
        self.installed.append((name, version))


class FakeClusterStack:
    def __init__(self, fail: bool = False):
        self.workspace = FakeWorkspace()
        self.config, self.calls, self.fail = {}, [], fail

    def set_config(self, key, value):
        self.config[key] = value.value

    def up(self, **kwargs):
        self.calls.append("up")
        if self.fail:
            from pulumi import automation as auto

            raise auto.CommandError(auto.CommandResult("", "error: kind create cluster exited 1", 255))


def test_no_context_with_docker_creates_kind_as_the_cluster_stack(tmp_path, no_kubeconfig, monkeypatch):
    monkeypatch.setattr(tools.shutil, "which", lambda name: f"/usr/bin/{name}")
    opened = []
    cluster = FakeClusterStack()
    monkeypatch.setattr(stacks, "open_stack", lambda *args, **kwargs: opened.append(kwargs) or cluster)
    context = lifecycle.ensure_cluster(tmp_path, load_config({}), Console(), run=FakeRun({}), stack_name="local")
    assert context == "kind-cd4ml"
    assert opened == [{"create": True, "work_dir": tmp_path / "cluster"}]
    assert cluster.calls == ["up"] and cluster.config == {"kindBinary": "/usr/bin/kind"}
    assert "@sha256:" in lifecycle.KIND_NODE_IMAGE


def test_failed_kind_create_is_an_error(tmp_path, no_kubeconfig, monkeypatch):
    monkeypatch.setattr(tools.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(stacks, "open_stack", lambda *args, **kwargs: FakeClusterStack(fail=True))
    with pytest.raises(errors.LifecycleError, match=r"pulumi up \(cluster\) failed .*kind create cluster exited 1"):
        lifecycle.ensure_cluster(tmp_path, load_config({}), Console(), run=FakeRun({}))


def checkpoint(project: Path, pulumi_project: str, stack: str, resource_types: list[str]) -> None:
    """A stack's checkpoint in the local file backend, shaped as Pulumi writes it (apitype.VersionedCheckpoint,
    version 3): after `up`, the resources; after `destroy` (without `stack rm`), none."""
    state = project / ".pulumi-state" / ".pulumi" / "stacks" / pulumi_project
    state.mkdir(parents=True, exist_ok=True)
    resources = [{"urn": f"urn:pulumi:{stack}::{pulumi_project}::{t}::r{i}", "type": t, "custom": True}
                 for i, t in enumerate(resource_types)]
    (state / f"{stack}.json").write_text(json.dumps({"version": 3, "checkpoint": {
        "stack": f"organization/{pulumi_project}/{stack}",
        "latest": {"manifest": {"time": "2026-12-07T10:00:00Z", "version": "v3.272.0"},
                   "secrets_providers": {"type": "passphrase", "state": {"salt": "v1:x"}},
                   **({"resources": resources} if resources else {})}}}))


KIND_STACK = ["pulumi:pulumi:Stack", "cd4ml:cluster:KindCluster", "pulumi:providers:command",
              "command:local:Command", "command:local:Command"]


def test_a_deployed_cluster_stack_is_used_and_handed_to_the_platform(tmp_path, monkeypatch):
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\ncurrent-context: some-other-cluster\n")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    checkpoint(tmp_path, "cd4ml-cluster", "local", KIND_STACK)
    assert lifecycle.ensure_cluster(tmp_path, load_config({}), Console(), stack_name="local") == "kind-cd4ml"
    assert stacks.platform_env(tmp_path, "local", load_config({}), "kind-cd4ml") == {
        "CD4ML_CLUSTER_STACK": "organization/cd4ml-cluster/local"}


def test_after_down_cluster_the_next_up_creates_the_cluster_again(tmp_path, no_kubeconfig, monkeypatch):
    """`down --cluster` destroys the cluster stack and leaves its checkpoint, empty, behind: that is not a
    cluster, and `up` must create one rather than deploy to a kind context that no longer exists."""
    checkpoint(tmp_path, "cd4ml-cluster", "local", [])
    assert not stacks.cluster_deployed(tmp_path, "local")
    checkpoint(tmp_path, "cd4ml-cluster", "local", ["pulumi:pulumi:Stack", "pulumi:providers:command"])
    assert not stacks.cluster_deployed(tmp_path, "local")  # a failed create: nothing made
    monkeypatch.setattr(tools.shutil, "which", lambda name: f"/usr/bin/{name}")
    cluster = FakeClusterStack()
    monkeypatch.setattr(stacks, "open_stack", lambda *args, **kwargs: cluster)
    assert lifecycle.ensure_cluster(tmp_path, load_config({}), Console(), run=FakeRun({})) == "kind-cd4ml"
    assert cluster.calls == ["up"]


def test_a_context_in_the_stack_file_wins_over_a_leftover_cluster_stack(tmp_path):
    checkpoint(tmp_path, "cd4ml-cluster", "local", KIND_STACK)
    config = load_config({"cd4ml:kubeContext": "team-cluster"})
    assert lifecycle.ensure_cluster(tmp_path, config, Console(), stack_name="local") == "team-cluster"
    assert stacks.platform_env(tmp_path, "local", config, "team-cluster") == {}  # the stack file says it


def test_the_context_up_chose_is_recorded_for_the_program(tmp_path):
    assert stacks.platform_env(tmp_path, "local", load_config({}), "k3d-lab") == {"CD4ML_KUBE_CONTEXT": "k3d-lab"}


def test_passphrase_is_generated_once_and_private(tmp_path, monkeypatch):
    monkeypatch.setattr(stacks, "PASSPHRASE_FILE", tmp_path / "cd4ml" / "passphrase")
    first = stacks.passphrase_file().read_text()
    assert len(first) >= 32
    assert stacks.passphrase_file().read_text() == first
    assert (tmp_path / "cd4ml" / "passphrase").stat().st_mode & 0o777 == 0o600


def test_up_with_a_bad_config_touches_nothing(monkeypatch):
    called = []
    monkeypatch.setattr(lifecycle, "up", lambda *args, **kwargs: called.append(args))
    result = CliRunner().invoke(app, ["up", "--stack", "nope"])
    assert result.exit_code == 1
    assert "no stack file" in result.output
    assert called == []


def test_up_reports_a_lifecycle_error_without_traceback(monkeypatch):
    def fail(*_args, **_kwargs):
        raise errors.LifecycleError("Docker is not running")

    monkeypatch.setattr(lifecycle, "up", fail)
    result = CliRunner().invoke(app, ["up"])
    assert result.exit_code == 1
    assert "✗ Docker is not running" in result.output
    assert "Traceback" not in result.output


def test_up_runs_the_smoke_tests_afterwards_and_fails_with_them(monkeypatch):
    from infra.cli import main
    from infra.smoke.core import CheckResult

    monkeypatch.setattr(lifecycle, "up", lambda *args, **kwargs: None)
    calls = []

    def smoke(stack, endpoints, only, timeout):
        calls.append((stack, endpoints, only))
        return [CheckResult("gocd.health", "gocd", "fail", 0.1, "down")]

    monkeypatch.setattr(main, "_run_smoke", smoke)
    result = CliRunner().invoke(app, ["up"])
    assert result.exit_code == 1
    assert calls == [("local", [], [])]  # cluster mode: no endpoints, every service
    assert "0 passed, 1 failed, 0 skipped" in result.output
    skipped = CliRunner().invoke(app, ["up", "--no-smoke"])
    assert skipped.exit_code == 0 and len(calls) == 1
    assert "Next: cd4ml status --stack local   |   cd4ml handout --stack local" in skipped.output


def test_kit_images_are_built_once_and_loaded_into_kind(monkeypatch):
    monkeypatch.setattr(tools.shutil, "which", lambda name: f"/usr/bin/{name}")
    run = FakeRun({})  # every image already exists: inspect answers 0
    refs = images.deliver_kit_images(load_config({}), "kind-cd4ml", Console(), run=run)
    assert refs == [f"cd4ml.local/gocd-agent-ml:{GOCD_AGENT_ML.tag}", f"cd4ml.local/model-runtime:{MODEL_RUNTIME.tag}"]
    assert not [c for c in run.commands if c[:2] == ["docker", "build"]]
    # Through an archive of the image's own platform (kind#3795: `load docker-image` fails with Docker's
    # containerd image store).
    saves = [c for c in run.commands if c[:3] == ["docker", "image", "save"]]
    loads = [c for c in run.commands if Path(c[0]).name == "kind" and c[1] == "load"]
    assert [s[-1] for s in saves] == refs
    assert [load[:3] + load[4:] for load in loads] == [["/usr/bin/kind", "load", "image-archive", "--name", "cd4ml"]] * 2
    assert [load[3] for load in loads] == [s[s.index("--output") + 1] for s in saves]


def test_missing_kit_images_are_built_from_their_dockerfiles_and_pushed_to_the_registry(monkeypatch):
    class MissingImages(FakeRun):
        def __call__(self, command, **kwargs):
            result = super().__call__(command, **kwargs)
            return result if command[:3] != ["docker", "image", "inspect"] else subprocess.CompletedProcess(command, 1)

    run = MissingImages({})
    monkeypatch.setattr(tools.shutil, "which", lambda name: f"/usr/bin/{name}")
    config = load_config({"cd4ml:imageRegistry": "registry.example.com:5000/team"})
    images.deliver_kit_images(config, "gke_project_zone_workshop", Console(), run=run)
    builds = [c for c in run.commands if c[:2] == ["docker", "build"]]
    assert [b[b.index("--file") + 1] for b in builds] == [
        str(Path(KIT_IMAGES[0].dockerfile)), str(Path(KIT_IMAGES[1].dockerfile))]
    assert all(Path(b[b.index("--file") + 1]).exists() for b in builds)
    assert ["docker", "push", f"registry.example.com:5000/team/gocd-agent-ml:{GOCD_AGENT_ML.tag}"] in run.commands


def test_without_docker_the_kit_images_error_says_what_to_do(monkeypatch):
    monkeypatch.setattr(tools.shutil, "which", lambda name: None)
    with pytest.raises(errors.LifecycleError, match="Docker is not running.*cd4ml:imageRegistry"):
        images.deliver_kit_images(load_config({}), "kind-cd4ml", Console(), run=FakeRun({}))
    # With a registry, images built elsewhere are used as they are.
    refs = images.deliver_kit_images(load_config({"cd4ml:imageRegistry": "ghcr.io/team"}), "kind-cd4ml",
                                        Console(), run=FakeRun({}))
    assert refs[0] == f"ghcr.io/team/gocd-agent-ml:{GOCD_AGENT_ML.tag}"


def test_an_unknown_cluster_without_a_registry_is_refused(monkeypatch):
    monkeypatch.setattr(tools.shutil, "which", lambda name: f"/usr/bin/{name}")
    with pytest.raises(errors.LifecycleError, match="set cd4ml:imageRegistry"):
        images.deliver_kit_images(load_config({}), "arn:aws:eks:eu-west-1:1:cluster/x", Console(), run=FakeRun({}))


def test_a_cloud_stack_creates_its_cluster_stack_sized_for_the_participants(tmp_path, monkeypatch):
    cluster = FakeClusterStack()
    opened = []
    monkeypatch.setattr(stacks, "open_stack", lambda *args, **kwargs: opened.append(kwargs) or cluster)
    config = load_config({**PUBLISHED, "cd4ml:participants": 30, "cd4ml:clusterProvider": "gke",
                          "cd4ml:cloudProject": "workshop-project", "cd4ml:cloudRegion": "europe-west1-b",
                          "cd4ml:imageRegistry": "europe-docker.pkg.dev/workshop-project/cd4ml",
                          "cd4ml:workshopDays": ["2026-12-09", "2026-12-08"]})
    console = Console(record=True, width=200)
    assert lifecycle.ensure_cluster(tmp_path, config, console, stack_name="gke") == ""
    assert opened == [{"create": True, "work_dir": tmp_path / "cluster"}] and cluster.calls == ["up"]
    # Always set, so a key removed from the stack file is removed from the cluster stack too.
    assert cluster.config == {"provider": "gke", "project": "workshop-project", "region": "europe-west1-b",
                              "machineType": "e2-standard-8", "nodeCount": "4",
                              "workshopDays": "2026-12-08,2026-12-09"}
    printed = console.export_text()
    assert "4 × e2-standard-8 for 30 team(s)" in printed and "$1.17/hour" in printed


def test_creating_the_stack_leaves_the_users_stack_file_untouched(tmp_path, monkeypatch):
    """`pulumi stack init` with the passphrase provider writes `encryptionsalt:` into the stack's config
    file (pulumi pkg/cmd/pulumi/stack/io.go), which is the user's and tracked: git would go dirty on the
    first `up`. The kit moves it beside the state and hands every engine operation that copy."""
    from pulumi import automation as auto

    (tmp_path / "stacks").mkdir()
    tracked = tmp_path / "stacks" / "Pulumi.local.yaml"
    original = b"# my laptop\nconfig:\n  cd4ml:profile: laptop\n"
    tracked.write_bytes(original)

    def stack_init(stack_name, work_dir, opts):  # what the CLI does to the file on `stack init`
        with tracked.open("a") as stack_file:
            stack_file.write("encryptionsalt: v1:c2FsdA==:v1:aXY=:Y2lwaGVy\n")
        return object()

    monkeypatch.setattr(auto, "create_or_select_stack", stack_init)
    monkeypatch.setattr(tools, "ensure_pulumi", lambda project, console=None: None)
    monkeypatch.setattr(stacks, "passphrase_file", lambda: tmp_path / "passphrase")
    stacks.open_stack(tmp_path, "local", create=True)
    assert tracked.read_bytes() == original
    config_file = Path(stacks.platform_config_file(tmp_path, "local"))
    assert yaml.safe_load(config_file.read_text()) == {
        "config": {"cd4ml:profile": "laptop"}, "encryptionsalt": "v1:c2FsdA==:v1:aXY=:Y2lwaGVy"}
    # The user edits their stack file: the copy follows, the salt stays.
    tracked.write_text("config:\n  cd4ml:profile: cluster\n")
    assert yaml.safe_load(Path(stacks.platform_config_file(tmp_path, "local")).read_text())["config"] == {
        "cd4ml:profile": "cluster"}
    assert ".pulumi-state" in config_file.parts


def test_up_refuses_to_start_the_engine_without_the_policy_packs_venv(monkeypatch, tmp_path):
    """Pulumi never creates a local pack's venv, and `up` then hangs at "Loading policy packs..." (seen with
    pulumi 3.274, a second reading for issue #14): the kit says what is missing before the engine starts."""
    monkeypatch.setattr(tools, "policy_pack_venv", lambda: tmp_path / "nowhere")
    with pytest.raises(errors.LifecycleError, match="does not exist: `make up` creates it"):
        tools.check_policy_pack_venv()
    (tmp_path / "nowhere" / "bin").mkdir(parents=True)
    (tmp_path / "nowhere" / "bin" / "python").write_text("")
    with pytest.raises(errors.LifecycleError, match="lacks pulumi-policy"):
        tools.check_policy_pack_venv(run=FakeRun({"python": 1}))
    tools.check_policy_pack_venv(run=FakeRun({}))


def kubeconfig_for(server: str, context: str = "here") -> dict:
    return {"apiVersion": "v1", "kind": "Config", "current-context": context,
            "clusters": [{"name": "c", "cluster": {"server": server}}], "users": [{"name": "u", "user": {"token": "t"}}],
            "contexts": [{"name": "here", "context": {"cluster": "c", "user": "u"}}]}


@pytest.mark.parametrize("status, answers", [(200, True), (401, True), (403, True)])
def test_a_cluster_that_answers_is_there_even_when_it_refuses_the_login(status, answers):
    """`down` drops a gone cluster's resources from the state: an API server refusing an expired
    credential is not gone, and must not lose the state of everything it runs."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from infra.smoke.cluster import KubeTarget

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = b'{"major": "1", "minor": "36", "gitVersion": "v1.36.1"}' if status == 200 else b"{}"
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        there, seen = stacks.cluster_answers(
            KubeTarget(kubeconfig=kubeconfig_for(f"http://127.0.0.1:{server.server_address[1]}")), timeout=5)
    finally:
        server.shutdown()
        server.server_close()
    assert there is answers and seen == ("v1.36.1" if status == 200 else f"HTTP {status}")


def test_a_cluster_gone_is_one_nobody_answers_for_or_the_kubeconfig_no_longer_names():
    import socket

    from infra.smoke.cluster import KubeTarget

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    there, seen = stacks.cluster_answers(KubeTarget(kubeconfig=kubeconfig_for(f"http://127.0.0.1:{port}")), 1)
    assert there is False and "Connection refused" in seen
    there, seen = stacks.cluster_answers(KubeTarget(kubeconfig=kubeconfig_for("http://x", "kind-cd4ml"),
                                                       context="kind-cd4ml"), 1)
    assert there is False and "no such cluster in the kubeconfig" in seen


def test_a_later_up_deploys_where_the_stack_runs_not_to_the_current_context(tmp_path, monkeypatch):
    """The current context may be another cluster by the next day: moving the provider there would
    recreate everything there and orphan the first cluster's objects."""
    from infra.smoke.cluster import KubeTarget

    kubeconfig = tmp_path / "config"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\ncurrent-context: somebody-elses\n")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setattr(stacks, "deployed", lambda *args: True)
    monkeypatch.setattr(stacks, "kube_target", lambda *args, **kwargs: KubeTarget(context="k3d-lab"))
    assert lifecycle.ensure_cluster(tmp_path, load_config({}), Console(), run=FakeRun({})) == "k3d-lab"


def test_the_cluster_stacks_plugins_are_fetched_with_a_line_each_before_it_runs(tmp_path, no_kubeconfig, monkeypatch):
    monkeypatch.setattr(tools.shutil, "which", lambda name: f"/usr/bin/{name}")
    cluster = FakeClusterStack()
    cluster.workspace.plugins = []
    monkeypatch.setattr(stacks, "open_stack", lambda *args, **kwargs: cluster)
    console = Console(record=True, width=200)
    lifecycle.ensure_cluster(tmp_path, load_config({}), console, run=FakeRun({}))
    assert {name for name, _ in cluster.workspace.installed} >= {"command"}
    assert "downloading the Pulumi plugin command" in console.export_text()


def test_an_exported_delete_unreachable_never_reaches_ups_program(monkeypatch):
    """pulumi_kubernetes' Provider reads PULUMI_K8S_DELETE_UNREACHABLE when the program runs and stores it on
    the provider: set by the user for some other stack, it would make every later refresh drop the state."""
    monkeypatch.setenv("PULUMI_K8S_DELETE_UNREACHABLE", "true")
    monkeypatch.setattr(lifecycle, "ensure_cluster", lambda *args, **kwargs: (_ for _ in ()).throw(
        errors.LifecycleError("stop here")))
    with pytest.raises(errors.LifecycleError, match="stop here"):
        lifecycle.up(Path("."), "local", load_config({}), Console())
    assert "PULUMI_K8S_DELETE_UNREACHABLE" not in os.environ
