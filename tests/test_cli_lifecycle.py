"""The lifecycle commands through Typer's CliRunner, with the Automation API stack (and kind, Docker)
replaced by fakes: arguments, exit codes, the progress and error lines, handouts.

What these cannot show — Pulumi really deploying and destroying — needs a cluster; see the README."""

from __future__ import annotations

import csv
import json
import socket
from pathlib import Path
from types import SimpleNamespace

import pytest
from pulumi import automation as auto
from stack_settings import set_options
from test_lifecycle import FakeRun, FakeWorkspace
from typer.testing import CliRunner

from infra.cli import dns as front_door_dns
from infra.cli import errors, images, lifecycle, stacks, tools
from infra.cli import main as cli
from infra.cli.main import app
from infra.cli.progress import EngineProgress
from infra.policies import pack_config
from infra.smoke.cluster import KubeTarget
from infra.smoke.core import CheckResult

runner = CliRunner()


def event(kind: str, type_: str, name: str):
    metadata = SimpleNamespace(type=type_, urn=f"urn:pulumi:local::cd4ml::{type_}::{name}")
    return SimpleNamespace(**{kind: SimpleNamespace(metadata=metadata)})


class FakeStack:
    """Stands in for an Automation API Stack: replays engine events and records what was asked."""

    def __init__(self, fail_with: Exception | None = None, drift: bool = False):
        self.workspace = FakeWorkspace()
        self.calls: list[str] = []
        self.config_files: list[str | None] = []
        self.fail_with, self.drift = fail_with, drift

    def up(self, on_output, on_event, **kwargs):
        self.calls.append(f"up refresh={kwargs.get('refresh')}")
        self.config_files.append(kwargs.get("config_file"))
        self.up_kwargs = kwargs
        if self.fail_with:
            raise self.fail_with
        on_output("Updating (local): raw engine line")
        on_event(event("resource_pre_event", "cd4ml:platform:GoCD", "gocd"))
        on_event(event("resource_pre_event", "kubernetes:core/v1:Secret", "gocd-secret"))
        on_event(event("res_outputs_event", "cd4ml:platform:GoCD", "gocd"))
        return SimpleNamespace(summary=SimpleNamespace(result="succeeded"),
                               outputs={"services": auto.OutputValue({"gocd": {"url": "http://gocd"}}, False)})

    def preview(self, **kwargs):
        self.calls.append(f"preview expect_no_changes={kwargs.get('expect_no_changes')}")
        if self.drift:
            raise auto.CommandError(auto.CommandResult(stdout="~ kubernetes:helm.sh/v3:Release gocd update",
                                                       stderr="", code=255))

    def destroy(self, on_output=None, on_event=None, **kwargs):
        self.calls.append("destroy")
        self.config_files.append(kwargs.get("config_file"))
        if on_output:
            on_output("Destroying (local)")

    def refresh(self, on_output=None, on_event=None, **kwargs):
        self.calls.append("refresh")


@pytest.fixture
def fake_stack(monkeypatch):
    stack = FakeStack()
    monkeypatch.setattr(lifecycle, "ensure_cluster", lambda *args, **kwargs: "kind-cd4ml")
    monkeypatch.setattr(images, "deliver_kit_images", lambda *args, **kwargs: [])
    monkeypatch.setattr(stacks, "open_stack", lambda *args, **kwargs: stack)
    monkeypatch.setattr(stacks, "deployed", lambda *args: True)
    monkeypatch.setattr(stacks, "kube_target", lambda *args, **kwargs: KubeTarget(context="kind-cd4ml"))
    monkeypatch.setattr(stacks, "cluster_answers", lambda target, timeout: (True, "v1.36.1"))
    monkeypatch.setattr(tools, "check_policy_pack_venv", lambda: None)  # the engine is a fake here
    monkeypatch.setattr(stacks, "platform_volumes", lambda target, prefix: [])
    monkeypatch.setattr(cli, "_run_smoke", lambda *args, **kwargs: [CheckResult("gocd.health", "gocd", "pass", 0.1,
                                                                               "server healthy")])
    return stack


def test_up_shows_a_step_per_service_and_checks_it_would_change_nothing(fake_stack):
    result = runner.invoke(app, ["up"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert " • gocd …" in lines and " ✓ gocd" in lines
    assert "gocd-secret" not in result.output  # only the kit's components are steps
    assert "raw engine line" not in result.output  # engine output only with --verbose
    assert " ✓ a second `up` would change nothing" in lines
    assert fake_stack.calls == ["up refresh=True", "preview expect_no_changes=True"]
    assert lines[-1].startswith("Next: cd4ml status --stack local")
    verbose = runner.invoke(app, ["up", "--verbose"])
    assert "Updating (local): raw engine line" in verbose.output


def test_up_runs_the_kits_policy_pack_with_the_stacks_profile(fake_stack):
    result = runner.invoke(app, ["up", "--stack", "workshop"])
    assert result.exit_code == 0, result.output
    [pack] = fake_stack.up_kwargs["policy_packs"]
    assert Path(pack) == tools.POLICY_PACK_DIR and (Path(pack) / "PulumiPolicy.yaml").is_file()
    [config_file] = fake_stack.up_kwargs["policy_pack_configs"]
    assert json.loads(Path(config_file).read_text()) == pack_config("cluster", ("traefik",))


def test_up_reports_drift_without_failing(fake_stack):
    fake_stack.drift = True
    result = runner.invoke(app, ["up"])
    assert result.exit_code == 0
    assert "! a second `up` would change something (~ kubernetes:helm.sh/v3:Release gocd update)" in result.output


@pytest.mark.parametrize("failure, message", [
    (auto.ConcurrentUpdateError(auto.CommandResult("", "conflict", 255)), "another update of stack 'local' is running"),
    (auto.CommandError(auto.CommandResult("", "error: configured Kubernetes cluster is unreachable", 255)),
     "pulumi up failed for stack 'local': error: configured Kubernetes cluster is unreachable"),
])
def test_engine_errors_become_one_line_and_exit_1(fake_stack, failure, message):
    fake_stack.fail_with = failure
    result = runner.invoke(app, ["up"])
    assert result.exit_code == 1
    assert f"✗ {message}" in result.output
    assert "Traceback" not in result.output


def test_down_destroys_and_can_delete_the_cluster(fake_stack, monkeypatch):
    run = FakeRun({})
    original = lifecycle.down
    monkeypatch.setattr(lifecycle, "down", lambda *args, **kwargs: original(*args, **kwargs, run=run))
    monkeypatch.setattr(tools.shutil, "which", lambda name: f"/usr/bin/{name}")
    result = runner.invoke(app, ["down", "--cluster"])
    assert result.exit_code == 0, result.output
    assert fake_stack.calls == ["destroy"]
    assert "✓ platform 'local' destroyed" in result.output and "✓ kind cluster 'cd4ml' deleted" in result.output
    assert [c for c in run.commands if c[1:] != ["version"]] == [["/usr/bin/kind", "delete", "cluster", "--name", "cd4ml"]]


def test_down_with_nothing_deployed_and_the_cluster_gone_still_succeeds(fake_stack, monkeypatch):
    monkeypatch.setattr(stacks, "deployed", lambda *args: False)
    result = runner.invoke(app, ["down"])
    assert result.exit_code == 0
    assert "stack 'local' is not deployed: nothing to destroy" in result.output
    assert fake_stack.calls == []


def test_the_provider_never_drops_the_state_on_its_own():
    """Set on the provider, `deleteUnreachable` would outlive every `up`: a refresh while the API server
    is briefly down would drop every resource from the state (pulumi-kubernetes provider.go Read)."""
    from pulumi_harness import run_program

    for config in ({}, {"cd4ml:clusterStack": "organization/cd4ml-cluster/local"}):
        provider = next(r for r in run_program(config).registrations if r.type == "pulumi:providers:kubernetes")
        assert "deleteUnreachable" not in provider.inputs


def test_down_on_a_cluster_that_is_gone_forgets_the_platform_instead(fake_stack, monkeypatch):
    """The README's promise: `down` works when the cluster is already gone. pulumi-kubernetes refuses to
    delete a Helm release on an unreachable cluster, while a refresh drops it (and everything else) when
    PULUMI_K8S_DELETE_UNREACHABLE is set: so refresh, then destroy, with the option for this run only."""
    opened = []
    monkeypatch.setattr(stacks, "cluster_answers", lambda target, timeout: (False, "connection refused"))
    monkeypatch.setattr(stacks, "open_stack", lambda *args, **kwargs: opened.append(kwargs) or fake_stack)
    result = runner.invoke(app, ["down"])
    assert result.exit_code == 0, result.output
    assert fake_stack.calls == ["refresh", "destroy"]
    assert opened[0]["program_env"] == {"PULUMI_K8S_DELETE_UNREACHABLE": "true"}
    assert "does not answer (connection refused)" in result.output and "dropped from the state" in result.output


def test_down_on_a_live_cluster_deletes_without_dropping_anything(fake_stack, monkeypatch):
    opened = []
    monkeypatch.setattr(stacks, "open_stack", lambda *args, **kwargs: opened.append(kwargs) or fake_stack)
    assert runner.invoke(app, ["down"]).exit_code == 0
    assert fake_stack.calls == ["destroy"] and opened[0]["program_env"] == {}


def test_up_waits_for_the_api_server_and_says_what_it_saw(fake_stack, monkeypatch):
    """A refresh against an API server still starting fails the update; without the provider's
    deleteUnreachable it no longer wipes the state, and `up` first gives the server time."""
    monkeypatch.setattr(stacks, "cluster_answers", lambda target, timeout: (False, "connection refused"))
    result = runner.invoke(app, ["up"])
    assert result.exit_code == 1
    assert "did not answer within 120s; last seen: connection refused" in result.output
    assert fake_stack.calls == []


def test_recreate_is_down_then_up_then_smoke(fake_stack):
    result = runner.invoke(app, ["recreate"])
    assert result.exit_code == 0, result.output
    assert fake_stack.calls == ["destroy", "up refresh=True", "preview expect_no_changes=True"]
    assert "1 passed" in result.output and result.output.splitlines()[-1] == "Next: cd4ml handout --stack local"


def test_status_lists_services_and_runs_only_health_checks(fake_stack, monkeypatch):
    asked = {}
    monkeypatch.setattr(stacks, "stack_outputs", lambda *args: {"services": {"gocd": {"url": "http://gocd"}}})

    def smoke(stack, endpoints, only, timeout, checks=None):
        asked["checks"] = checks
        return [CheckResult("gocd.health", "gocd", "fail", 0.1, "down")]

    monkeypatch.setattr(cli, "_run_smoke", smoke)
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 1
    assert "• gocd           http://gocd" in result.output
    assert "gocd.health" in asked["checks"] and "kibana.status" in asked["checks"] and "ingress.gocd" in asked["checks"]
    assert not [c for c in asked["checks"] if c.startswith("wire.")]


def test_status_of_an_undeployed_stack_says_so():
    result = runner.invoke(app, ["status", "--stack", "cluster"])
    assert result.exit_code == 1
    assert "stack 'cluster' is not deployed" in result.output


def test_handout_offline_writes_a_hundred_pages_with_placeholders(tmp_path, monkeypatch):
    def not_deployed(*args):
        raise errors.LifecycleError("stack 'local' is not deployed (no state in .pulumi-state)")

    monkeypatch.setattr(stacks, "stack_outputs", not_deployed)
    out = tmp_path / "handouts"
    result = runner.invoke(app, ["handout", "--stack", "workshop", "--set", "participants=100", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "pages written with a placeholder" in result.output
    assert len(list(out.glob("*.md"))) == 100 and len(list(out.glob("p*.html"))) == 100
    assert (out / "all-participants.html").is_file()  # every page in one file, to print
    page = (out / "p042.md").read_text()
    assert "**p042** / **(not deployed yet: run `cd4ml up`" in page
    assert "cd4ml-p042-staging" in page and "MLFLOW_EXPERIMENT_NAME=p042" in page and "p042.prediction" in page
    assert "https://gocd.workshop.example.com/go" in page
    with (out / "facilitator-summary.csv").open() as summary:
        rows = list(csv.DictReader(summary))
    assert len(rows) == 100 and rows[99]["participant"] == "p100" and "password" not in rows[0]


def test_handout_with_a_deployed_stack_puts_passwords_on_pages_only(tmp_path, monkeypatch):
    passwords = {"alice": "s3cret-alice-pw", "bob": "s3cret-bob-pw"}
    monkeypatch.setattr(stacks, "stack_outputs", lambda *args: {"participant_passwords": passwords})
    out = tmp_path / "handouts"
    result = runner.invoke(app, ["handout", *set_options(participantNames="alice,bob"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "**alice** / **s3cret-alice-pw**" in (out / "alice.md").read_text()
    assert "s3cret-bob-pw" in (out / "bob.html").read_text()
    for secret in passwords.values():
        assert secret not in (out / "facilitator-summary.csv").read_text()
        assert secret not in result.output


def test_handout_without_participants_says_how_to_get_them(tmp_path):
    result = runner.invoke(app, ["handout", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "cd4ml:participants = 0: handouts are for workshop participants" in result.output
    assert "set participants=N" in result.output
    assert "0 problems" not in result.output


def test_a_config_error_always_names_a_problem():
    from infra.config import ConfigError

    with pytest.raises(ValueError, match="at least one problem"):
        ConfigError([], "stack 'local'")


def test_images_lists_every_image_and_marks_the_kits_own(monkeypatch):
    result = runner.invoke(app, ["images"])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert "docker.io/gocd/gocd-server:v26.1.0" in lines
    assert any(line.startswith("cd4ml.local/gocd-agent-ml:") and line.endswith("(built by cd4ml up)")
               for line in lines)


def test_down_cluster_destroys_the_cluster_stack_when_the_kit_made_one(fake_stack, monkeypatch):
    cluster = FakeStack()
    opened = []

    def open_stack(project, stack_name, create=False, work_dir=None, program_env=None):
        opened.append(work_dir)
        return cluster if work_dir is not None else fake_stack

    monkeypatch.setattr(stacks, "open_stack", open_stack)
    monkeypatch.setattr(stacks, "cluster_deployed", lambda *args: True)
    result = runner.invoke(app, ["down", "--cluster"])
    assert result.exit_code == 0, result.output
    assert fake_stack.calls == ["destroy"] and cluster.calls == ["destroy"]
    assert opened[-1].name == "cluster"  # the platform first, then the cluster it ran on


def test_on_a_terminal_running_steps_share_a_spinner_line():
    from rich.console import Console

    console = Console(force_terminal=True, record=True, width=100)
    progress = EngineProgress(console)
    assert progress.spinner is not None
    progress.event(event("resource_pre_event", "cd4ml:platform:GoCD", "gocd"))
    progress.event(event("resource_pre_event", "cd4ml:platform:MLflow", "mlflow"))
    assert progress.running == ["gocd", "mlflow"]
    progress.event(event("res_outputs_event", "cd4ml:platform:GoCD", "gocd"))
    progress.event(event("res_outputs_event", "cd4ml:platform:MLflow", "mlflow"))
    assert progress.running == []
    text = console.export_text()
    assert "✓ gocd" in text and "✓ mlflow" in text and " • gocd …" not in text  # no plain start lines
    assert EngineProgress(Console(force_terminal=False)).spinner is None  # CI: plain lines


def test_status_prices_a_cloud_cluster(fake_stack, monkeypatch):
    cluster_outputs = {"provider": "gke", "machineType": "e2-standard-8", "nodeCount": 3}
    fake_stack.outputs = lambda: {k: auto.OutputValue(v, False) for k, v in cluster_outputs.items()}
    monkeypatch.setattr(stacks, "cluster_deployed", lambda *args: True)
    monkeypatch.setattr(stacks, "stack_outputs", lambda *args: {"services": {"gocd": {"url": "http://gocd"}}})
    monkeypatch.setattr(cli, "_run_smoke", lambda *args, **kwargs: [CheckResult("gocd.health", "gocd", "pass", 0.1,
                                                                                "ok")])
    result = runner.invoke(app, ["status", "--stack", "gke"])
    assert result.exit_code == 0, result.output
    assert "cluster: GKE, 3 × e2-standard-8, about $0.90/hour" in result.output  # 3 × 0.268 + 0.10
    assert "cd4ml down --cluster" in result.output


def published_document() -> dict:
    """The `platform` export of a stack that publishes through the ingress controller (as `up` reads it)."""
    from infra.config import load_config
    from infra.document import PlatformDocument
    from infra.platform.build import build_platform

    config = load_config({"cd4ml:profile": "cluster", "cd4ml:exposure": "ingress",
                          "cd4ml:domain": "workshop.example.com", "cd4ml:acmeEmail": "facilitator@example.com"})
    return json.loads(json.dumps(PlatformDocument.of(build_platform(config, "gke")).to_json()))


PUBLISHED = {"platform": published_document()}


@pytest.fixture
def dns(monkeypatch):
    """The names that resolve, and to what; an IP literal resolves to itself (as getaddrinfo does)."""
    records: dict[str, list[str]] = {}

    def getaddrinfo(host, port, *args, **kwargs):
        found = [host] if host.replace(".", "").isdigit() else records.get(host)
        if not found:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)) for ip in found]

    monkeypatch.setattr(front_door_dns.socket, "getaddrinfo", getaddrinfo)
    return records


@pytest.mark.parametrize("address, record", [
    ("203.0.113.7", "*.workshop.example.com A 203.0.113.7"),  # GKE
    ("a1b2.elb.us-east-1.amazonaws.com", "*.workshop.example.com CNAME a1b2.elb.us-east-1.amazonaws.com"),  # EKS
])
def test_front_door_names_the_public_urls_and_the_dns_record_to_create(address, record, dns):
    lines = front_door_dns.front_door({**PUBLISHED, "ingress": {"address": address, "domain": "workshop.example.com"}})
    assert [line.split()[1:] for line in lines[:-1]] == [
        ["gocd", "https://gocd.workshop.example.com/go"], ["kibana", "https://kibana.workshop.example.com"],
        ["grafana", "https://grafana.workshop.example.com"], ["mlflow", "https://mlflow.workshop.example.com"],
        ["gitea", "https://gitea.workshop.example.com"]]
    assert f"create the record {record}" in lines[-1]


@pytest.mark.parametrize("controller, resolves_to", [
    ("203.0.113.7", ["203.0.113.7"]),  # GKE: the A record
    ("a1b2.elb.us-east-1.amazonaws.com", ["198.51.100.4", "198.51.100.5"]),  # EKS: the CNAME, by its addresses
])
def test_front_door_says_when_the_record_already_points_at_the_controller(dns, controller, resolves_to):
    dns["a1b2.elb.us-east-1.amazonaws.com"] = ["198.51.100.5", "198.51.100.4"]
    dns["gocd.workshop.example.com"] = resolves_to
    line = front_door_dns.front_door({**PUBLISHED, "ingress": {"address": controller, "domain": "workshop.example.com"}})[-1]
    assert line == f"  DNS: ✓ *.workshop.example.com points at the ingress controller ({controller})"


def test_front_door_after_a_recreate_asks_to_update_yesterdays_record(dns):
    dns["gocd.workshop.example.com"] = ["203.0.113.7"]  # the load balancer `down` deleted
    line = front_door_dns.front_door({**PUBLISHED, "ingress": {"address": "203.0.113.99",
                                                          "domain": "workshop.example.com"}})[-1]
    assert "points at 203.0.113.7, not the ingress controller: update the record to " \
           "*.workshop.example.com A 203.0.113.99" in line


def test_front_door_without_an_address_yet_says_where_to_look():
    line = front_door_dns.front_door({**PUBLISHED, "ingress": {"address": "", "domain": "workshop.example.com"}})[-1]
    assert "has no address yet (kubectl -n cd4ml-ingress get svc traefik)" in line
    assert front_door_dns.front_door({"platform": {}, "ingress": None}) == []


def _smoke_answers(monkeypatch, *results: CheckResult) -> None:
    monkeypatch.setattr(cli, "_run_smoke", lambda *args, **kwargs: [
        CheckResult("gocd.health", "gocd", "pass", 0.1, "server healthy"), *results])


def test_up_is_done_when_published_urls_only_wait_for_the_dns_record(fake_stack, monkeypatch):
    from infra.smoke.checks.ingress import DNS_EXPECTED
    from infra.smoke.core import Diagnosis

    no_record = Diagnosis("ingress", "gocd.workshop.example.com", f"{DNS_EXPECTED} gocd.workshop.example.com",
                          "no address", "point a wildcard record ...")
    _smoke_answers(monkeypatch, CheckResult("ingress.gocd", "gocd", "fail", 0.1, str(no_record), no_record))
    result = runner.invoke(app, ["up"])
    assert result.exit_code == 0, result.output
    assert "1 published URL(s) wait for the DNS record above" in result.output


def test_up_fails_when_a_published_url_is_broken_otherwise(fake_stack, monkeypatch):
    from infra.smoke.core import Diagnosis

    no_redirect = Diagnosis("ingress", "GET http://gocd.workshop.example.com/", "a redirect to https://...",
                            "HTTP 200", "plain HTTP is served")
    _smoke_answers(monkeypatch, CheckResult("ingress.gocd", "gocd", "fail", 0.1, str(no_redirect), no_redirect))
    result = runner.invoke(app, ["up"])
    assert result.exit_code == 1
    assert "wait for the DNS record" not in result.output


def test_no_command_prints_a_generated_secret(fake_stack, monkeypatch, tmp_path, dns):
    """`up --verbose`, `status` and `handout` against a stack whose outputs hold participants'
    passwords (as the real one does): the handout pages carry them, nothing printed or summarized does.
    The engine's own lines under --verbose are Pulumi's, which masks secret values itself."""
    passwords = {"alice": "s3cret-alice-pw", "bob": "s3cret-bob-pw"}
    outputs = {"services": {"gocd": {"url": "http://gocd"}}, "platform": PUBLISHED["platform"],
               "ingress": {"address": "203.0.113.7", "domain": "workshop.example.com"},
               "participant_passwords": passwords}
    up_result = SimpleNamespace(summary=SimpleNamespace(result="succeeded"), outputs={
        name: auto.OutputValue(value, name == "participant_passwords") for name, value in outputs.items()})
    monkeypatch.setattr(fake_stack, "up", lambda on_output, on_event, **kwargs: (
        on_output("    participant_passwords: [secret]"), up_result)[1])
    monkeypatch.setattr(stacks, "stack_outputs", lambda *args: outputs)
    printed = [runner.invoke(app, ["up", "--verbose"]), runner.invoke(app, ["status"]),
               runner.invoke(app, ["handout", *set_options(participantNames="alice,bob"), "--out", str(tmp_path)])]
    assert [r.exit_code for r in printed] == [0, 0, 0], [r.output for r in printed]
    assert "participant_passwords: [secret]" in printed[0].output  # the verbose engine lines did print
    assert "*.workshop.example.com A 203.0.113.7" in printed[1].output  # and status read these outputs
    for secret in passwords.values():
        assert all(secret not in r.output for r in printed)
        assert secret not in (tmp_path / "facilitator-summary.csv").read_text()
    assert "s3cret-alice-pw" in (tmp_path / "alice.md").read_text()


def test_smoke_checks_the_cluster_the_stack_runs_on_not_the_current_context(monkeypatch, tmp_path):
    """The current context may point elsewhere by now (another project, a cloud cluster): smoke and
    status go where the stack's outputs say it runs."""
    from infra.smoke.cluster import KubeTarget

    kubeconfig = tmp_path / "config"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\ncurrent-context: somebody-elses-cluster\n")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setattr(stacks, "deployed", lambda *args: True)
    monkeypatch.setattr(stacks, "stack_outputs", lambda *args: {"kube": {"context": "kind-cd4ml",
                                                                            "clusterStack": None}})
    seen = []
    monkeypatch.setattr("infra.smoke.runner.smoke_run", lambda *args, **kwargs: seen.append(kwargs["kube"]) or [])
    assert cli._run_smoke("local", [], [], 5.0) == []
    assert seen == [KubeTarget(context="kind-cd4ml")]
    # On the kit's cluster stack: its own kubeconfig, handed over (secret) by the cluster stack.
    cluster_kubeconfig = "apiVersion: v1\nkind: Config\ncurrent-context: kind-cd4ml\n"
    monkeypatch.setattr(stacks, "stack_outputs", lambda *args: {"kube": {
        "context": None, "clusterStack": "organization/cd4ml-cluster/local"}})
    monkeypatch.setattr(stacks, "open_stack", lambda *args, **kwargs: SimpleNamespace(
        outputs=lambda: {"kubeconfig": auto.OutputValue(cluster_kubeconfig, True)}))
    cli._run_smoke("local", [], [], 5.0)
    assert seen[-1].kubeconfig["current-context"] == "kind-cd4ml"
    # Direct mode needs no cluster at all.
    cli._run_smoke("local", ["mlflow=http://127.0.0.1:5000"], [], 5.0)
    assert seen[-1] is None


def test_up_fetches_each_missing_plugin_first_with_a_line_each(fake_stack):
    """The engine would download them silently inside `up`: the first run looked hung."""
    fake_stack.workspace.plugins = []
    result = runner.invoke(app, ["up"])
    assert result.exit_code == 0, result.output
    assert {name for name, _ in fake_stack.workspace.installed} >= {"kubernetes", "random", "command"}
    assert " • downloading the Pulumi plugin kubernetes v" in result.output


def test_a_laptop_install_holds_no_cloud_provider():
    """Every Pulumi package in the kit's venv is a plugin the engine installs before the first `up`
    (pulumi-language-python GetRequiredPackages): the cloud ones stay in requirements-cloud.txt."""
    from infra.platform.kit_images import REPO_ROOT

    laptop = (REPO_ROOT / "requirements.txt").read_text().lower().replace("-", "_")
    assert not [p for p in ("pulumi_gcp", "pulumi_aws", "pulumi_eks", "pulumi_azure") if p in laptop]
    cloud = (REPO_ROOT / "requirements-cloud.txt").read_text().lower().replace("-", "_")
    assert all(p in cloud for p in ("pulumi_gcp==", "pulumi_eks==", "pulumi_aws=="))


@pytest.mark.parametrize("provider, module", [("gke", "pulumi_gcp"), ("eks", "pulumi_eks")])
def test_a_cloud_stack_installs_its_providers_on_first_use(provider, module, monkeypatch):
    import importlib.util

    from rich.console import Console
    from test_lifecycle import FakeRun

    from infra.config import load_config

    config = load_config({"cd4ml:profile": "cluster", "cd4ml:clusterProvider": provider,
                          "cd4ml:cloudProject": "p", "cd4ml:cloudRegion": "europe-west1-b",
                          "cd4ml:imageRegistry": "registry.example.com/cd4ml"})
    run = FakeRun({})
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == module else real_find_spec(name))
    tools.ensure_cloud_packages(config, Console(), run)
    [pip] = run.commands
    assert pip[1:4] == ["-m", "pip", "install"] and pip[-1].endswith("requirements-cloud.txt")
    tools.ensure_cloud_packages(load_config({}), Console(), run)  # a laptop: nothing
    assert len(run.commands) == 1


def test_the_pulumi_release_unpacks_into_tools_bin_and_nothing_else(tmp_path):
    import io
    import tarfile

    archive = tmp_path / "pulumi.tar.gz"
    with tarfile.open(archive, "w:gz") as release:
        for name in ("pulumi/pulumi", "pulumi/pulumi-language-python", "../escape", "pulumi/sub/deep"):
            data = b"#!/bin/sh\n"
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            release.addfile(info, io.BytesIO(data))
    tools.unpack_pulumi(archive, tmp_path / "bin")
    assert sorted(p.name for p in (tmp_path / "bin").iterdir()) == ["pulumi", "pulumi-language-python"]
    assert not (tmp_path / "escape").exists()


def test_charts_from_a_local_folder_at_their_pinned_versions(tmp_path):
    """A venue without internet: `chartsDir` makes every release install from a folder; `up` and
    `cd4ml charts` refuse a folder without a chart, or with another version than the kit's values fit."""
    from pulumi_harness import run_program

    from infra.cli.charts import local_chart_problems
    from infra.config import load_config
    from infra.platform.build import build_platform

    platform = build_platform(load_config({"cd4ml:chartsDir": str(tmp_path)}), "local")
    releases = {r.chart: r for part in platform.parts for r in part.releases}
    assert releases["mlflow"].local_chart == str(tmp_path / "mlflow")
    assert "mlflow: no chart in" in " ".join(local_chart_problems(platform))
    (tmp_path / "mlflow").mkdir()
    (tmp_path / "mlflow" / "Chart.yaml").write_text("name: mlflow\nversion: 1.11.4\n")
    assert f"mlflow: {tmp_path / 'mlflow'} holds version 1.11.4, the kit pins 1.11.5" in local_chart_problems(platform)
    result = runner.invoke(app, ["charts", "--set", f"chartsDir={tmp_path}"])
    assert result.exit_code == 1 and "holds version 1.11.4" in result.output
    # The program installs from the folder: no repository, no version to resolve.
    monitor = run_program({"cd4ml:chartsDir": str(tmp_path)})
    [mlflow] = [r for r in monitor.registrations if r.type == "kubernetes:helm.sh/v3:Release" and r.name.endswith("mlflow")]
    assert mlflow.inputs["chart"] == str(tmp_path / "mlflow")
    assert "repositoryOpts" not in mlflow.inputs and "version" not in mlflow.inputs


def test_skip_checkpoints_is_the_facilitators_choice_for_one_update(fake_stack, monkeypatch):
    opened = []
    monkeypatch.setattr(stacks, "open_stack", lambda *args, **kwargs: opened.append(kwargs) or fake_stack)
    assert runner.invoke(app, ["up", "--no-smoke"]).exit_code == 0
    assert "PULUMI_SKIP_CHECKPOINTS" not in opened[-1]["program_env"]
    result = runner.invoke(app, ["up", "--no-smoke", "--skip-checkpoints"])
    assert result.exit_code == 0 and opened[-1]["program_env"]["PULUMI_SKIP_CHECKPOINTS"] == "true"
    assert "saved once, at the end" in result.output


def test_down_cluster_waits_for_the_platforms_volumes_before_deleting_the_cluster(fake_stack, monkeypatch):
    """A claim's cloud disk is deleted by the CSI driver after the claim: the cluster must outlive that,
    or the disks stay behind, billed. Left after the wait, they are named, not silently kept."""
    cluster = FakeStack()
    monkeypatch.setattr(stacks, "open_stack", lambda project, stack_name, create=False, work_dir=None,
                        program_env=None: cluster if work_dir is not None else fake_stack)
    monkeypatch.setattr(stacks, "cluster_deployed", lambda *args: True)
    looks: list[str] = []

    def platform_volumes(target, prefix):
        looks.append(prefix)
        assert cluster.calls == []  # still there while the volumes go
        return ["pvc-1 (cd4ml-mlflow/mlflow, disk projects/p/zones/z/disks/pvc-1)"] if len(looks) < 3 else []

    monkeypatch.setattr(stacks, "platform_volumes", platform_volumes)
    result = runner.invoke(app, ["down", "--cluster"])
    assert result.exit_code == 0, result.output
    assert len(looks) == 3 and looks[0] == "cd4ml" and cluster.calls == ["destroy"]

    looks.clear()
    monkeypatch.setattr(lifecycle, "VOLUMES_RELEASED_TIMEOUT", 0.3)
    monkeypatch.setattr(stacks, "platform_volumes", lambda target, prefix: ["pvc-1 (cd4ml-mlflow/mlflow, disk d-1)"])
    result = runner.invoke(app, ["down", "--cluster"])
    assert result.exit_code == 0, result.output
    assert "disk d-1" in result.output and "billed" in result.output

