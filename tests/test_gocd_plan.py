"""GoCD ready with no clicks, as `cd4ml plan` shows it: the release keeps its plugin and mounts the
password file, the configure Job carries the desired configuration, the ML agents' environment is
the wiring graph, and charts/ml-app renders valid in every application environment."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml
from helm_python import Chart
from kube_objects import configure_desired, configure_objects
from typer.testing import CliRunner

from infra.cli.main import app
from infra.config import Profile, load_config
from infra.platform.apps import ML_APP_CHART_DIR
from infra.platform.build import build_platform
from infra.platform.gocd import elastic_agent_pod

runner = CliRunner()
REPO = "https://git.example.com/team/churn-model.git"


@pytest.fixture(scope="module")
def plan_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("plan")
    result = runner.invoke(app, ["plan", "--stack", "local", "--out", str(out), "--set", f'modelRepos=["{REPO}"]'])
    assert result.exit_code == 0, result.output
    return out


def files(plan_dir: Path, kind: str, sub: str = "objects") -> list[dict]:
    docs = [yaml.safe_load(p.read_text()) for p in sorted((plan_dir / sub).glob("*.yaml"))]
    return [d for d in docs if d["kind"] == kind]


def desired(plan_dir: Path) -> dict:
    config_map = next(c for c in files(plan_dir, "ConfigMap") if c["metadata"]["name"].startswith("gocd-configure-"))
    return json.loads(config_map["data"]["desired.json"])


def test_release_keeps_the_elastic_agent_plugin_and_mounts_the_password_file(plan_dir):
    values = yaml.safe_load((plan_dir / "releases" / "cd4ml-gocd__gocd.yaml").read_text())["values"]
    env = {e["name"]: e["value"] for e in values["server"]["env"]["extraEnvVars"]}
    assert env["GOCD_PLUGIN_INSTALL_kubernetes-elastic-agents"].endswith("kubernetes-elastic-agent-5.0.2-779.jar")
    assert values["server"]["shouldPreconfigure"] is False
    volume = values["server"]["persistence"]["extraVolumes"][0]
    mount = values["server"]["persistence"]["extraVolumeMounts"][0]
    assert volume["secret"]["secretName"] == "gocd-password-file" and mount["readOnly"] is True
    auth_path = {p["key"]: p["value"] for p in desired(plan_dir)["auth_config"]["properties"]}["PasswordFilePath"]
    assert auth_path == f"{mount['mountPath']}/password.properties"
    secret = next(s for s in files(plan_dir, "Secret") if s["metadata"]["name"] == "gocd-password-file")
    # Offline, the password file is only named: its content is a hash `up` computes from the generated password.
    assert secret["metadata"]["annotations"]["cd4ml.dev/generated-keys"] == "password.properties"
    assert "stringData" not in secret or "password.properties" not in secret["stringData"]


def test_agent_profile_environment_is_the_wiring_graph(plan_dir):
    document = json.loads((plan_dir / "platform.json").read_text())
    edges = {e["to"]: e for e in document["wiring"] if e["from"] == "gocd-agents"}
    pod = elastic_agent_pod(desired(plan_dir))
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in pod["spec"]["containers"][0]["env"] if "valueFrom" in e}
    assert env["MLFLOW_TRACKING_URI"] == edges["mlflow"]["url"]
    # The tenant's MLflow login, from the Secret the edge names (in the agents' own namespace).
    assert edges["mlflow"]["credentials_secret"] == "cd4ml-gocd/mlflow-login-cd4ml"
    assert refs == {"MLFLOW_TRACKING_USERNAME": {"name": "mlflow-login-cd4ml", "key": "username"},
                    "MLFLOW_TRACKING_PASSWORD": {"name": "mlflow-login-cd4ml", "key": "password"}}
    assert env["CD4ML_MLFLOW_LOGIN_SECRET"] == "mlflow-login"
    assert (env["FLUENTD_HOST"], int(env["FLUENTD_PORT"])) == (urlparse(edges["fluentd"]["url"]).hostname,
                                                               edges["fluentd"]["port"])
    deploy_targets = sorted(e["to_namespace"] for e in document["wiring"]
                            if e["from"] == "gocd-agents" and e["kind"] == "deploy")
    assert sorted(env["CD4ML_DEPLOY_NAMESPACES"].split(",")) == deploy_targets
    assert (env["CD4ML_NAMESPACE_STAGING"], env["CD4ML_NAMESPACE_PRODUCTION"]) == ("cd4ml-staging", "cd4ml-production")
    assert pod["spec"]["serviceAccountName"] == "gocd-agent"
    # The same pod, placeholders filled, is in embedded/ — schema-validated like every object.
    [started] = files(plan_dir, "Pod", "embedded")
    assert started["spec"]["containers"][0]["env"] == pod["spec"]["containers"][0]["env"]
    assert "{{" not in json.dumps(started)
    gocd = next(s for s in document["services"] if s["name"] == "gocd")
    assert gocd["settings"]["elastic_profiles"] == ["cd4ml-ml"]
    assert gocd["settings"]["config_repos"] == [{"id": "churn-model", "url": REPO}]
    assert gocd["settings"]["agent_image"] in document["images"]


def test_agents_have_no_cluster_wide_rights_from_the_kit(plan_dir):
    """The only cluster-wide rights are the server's list of nodes and events, which the elastic-agent
    plugin reads cluster-wide; its pods are a Role in GoCD's namespace (kubernetes-elastic-agents
    v5.0.2-779 docs/configure_cluster_profile.md l.30-39), not the chart's `*` on pods everywhere."""
    assert not files(plan_dir, "ClusterRoleBinding")  # the chart binds the server to roleRef
    (cluster_role,) = files(plan_dir, "ClusterRole")
    assert cluster_role["rules"] == [{"apiGroups": [""], "resources": ["nodes", "events"], "verbs": ["list"]}]
    pods = next(r for r in files(plan_dir, "Role") if r["metadata"]["name"] == "gocd-elastic-agent-pods")
    assert pods["metadata"]["namespace"] == "cd4ml-gocd"
    binding = next(b for b in files(plan_dir, "RoleBinding") if b["metadata"]["name"] == "gocd-elastic-agent-pods")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "gocd", "namespace": "cd4ml-gocd"}]
    account = next(a for a in files(plan_dir, "ServiceAccount") if a["metadata"]["name"] == "gocd-agent")
    assert account["automountServiceAccountToken"] is False  # only the agent pods mount it, explicitly


def test_configure_job_is_pinned_awaited_and_keeps_the_password_out(plan_dir):
    [job] = [j for j in files(plan_dir, "Job") if j["metadata"]["name"].startswith("gocd-configure-")]
    assert job["metadata"]["annotations"]["pulumi.com/waitFor"] == "condition=Complete"
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "docker.io/library/python:3.13.7-slim"
    env = {e["name"]: e for e in container["env"]}
    assert not any("valueFrom" in e for e in container["env"]), "credentials travel as files, not env vars"
    assert env["GOCD_PASSWORD_FILE"]["value"] == "/etc/cd4ml/credentials/gocd-admin/password"
    [volume] = [v for v in job["spec"]["template"]["spec"]["volumes"] if v.get("secret", {}).get("secretName")
                == "gocd-admin"]
    assert volume["secret"]["items"] == [{"key": "password", "path": "password"},
                                         {"key": "username", "path": "username"}]
    assert {"name": volume["name"], "mountPath": "/etc/cd4ml/credentials/gocd-admin", "readOnly": True} in \
        container["volumeMounts"]
    assert env["GOCD_URL"]["value"] == "http://gocd-server.cd4ml-gocd.svc.cluster.local:8153/go"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_same_configuration_same_job_and_a_change_a_new_one():
    def job_name(config: dict) -> str:
        _, job = configure_objects(build_platform(load_config(config), "local").services["gocd"])
        return job["metadata"]["name"]

    assert job_name({}) == job_name({})
    assert job_name({}) != job_name({"cd4ml:modelRepos": [REPO]})


def test_ml_app_renders_valid_with_the_apps_wiring(plan_dir):
    document = json.loads((plan_dir / "platform.json").read_text())
    deployments = files(plan_dir, "Deployment", "deploys")
    assert {d["metadata"]["namespace"] for d in deployments} == {"cd4ml-staging", "cd4ml-production"}
    for deployment in deployments:
        namespace = deployment["metadata"]["namespace"]
        edges = {e["to"]: e for e in document["wiring"] if e["from_namespace"] == namespace and e["kind"] == "connect"}
        pod = deployment["spec"]["template"]["spec"]
        [container] = pod["containers"]
        env = {e["name"]: e.get("value") or e["valueFrom"]["secretKeyRef"] for e in container["env"]}
        assert env["MLFLOW_TRACKING_URI"] == edges["mlflow"]["url"]
        assert f"{namespace}/{env['MLFLOW_TRACKING_PASSWORD']['name']}" == edges["mlflow"]["credentials_secret"]
        assert env["FLUENTD_HOST"] == urlparse(edges["fluentd"]["url"]).hostname
        assert {"MODEL_VERSION", "PIPELINE_LABEL", "MODEL_URI"} <= set(env)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["resources"]["limits"] and container["resources"]["requests"]
        assert {"readinessProbe", "livenessProbe", "startupProbe"} <= set(container)


def test_ml_app_refuses_a_deploy_without_a_model():
    with Chart.load(str(ML_APP_CHART_DIR)) as chart, pytest.raises(Exception, match="set model.uri"):
        chart.render(values={"model": {"name": "m", "version": "1"}, "environment": "staging",
                             "mlflow": {"trackingUri": "http://mlflow"}, "source": {"serve.py": "x"}},
                     name="model-service", namespace="staging", is_install=True)


def test_the_example_pipeline_uses_what_the_kit_gives_its_agents():
    """The example model repository is written against the agent profile: every CD4ML_* variable its
    deploy step needs is in the profile's environment, and every job names the profile."""
    example = Path(__file__).resolve().parents[1] / "examples" / "model-repo"
    service = build_platform(load_config({}), "local").services["gocd"]
    pod = elastic_agent_pod(configure_desired(service))
    provided = {e["name"] for e in pod["spec"]["containers"][0]["env"]}
    script = (example / "deploy.sh").read_text()
    optional = {"CD4ML_TENANT", "CD4ML_MODEL_JSON", "CD4ML_NAMESPACE_", "CD4ML_ABANDONED_AFTER"}
    used = set(re.findall(r"\b(CD4ML_[A-Z_]+|MLFLOW_TRACKING_URI|FLUENTD_HOST|FLUENTD_PORT)\b", script)) - optional
    assert used and used <= provided, used - provided
    pipeline = yaml.safe_load((example / "ci.gocd.yaml").read_text())
    jobs = [job for stage in pipeline["pipelines"]["diabetes-model"]["stages"] for s in stage.values()
            for job in s["jobs"].values()]
    assert jobs and {job["elastic_profile_id"] for job in jobs} == {"cd4ml-ml"}


@pytest.mark.parametrize("profile", list(Profile))
def test_the_servers_limit_holds_its_jvm_and_its_first_start_is_not_killed(profile):
    """-Xmx alone is not what GoCD's JVM takes: its own MaxMetaspaceSize=400m, the code cache and native
    memory come on top (gocd 26.1.0 InstallerTypeServer.groovy l.59-66); the limit used to be 1 GiB for a
    512 MiB heap. The chart's 240 s liveness budget is raised for a first start on one CPU."""
    from infra.platform import gocd

    heap = gocd.SERVER_HEAP_MI[profile]
    assert gocd.SERVER_SIZES[profile].memory_limit_mi >= gocd.jvm_footprint_mi(heap) > heap + 400
    check = gocd.SERVER_HEALTH_CHECK[profile]
    assert check["initialDelaySeconds"] + check["periodSeconds"] * check["failureThreshold"] >= 300
    values = build_platform(load_config({"cd4ml:profile": profile.value}), "local").services["gocd"].releases[0].values
    assert values["server"]["env"]["goServerJvmOpts"] == f"-Xmx{heap}m"
    assert values["server"]["healthCheck"] == check
