"""Workshop mode: `participants: N` gives each participant their own namespaces, agents, pipeline
group, MLflow experiment, Fluentd tag, logins and quota — and nothing of anybody else's."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from gocd_api import GoCDApiStandIn
from kube_objects import configure_desired, configure_objects, pick, with_password_files
from pulumi_harness import run_program, unsecret
from smoke_fixtures import MLFLOW_ADMIN
from stack_settings import workshop as workshop_settings
from typer.testing import CliRunner

from infra.cli.main import app
from infra.config import load_config
from infra.configure import mlflow as configure_mlflow
from infra.configure.api import ApiError, JsonApi
from infra.configure.gocd import configure as configure_gocd
from infra.platform.apps import ENDPOINTS_CONFIGMAP
from infra.platform.build import build_platform
from infra.platform.gocd import elastic_agent_pod

runner = CliRunner()


@pytest.fixture(scope="module")
def hundred(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("workshop")
    result = runner.invoke(app, ["plan", "--stack", "workshop", "--set", "participants=100", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def objects(plan_dir: Path, kind: str, namespace: str | None = None) -> list[dict]:
    found = []
    for path in sorted((plan_dir / "objects").glob(f"{namespace or '*'}__{kind.lower()}__*.yaml")):
        found.append(yaml.safe_load(path.read_text()))
    return found


def test_a_hundred_tenants_with_distinct_everything(hundred):
    tenants = json.loads((hundred / "platform.json").read_text())["tenants"]
    assert len(tenants) == 100
    for field in ("name", "mlflow_experiment", "gocd_pipeline_group", "fluentd_tag", "index_pattern",
                  "gocd_elastic_profile", "service_account", "login", "password_id"):
        assert len({t[field] for t in tenants}) == 100, field
    namespaces = [ns for t in tenants for ns in t["namespaces"].values()]
    assert len(set(namespaces)) == 200
    assert tenants[0]["namespaces"] == {"staging": "cd4ml-p001-staging", "production": "cd4ml-p001-production"}
    assert tenants[41]["fluentd_tag"] == "p042.prediction" and tenants[41]["index_pattern"] == "cd4ml-events-p042-*"
    document = json.loads((hundred / "platform.json").read_text())
    assert set(namespaces) <= set(document["namespaces"])


def test_each_participants_agents_deploy_only_into_their_namespaces(hundred):
    bindings = [b for b in objects(hundred, "RoleBinding") if b["metadata"]["namespace"] != "cd4ml-gocd"]
    assert len(bindings) == 200  # beside the GoCD server's own, on agent pods in its namespace
    for binding in bindings:
        tenant = binding["metadata"]["namespace"].split("-")[1]
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": f"gocd-agent-{tenant}",
                                        "namespace": "cd4ml-gocd"}]
    quotas = objects(hundred, "ResourceQuota")
    assert len(quotas) == 200 and {q["spec"]["hard"]["requests.cpu"] for q in quotas} == {"1"}
    endpoints = pick(objects(hundred, "ConfigMap", "cd4ml-p007-production"), "ConfigMap", ENDPOINTS_CONFIGMAP)
    assert endpoints["data"]["CD4ML_TENANT"] == "p007"


def test_each_participant_gets_a_profile_group_and_gocd_login(hundred):
    config_map = next(c for c in objects(hundred, "ConfigMap", "cd4ml-gocd")
                      if c["metadata"]["name"].startswith("gocd-configure-"))
    desired = json.loads(config_map["data"]["desired.json"])
    assert len(desired["elastic_profiles"]) == 100 and len(desired["pipeline_groups"]) == 100
    group = next(g for g in desired["pipeline_groups"] if g["name"] == "p013")
    assert group["authorization"]["operate"] == {"users": ["p013"], "roles": []}
    pod = elastic_agent_pod(desired, "cd4ml-ml-p013")
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert pod["spec"]["serviceAccountName"] == "gocd-agent-p013"
    assert env["CD4ML_TENANT"] == "p013" and env["MLFLOW_EXPERIMENT_NAME"] == "p013"
    assert env["CD4ML_NAMESPACE_STAGING"] == "cd4ml-p013-staging"
    assert env["CD4ML_DEPLOY_NAMESPACES"] == "cd4ml-p013-staging,cd4ml-p013-production"
    assert desired["system_admins"]["users"] == ["cd4ml-admin"]  # participants are never admins


def test_each_participant_reads_only_their_own_events(hundred):
    roles = yaml.safe_load(next(s for s in objects(hundred, "Secret", "cd4ml-logging")
                                if s["metadata"]["name"] == "elasticsearch-roles")["stringData"]["roles.yml"])
    role = roles["cd4ml_tenant_p100"]
    assert role["indices"] == [{"names": ["cd4ml-events-p100-*"], "privileges": ["read", "view_index_metadata"]}]
    assert "cluster" not in role
    user = next(s for s in objects(hundred, "Secret", "cd4ml-logging")
                if s["metadata"]["name"] == "elasticsearch-user-p100")
    assert user["stringData"] == {"username": "p100", "roles": "cd4ml_tenant_p100"}
    assert user["metadata"]["annotations"]["cd4ml.dev/generated-keys"] == "password"


def test_names_instead_of_numbers_and_model_repos_per_participant():
    platform = build_platform(load_config(workshop_settings(participantNames="alice,bob", modelRepos=[
        "https://git.example.com/workshop/{participant}-model.git", "https://git.example.com/shared/demo.git"])),
        "local")
    desired = configure_desired(platform.services["gocd"])
    repos = {r["id"]: r for r in desired["config_repos"]}
    assert set(repos) == {"demo", "alice-model", "bob-model"}
    assert repos["bob-model"]["material"]["attributes"]["url"] == "https://git.example.com/workshop/bob-model.git"
    assert repos["bob-model"]["rules"][0] == {"directive": "allow", "action": "refer", "type": "pipeline_group",
                                              "resource": "bob"}
    assert repos["demo"]["rules"][0]["resource"] == "*"


def test_one_password_per_participant_reaches_gocd_and_elasticsearch_as_secrets():
    monitor = run_program(workshop_settings(participants=2))
    secrets = {}
    for r in monitor.registrations:
        if r.type == "kubernetes:core/v1:Secret":
            data, is_secret = unsecret(r.inputs["stringData"])
            secrets[r.inputs["metadata"]["name"]] = (data, is_secret)
    password_file, is_secret = secrets["gocd-password-file"]
    assert is_secret
    assert password_file["password.properties"] == (
        "cd4ml-admin:$2a$10$mock-bcrypt-of-passwords-gocd-admin\n"
        "p01:$2a$10$mock-bcrypt-of-passwords-participant-p01\n"
        "p02:$2a$10$mock-bcrypt-of-passwords-participant-p02\n")
    assert secrets["elasticsearch-user-p02"][0]["password"] == "mock-password-for-passwords-participant-p02"


def test_gocd_configure_creates_each_participants_group(tmp_path):
    platform = build_platform(load_config(workshop_settings(participants=3)), "local")
    desired = with_password_files(configure_desired(platform.services["gocd"]), "reader-pw")
    gocd = GoCDApiStandIn(users={"cd4ml-admin": "pw"}).start()
    try:
        api = JsonApi(f"{gocd.url}/go", "cd4ml-admin", "pw", anonymous_first=True)
        outcomes = configure_gocd(api, desired, health_timeout=5)
        assert [(o.id, o.action) for o in outcomes if o.what == "pipeline group"] == [
            ("p01", "created"), ("p02", "created"), ("p03", "created")]
        assert gocd.items["pipeline_groups"]["p02"]["authorization"]["view"]["users"] == ["p02"]
        again = configure_gocd(JsonApi(f"{gocd.url}/go", "cd4ml-admin", "pw", anonymous_first=True), desired,
                               health_timeout=5)
        assert {o.action for o in again} == {"unchanged"}
    finally:
        gocd.stop()


def test_mlflow_logins_and_experiments_per_participant_against_a_real_server(mlflow_server, unique_name):
    """The kit's configure code against a real `mlflow server --app-name basic-auth` (MLflow 3.15.1,
    the platform's version): a user per participant who owns their experiment and sees no other. The
    run's shared server; the participants' names are this test's own."""
    server = mlflow_server
    ada, grace, alan = (unique_name(name) for name in ("ada", "grace", "alan"))
    logins = {ada: "ada-password-1", grace: "grace-password-2", alan: "alan-password-3"}
    config = workshop_settings(participantNames=f"{ada},{grace},{alan}")
    first = server.configure_like_the_kit(config, logins)
    assert [(o.what, o.id, o.action) for o in first][:3] == [
        ("user", ada, "created"), ("experiment", ada, "created"), ("permission", f"{ada} on {ada}", "created")]
    assert {o.action for o in server.configure_like_the_kit(config, logins)} == {"unchanged"}
    admin = JsonApi(server.url, *MLFLOW_ADMIN)
    grace_experiment = admin.call("GET", f"/api/2.0/mlflow/experiments/get-by-name?experiment_name={grace}"
                                  ).body["experiment"]
    assert {t["key"]: t["value"] for t in grace_experiment["tags"]}["cd4ml.tenant"] == grace
    # Grace logs in and writes to her experiment; Ada's is not hers to read; nobody gets in anonymously.
    as_grace = JsonApi(server.url, grace, logins[grace])
    run = as_grace.call("POST", "/api/2.0/mlflow/runs/create",
                        body={"experiment_id": grace_experiment["experiment_id"]})
    assert run.status == 200, run.summary()
    ada_experiment = admin.call("GET", f"/api/2.0/mlflow/experiments/get-by-name?experiment_name={ada}"
                                ).body["experiment"]
    assert as_grace.call("GET", f"/api/2.0/mlflow/experiments/get?experiment_id={ada_experiment['experiment_id']}"
                         ).status == 403
    assert JsonApi(server.url).call("GET", "/api/2.0/mlflow/experiments/search").status == 401
    # A deleted experiment is restored, not duplicated; a changed password is put back.
    admin.call("POST", "/api/2.0/mlflow/experiments/delete", body={"experiment_id": grace_experiment["experiment_id"]})
    outcomes = server.configure_like_the_kit(config, {**logins, alan: "alan-new-password"})
    actions = {(o.what, o.id): o.action for o in outcomes}
    assert actions[("experiment", grace)] == "updated" and actions[("user", alan)] == "updated"
    assert JsonApi(server.url, alan, "alan-new-password").call("GET", "/api/2.0/mlflow/users/current").status == 200
    # MLflow refuses passwords of 12 characters or fewer; the kit generates longer ones.
    platform = build_platform(load_config(config), "local")
    assert min(t.pipeline_password.length for t in platform.tenants) > 12
    # The admin's password is checked first, with a diagnosis naming the Secret.
    with pytest.raises(ApiError, match="refused the kit's admin cd4ml-admin .*existingAdminSecret"):
        configure_mlflow.configure(JsonApi(server.url, "cd4ml-admin", "wrong"), {"tenants": []}, 10)


def test_a_long_prefix_that_would_break_namespace_names_is_refused():
    from infra.config import ConfigError

    with pytest.raises(ConfigError, match="namespacePrefix .* would exceed 63 characters"):
        load_config(workshop_settings(namespacePrefix="x" * 40, participantNames="a" * 20, appEnvironments=["e" * 20]))


def test_the_workshop_stack_gives_every_participant_their_own_config_repo(hundred):
    config_map = next(c for c in objects(hundred, "ConfigMap", "cd4ml-gocd")
                      if c["metadata"]["name"].startswith("gocd-configure-"))
    repos = json.loads(config_map["data"]["desired.json"])["config_repos"]
    assert len(repos) == 100
    p055 = next(r for r in repos if r["id"] == "p055-diabetes-model")
    assert p055["material"]["attributes"]["url"] == (
        "http://gitea-http.cd4ml-git.svc.cluster.local:3000/p055/diabetes-model.git")  # on the kit's git server
    assert p055["material"]["attributes"]["username"] == "cd4ml-gocd"
    assert p055["rules"][0]["resource"] == "p055"


def test_grafana_logins_per_participant_from_the_mounted_secret(tmp_path):
    from services import GrafanaStandIn

    from infra.configure import grafana as configure_grafana
    from infra.configure.api import ApiError

    platform = build_platform(load_config(workshop_settings(participantNames="ada,grace")), "local")
    grafana_service = platform.services["grafana"]
    config_map, job = configure_objects(grafana_service)
    desired = json.loads(config_map["data"]["desired.json"])
    pod = job["spec"]["template"]["spec"]
    assert {"name": "secret-0", "secret": {"secretName": "grafana-participant-logins"}} in pod["volumes"]
    secret = next(s for s in grafana_service.secrets if s.name == "grafana-participant-logins")
    assert [(key, pw.id) for key, pw in secret.generated] == [("ada", "participant-ada"),
                                                              ("grace", "participant-grace")]
    # What the Job sees: one file per login in the mounted Secret.
    desired["password_dir"] = str(tmp_path)
    (tmp_path / "ada").write_text("ada-password-1")
    (tmp_path / "grace").write_text("grace-password-2")
    grafana = GrafanaStandIn(("admin", "admin-pw"), {}).start()
    try:
        api = JsonApi(grafana.url, "admin", "admin-pw")
        assert [(o.id, o.action) for o in configure_grafana.configure(api, desired, health_timeout=5)] == [
            ("ada", "created"), ("grace", "created")]
        assert grafana.users["grace"]["password"] == "grace-password-2" and grafana.users["grace"]["role"] == "Viewer"
        assert {o.action for o in configure_grafana.configure(api, desired, health_timeout=5)} == {"unchanged"}
        with pytest.raises(ApiError, match="grafana-admin Secret"):
            configure_grafana.configure(JsonApi(grafana.url, "admin", "wrong"), desired, health_timeout=5)
        (tmp_path / "ada").unlink()
        del grafana.users["ada"]
        with pytest.raises(ApiError, match="no password file .*ada"):
            configure_grafana.configure(api, desired, health_timeout=5)
    finally:
        grafana.stop()


def test_a_participants_resources_wait_for_their_own_namespaces_not_all_of_them():
    """Depending on the Namespaces component made every resource depend on every namespace (the SDK
    expands a component into its children): 200 dependencies on each of thousands of resources in a
    workshop of 100, a state file of tens of MB rewritten at every step of `up` (seen on the real engine:
    17 MB after 1,600 resources, most of the time going to writing it)."""
    from pulumi_harness import run_program

    monitor = run_program(workshop_settings(participants=20))
    namespace_urns = {r.urn for r in monitor.registrations if r.type == "kubernetes:core/v1:Namespace"}
    assert len(namespace_urns) > 40
    # One ConfigGroup per part holds objects in many namespaces (the policies of all of them): one
    # resource; every other resource waits for its own namespace only.
    counted = [r for r in monitor.registrations if r.type.startswith("kubernetes:")
               and r.type not in ("kubernetes:core/v1:Namespace", "kubernetes:yaml/v2:ConfigGroup")]
    assert counted and max(len(set(r.dependencies) & namespace_urns) for r in counted) == 1


CD4ML_WORKSHOP = Path("/work/.mirror/ThoughtWorksInc+cd4ml-workshop/repo")
"""The CD4ML workshop's repository, fetched on a development machine (never committed here)."""


def _agent_env(platform, tenant_name: str, mlflow_url: str, password: str) -> dict[str, str]:
    """What the tenant's elastic agents get from the plan (their profile's env), pointed at this server,
    with the login the agents' Secret holds."""
    settings = platform.services["gocd"].settings
    (profile,) = [p for p in settings.agent_profiles.values() if p.tenant == tenant_name]
    cluster_url = next(e for e in platform.wiring if e.provider.id == "mlflow").endpoint.url
    env = {k: (mlflow_url if v == cluster_url else v) for k, v in profile.env.items()}
    tenant = next(t for t in platform.tenants if t.name == tenant_name)
    return {**env, "MLFLOW_TRACKING_USERNAME": tenant.pipeline_login, "MLFLOW_TRACKING_PASSWORD": password}


def test_two_participants_train_gate_and_run_the_workshops_own_tracking_each_in_their_own_experiment(
        mlflow_server, unique_name, tmp_path):
    """Issue #18's proof, against a real MLflow configured by the kit: each participant's example train and
    gate, and the CD4ML workshop's unmodified `src/tracking.py`, run in exactly their agents' environment
    and land in their own experiment; one participant using the other's experiment or model name is refused."""
    import subprocess
    import sys

    ada, grace = unique_name("ada"), unique_name("grace")
    logins = {ada: "ada-password-123", grace: "grace-password-456"}
    config = workshop_settings(participantNames=f"{ada},{grace}")
    mlflow_server.configure_like_the_kit(config, logins)
    platform = build_platform(load_config(config), "local")
    example = Path(__file__).resolve().parents[1] / "examples" / "model-repo"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "CD4ML_"))}

    def run(env: dict[str, str], *command: str, cwd: Path = example) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, *command], cwd=cwd, capture_output=True, text=True, timeout=300,
                              env={**base, **env, "GO_PIPELINE_LABEL": "1", "PYTHONDONTWRITEBYTECODE": "1"})

    admin = JsonApi(mlflow_server.url, *MLFLOW_ADMIN)
    for name in (ada, grace):
        env = _agent_env(platform, name, mlflow_server.url, logins[name])
        assert env["MLFLOW_EXPERIMENT_NAME"] == env["TENANT"] == name
        assert env["MLFLOW_TRACKING_URL"] == env["MLFLOW_TRACKING_URI"] == mlflow_server.url
        out = tmp_path / name
        trained = run(env, "-m", "model.train", "--out", str(out))
        assert trained.returncode == 0, trained.stdout + trained.stderr
        record = json.loads((out / "model.json").read_text())
        assert record["model_name"] == f"{name}-diabetes-regressor"
        gated = run(env, "-m", "model.gate", "--model", str(out / "model.json"), "--min-r2", "0.1")
        assert gated.returncode == 0, gated.stdout + gated.stderr
        run_info = admin.call("GET", f"/api/2.0/mlflow/runs/get?run_id={record['run_id']}").body["run"]["info"]
        experiment = admin.call("GET", f"/api/2.0/mlflow/experiments/get-by-name?experiment_name={name}"
                                ).body["experiment"]
        assert run_info["experiment_id"] == experiment["experiment_id"]

    # Ada naming Grace's experiment, or Grace's model, is refused by MLflow.
    ada_env = _agent_env(platform, ada, mlflow_server.url, logins[ada])
    for override in ({"CD4ML_EXPERIMENT": grace}, {"CD4ML_MODEL_NAME": f"{grace}-diabetes-regressor"}):
        refused = run({**ada_env, **override}, "-m", "model.train", "--out", str(tmp_path / "refused"))
        assert refused.returncode != 0 and "403" in refused.stdout + refused.stderr, override

    if not CD4ML_WORKSHOP.exists():
        pytest.skip("the CD4ML workshop's repository is not fetched here (ThoughtWorksInc/cd4ml-workshop): "
                    "the example's half of the proof ran")
    workshop = tmp_path / "cd4ml-workshop" / "src"
    workshop.mkdir(parents=True)
    source = subprocess.run(["git", "--git-dir", str(CD4ML_WORKSHOP), "show", "HEAD:src/tracking.py"],
                            capture_output=True, text=True, check=True).stdout
    (workshop / "tracking.py").write_text(source)
    use = ("from tracking import track\n"
           "with track() as t:\n    t.log_params({'model': 'decision-tree'})\n    t.log_metrics({'nwrmsle': 0.5})\n")
    for name in (ada, grace):
        env = _agent_env(platform, name, mlflow_server.url, logins[name])
        result = run(env, "-c", use, cwd=workshop)
        assert result.returncode == 0, result.stdout + result.stderr
        experiment = admin.call("GET", f"/api/2.0/mlflow/experiments/get-by-name?experiment_name={name}"
                                ).body["experiment"]
        runs = admin.call("POST", "/api/2.0/mlflow/runs/search",
                          body={"experiment_ids": [experiment["experiment_id"]]}).body["runs"]
        assert any(r["data"].get("metrics") and r["data"]["metrics"][0]["key"] == "nwrmsle" for r in runs)


def test_every_participants_login_lives_where_a_restart_keeps_it():
    """A restarted pod loses its container's disk: each service's participants' logins live in a Secret the
    kit generates (stable across `up`s) or on a volume claim. GoCD: the password file, from a Secret.
    Elasticsearch (and Kibana through it): the file realm, from each participant's Secret. Grafana: its
    database on its claim (it was an emptyDir once). MLflow: its auth database under the claim's mount."""
    platform = build_platform(load_config(workshop_settings(participantNames="ada,grace")), "workshop")
    gocd = platform.services["gocd"]
    [password_file] = [s for s in gocd.secrets if s.name == "gocd-password-file"]
    assert [line[1] for line in password_file.password_files] == ["cd4ml-admin", "ada", "grace"]
    [es] = [o for o in platform.services["elasticsearch"].objects if o["kind"] == "Elasticsearch"]
    realm = {s["secretName"] for s in es["spec"]["auth"]["fileRealm"]}
    assert {"elasticsearch-user-ada", "elasticsearch-user-grace"} <= realm
    [grafana] = platform.services["grafana"].releases
    assert grafana.values["persistence"]["enabled"] is True and grafana.values["persistence"]["type"] == "pvc"
    [mlflow] = platform.services["mlflow"].releases
    mounts = {m["name"]: m["mountPath"] for m in mlflow.values["extraVolumeMounts"]}
    claims = {v["name"] for v in mlflow.values["extraVolumes"] if "persistentVolumeClaim" in v}
    on_claim = [path for name, path in mounts.items() if name in claims]
    assert any(mlflow.values["auth"]["sqliteFullPath"].startswith(path.rstrip("/") + "/") for path in on_claim)
