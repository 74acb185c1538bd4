"""The smoke library in direct mode: against a real MLflow server and stand-ins for the rest, healthy
and with every fault injected that the checks must catch — and only the right check failing."""

from __future__ import annotations

import json
from xml.etree import ElementTree

import pytest
from smoke_fixtures import GOCD_ADMIN, MLFLOW_ADMIN, PASSWORDS, PIPELINES_LOGIN, StandInPlatform, free_port, runs_ahead
from typer.testing import CliRunner

from infra.cli.main import app
from infra.polling import Observation, WaitTimeout, poll_until
from infra.smoke.core import CheckResult
from infra.smoke.runner import SmokeUsageError, parse_endpoints, run_checks, select, write_json, write_junit

runner = CliRunner()
CLUSTER_ONLY = {"wire.gocd-agents-deploy", "wire.gocd-agents-mlflow", "wire.container-logs-elasticsearch",
                "wire.gocd-agents-fluentd", "wire.app-fluentd", "wire.app-mlflow", "wire.gocd-agents-gocd",
                "wire.gocd-agents-gitea",
                "platform.credentials", "platform.network-policies", "platform.admission", "gocd.agents-isolation",
                "workshop.logins", "workshop.participants-apart"}
STAND_IN_SECRETS = (*PASSWORDS.values(), GOCD_ADMIN[1], "grafana-admin-pw", MLFLOW_ADMIN[1], PIPELINES_LOGIN[1])
PUBLISHED_ONLY = {"ingress.gocd", "ingress.kibana", "ingress.grafana", "ingress.mlflow", "ingress.gitea",
                  "ingress.model-services"}
"""Skipped unless the stack publishes through an ingress controller (tests/test_smoke_ingress.py)."""
WORKSHOP_ONLY = {"gocd.agents-isolation", "workshop.logins", "workshop.participants-apart"}
"""Skipped without two participants (tests/test_agent_admission.py runs it on a real API server)."""
FAULT_MATRIX: list[tuple[str, str, str, str]] = []
"""(edge or service, fault, checks that failed, verdict) — printed at the end of the run."""


@pytest.fixture
def mlflow_unwritable_artifacts(mlflow_server):
    """The run's MLflow with its artifact store broken for one test: a file where the directory should
    be (what a volume mounted wrong leaves), as the server writes there on every upload. Put back after."""
    store = mlflow_server.artifacts
    aside = store.with_name(f"{store.name}.aside")
    if store.exists():
        store.rename(aside)
    store.write_text("not a directory")
    try:
        yield mlflow_server
    finally:
        store.unlink()
        if aside.exists():
            aside.rename(store)


def run(platform: StandInPlatform, **kwargs) -> dict[str, CheckResult]:
    return {r.name: r for r in run_checks(platform.context(**kwargs), select())}


def test_healthy_platform_passes_every_direct_check(mlflow_server):
    platform = StandInPlatform(mlflow_server.url)
    try:
        results = run(platform)
    finally:
        platform.stop()
    assert {n for n, r in results.items() if r.status == "skip"} == CLUSTER_ONLY | PUBLISHED_ONLY
    failures = {n: r.detail for n, r in results.items() if r.status == "fail"}
    assert failures == {}
    assert len(results) == 41
    for name in CLUSTER_ONLY:
        assert "needs the cluster" in results[name].detail
    for name in PUBLISHED_ONLY:
        assert "publishes nothing" in results[name].detail
    # Test data is cleaned up: the event is gone from Elasticsearch, the MLflow run deleted.
    leftovers = [d for docs in platform.es.indices.values() for d in docs
                 if d.get("event_id", "").startswith("cd4ml-smoke")]
    assert leftovers == []


FAULTS = [
    # (edge/service, fault, checks that must fail, words the diagnosis must contain)
    ("fluentd->elasticsearch", "fluentd-wrong-host", {"wire.fluentd-elasticsearch"}, "Fluentd output's host"),
    ("fluentd->elasticsearch", "fluentd-wrong-port", {"wire.fluentd-elasticsearch"}, "Fluentd output's host"),
    ("fluentd->elasticsearch", "fluentd-wrong-credentials", {"wire.fluentd-elasticsearch"}, "credentials in"),
    ("fluentd->elasticsearch", "fluentd-drops-events", {"wire.fluentd-elasticsearch"}, "never reached index"),
    ("fluentd->elasticsearch", "fluentd-down", {"fluentd.forward", "wire.fluentd-elasticsearch"}, "forward"),
    # Elasticsearch authorizes each bulk item: a writer role without auto_configure cannot start the day's
    # index, one without index cannot write to it; Fluentd's bulk request itself still answers 200.
    ("fluentd->elasticsearch (role)", "fluentd-role-without-auto-configure", {"wire.fluentd-elasticsearch"},
     "cd4ml_log_writer"),
    ("fluentd->elasticsearch (role)", "fluentd-role-without-index", {"wire.fluentd-elasticsearch"},
     "cd4ml_log_writer"),
    ("kibana->elasticsearch", "kibana-wrong-host", {"kibana.status", "wire.kibana-elasticsearch"}, "elasticsearchRef"),
    ("kibana->elasticsearch", "kibana-wrong-port", {"kibana.status", "wire.kibana-elasticsearch"}, "elasticsearchRef"),
    # Kibana's console runs as the logged-in user, so only the association (kibana.status) breaks.
    ("kibana->elasticsearch", "kibana-wrong-credentials", {"kibana.status"}, "elasticsearchRef"),
    ("kibana", "kibana-down", {"kibana.status", "kibana.data-views", "wire.kibana-elasticsearch"}, "kibana is down"),
    ("grafana->elasticsearch", "grafana-wrong-host", {"grafana.datasources", "wire.grafana-elasticsearch"},
     "differs from the wiring graph"),
    ("grafana->elasticsearch", "grafana-wrong-port", {"grafana.datasources", "wire.grafana-elasticsearch"},
     "differs from the wiring graph"),
    ("grafana->elasticsearch", "grafana-wrong-credentials", {"grafana.datasources", "wire.grafana-elasticsearch"},
     "credentials in cd4ml-monitoring/elasticsearch-user-grafana"),
    ("grafana", "grafana-down", {"grafana.health", "grafana.datasources", "grafana.dashboards",
                                 "wire.grafana-elasticsearch"},
     "grafana is down"),
    ("elasticsearch", "elasticsearch-red", {"elasticsearch.health"}, "unassigned"),
    ("elasticsearch", "elasticsearch-down", {"elasticsearch.health", "elasticsearch.index-templates",
                                             "kibana.status", "grafana.datasources",
                                             "wire.fluentd-elasticsearch"}, "elasticsearch is down"),
    ("gocd", "gocd-down", {"gocd.health", "gocd.security", "gocd.elastic-agents", "gocd.config-repos",
                           "wire.gocd-gitea"}, "gocd is down"),
    # Starting, GoCD answers everything 503: health says so first.
    ("gocd", "gocd-starting", {"gocd.health", "gocd.security", "gocd.elastic-agents", "gocd.config-repos",
                               "wire.gocd-gitea"}, "still starting"),
    ("gocd (security)", "gocd-security-off", {"gocd.security"}, "anyone may administer GoCD"),
    ("gocd-agents->mlflow (profile)", "gocd-agent-profile-stale", {"gocd.elastic-agents"},
     "mlflow.old-namespace"),
    # A repository that does not parse has no good modification either: the wire carries nothing usable.
    ("gocd (config repos)", "gocd-config-repo-broken", {"gocd.config-repos", "wire.gocd-gitea"}, "parse error"),
    # GoCD's clone as its reader is refused (404, the repository private to others): what GoCD shows for it.
    ("gocd->gitea", "gitea-reader-not-collaborator", {"gocd.config-repos", "wire.gocd-gitea"},
     "MODIFICATION CHECK FAILED"),
    # GoCD keeps a parse result once made: only the server's health message shows the clone failing now.
    ("gocd->gitea (later)", "gitea-reader-removed-later", {"wire.gocd-gitea"}, "latest check fails"),
    ("gitea", "gitea-down", {"gitea.health", "gitea.ready-repos", "gocd.config-repos", "wire.gocd-gitea"},
     "gitea is down"),
    ("elasticsearch (templates)", "elasticsearch-not-configured", {"elasticsearch.index-templates"},
     "elasticsearch-configure"),
    ("kibana (data views)", "kibana-not-configured", {"kibana.data-views"}, "kibana-configure"),
    ("grafana (dashboards)", "grafana-dashboard-missing", {"grafana.dashboards"}, "dashboard provider"),
]


def fault_run(mlflow_url: str, fault: str) -> dict[str, CheckResult]:
    """Every direct check against stand-ins with `fault` injected."""
    platform = StandInPlatform(mlflow_url, faults=frozenset({fault}))
    try:
        return run(platform, timeout=2.0)
    finally:
        platform.stop()


@pytest.fixture(scope="module")
def fault_runs(request, mlflow_server):
    """The selected faults' runs, four at a time, ahead of their tests (smoke_fixtures.runs_ahead)."""
    with runs_ahead(request, "fault", lambda fault: fault_run(mlflow_server.url, fault), workers=4) as futures:
        yield futures


@pytest.mark.parametrize("edge, fault, expected, cause", FAULTS, ids=[f[1] for f in FAULTS])
def test_fault_is_caught_by_exactly_the_right_checks(fault_runs, edge, fault, expected, cause):
    results = fault_runs[fault].result()
    failed = {n for n, r in results.items() if r.status == "fail"}
    verdict = "caught" if failed == expected else "WRONG"
    FAULT_MATRIX.append((edge, fault, ", ".join(sorted(failed)) or "-", verdict))
    assert failed == expected
    first = results[sorted(expected)[0]] if fault != "elasticsearch-down" else results["elasticsearch.health"]
    assert cause in first.detail, first.detail
    for name, result in results.items():
        if name not in expected:
            assert result.status in ("pass", "skip"), f"{name}: {result.detail}"
    # Diagnoses name the Secret a credential lives in, never the credential (even for wrong-credential faults).
    reported = "\n".join(f"{r.name} {r.detail} {r.diagnosis}" for r in results.values())
    for secret in STAND_IN_SECRETS:
        assert secret not in reported


def test_mlflow_unwritable_artifact_store_fails_only_the_run_check(mlflow_unwritable_artifacts):
    platform = StandInPlatform(mlflow_unwritable_artifacts.url)
    try:
        results = {r.name: r for r in run_checks(platform.context(), select(["mlflow"]))}
    finally:
        platform.stop()
    assert results["mlflow.health"].status == results["mlflow.rest"].status == "pass"
    assert results["mlflow.run"].status == "fail"
    assert "artifact store is not writable" in results["mlflow.run"].detail
    FAULT_MATRIX.append(("mlflow (artifacts)", "mlflow-artifacts-unwritable", "mlflow.run", "caught"))


def test_cli_passes_against_live_mlflow_and_fails_when_it_stops(mlflow_server, tmp_path, monkeypatch):
    """Live: the run's MLflow. Stopped: its address with nothing listening any more, which is all a
    stopped server leaves a client (a port no process holds)."""
    monkeypatch.setenv("CD4ML_MLFLOW_USERNAME", MLFLOW_ADMIN[0])
    monkeypatch.setenv("CD4ML_MLFLOW_PASSWORD", MLFLOW_ADMIN[1])
    ok = runner.invoke(app, ["smoke", "--endpoint", f"mlflow={mlflow_server.url}", "--only", "mlflow",
                             "--json", str(tmp_path / "ok.json")])
    assert ok.exit_code == 0, ok.output
    assert "3 passed, 0 failed, 3 skipped" in ok.output  # the wires need a cluster; ingress.mlflow a public URL
    assert {r["status"] for r in json.loads((tmp_path / "ok.json").read_text())} == {"pass", "skip"}
    stopped = f"http://127.0.0.1:{free_port()}"
    down = runner.invoke(app, ["smoke", "--endpoint", f"mlflow={stopped}", "--only", "mlflow", "--timeout", "2"])
    assert down.exit_code == 1
    assert "mlflow is down, not ready yet, or the URL is wrong" in down.output
    assert f"GET {stopped}/health" in down.output
    FAULT_MATRIX.append(("mlflow", "mlflow-down", "mlflow.health, mlflow.rest, mlflow.run", "caught"))


def test_pytest_plugin_runs_each_check_as_a_test(pytester, mlflow_server, monkeypatch):
    monkeypatch.setenv("CD4ML_MLFLOW_USERNAME", MLFLOW_ADMIN[0])
    monkeypatch.setenv("CD4ML_MLFLOW_PASSWORD", MLFLOW_ADMIN[1])
    passing = pytester.runpytest_inprocess("--smoke", "--smoke-endpoint", f"mlflow={mlflow_server.url}",
                                           "--smoke-only", "mlflow", "-p", "no:cacheprovider")
    # Skipped: the two wires need a cluster, ingress.mlflow a published URL.
    passing.assert_outcomes(passed=3, skipped=3)
    passing.stdout.fnmatch_lines(["*3 passed, 3 skipped*"])
    failing = pytester.runpytest_inprocess("--smoke", "--smoke-endpoint", "mlflow=http://127.0.0.1:9",
                                           "--smoke-only", "mlflow", "-p", "no:cacheprovider")
    failing.assert_outcomes(failed=3, skipped=3)
    failing.stdout.fnmatch_lines(["*likely:*mlflow is down, not ready yet, or the URL is wrong*"])


def test_mlflow_host_header_rejection_is_diagnosed(mlflow_server):
    platform = StandInPlatform(mlflow_server.url)
    context = platform.context()
    context.session.headers["Host"] = "mlflow.cd4ml-mlflow.svc.cluster.local"
    try:
        results = {r.name: r for r in run_checks(context, select(["mlflow"]))}
    finally:
        platform.stop()
    assert results["mlflow.rest"].status == "fail"
    assert "serverAllowedHosts" in results["mlflow.rest"].detail


def test_reports_json_and_junit(tmp_path):
    results = [CheckResult("a.b", "a", "pass", 0.1, "fine"), CheckResult("a.c", "a", "skip", 0.0, "why"),
               CheckResult("a.d", "a", "fail", 0.2, "broken")]
    write_json(results, tmp_path / "r.json")
    write_junit(results, tmp_path / "r.xml")
    assert [r["status"] for r in json.loads((tmp_path / "r.json").read_text())] == ["pass", "skip", "fail"]
    suite = ElementTree.parse(tmp_path / "r.xml").getroot()
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "1", "1")


@pytest.mark.parametrize("args, message", [
    (["--endpoint", "mlfow=http://x"], "SERVICE one of"),
    (["--endpoint", "mlflow=localhost:5000"], "is not an http(s):// or tcp:// URL"),
    (["--endpoint", "mlflow=http://127.0.0.1:1", "--only", "jenkins"], "not a service"),
    ([], "cannot use the current context"),
])
def test_usage_errors_exit_2_with_what_is_allowed(args, message, tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    result = runner.invoke(app, ["smoke", *args])
    assert result.exit_code == 2
    assert message in result.output


def test_endpoint_parsing():
    assert parse_endpoints(["fluentd=tcp://127.0.0.1:24224"]) == {"fluentd": "tcp://127.0.0.1:24224"}
    with pytest.raises(SmokeUsageError):
        parse_endpoints(["fluentd"])


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.pauses: list[float] = []

    def __call__(self) -> float:
        return self.now

    def pause(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


def test_polling_backs_off_and_names_what_it_waited_for():
    clock = FakeClock()
    looks = iter(range(100))
    with pytest.raises(WaitTimeout) as caught:
        poll_until(lambda: Observation(False, None, f"look {next(looks)}"), what="the event in ES", timeout=10,
                   clock=clock, pause=clock.pause)
    assert "the event in ES" in str(caught.value) and "last seen: look" in str(caught.value)
    assert clock.pauses == sorted(clock.pauses[:-1]) + clock.pauses[-1:]  # growing, but the last fits the deadline
    assert clock.now == pytest.approx(10)
    assert max(clock.pauses) <= 3.0


def test_polling_returns_as_soon_as_done_and_treats_errors_as_not_yet():
    clock = FakeClock()
    answers = iter([ConnectionError("refused"), Observation(False, seen="starting"), Observation(True, 42)])

    def probe():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert poll_until(probe, what="x", timeout=10, clock=clock, pause=clock.pause) == 42
    assert len(clock.pauses) == 2
