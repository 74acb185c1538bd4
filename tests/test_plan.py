"""`cd4ml plan`: the desired platform written offline, schema-valid, with no secret in it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from infra.cli.main import app
from infra.validate import SUPPORTED_KUBERNETES, InvalidObject, validate_objects

runner = CliRunner()


@pytest.fixture(scope="module")
def plan_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("plan")
    result = runner.invoke(app, ["plan", "--stack", "local", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def load_objects(plan_dir: Path) -> list[dict]:
    return [yaml.safe_load(p.read_text()) for p in sorted((plan_dir / "objects").glob("*.yaml"))]


def test_platform_json_has_the_promised_shape(plan_dir):
    document = json.loads((plan_dir / "platform.json").read_text())
    assert document["stack"] == "local"
    assert [s["name"] for s in document["services"]] == ["gocd", "elasticsearch", "kibana", "fluentd", "grafana",
                                                          "mlflow", "gitea"]
    for service in document["services"]:
        assert {"name", "namespace", "url", "credentials_secret"} <= set(service)
    for edge in document["wiring"]:
        assert {"from", "to", "url", "credentials_secret"} <= set(edge)
    assert document["tenants"] == []
    assert set(document["requests"]) == {"cpu_millicores", "memory_mib"}
    assert document["requests"]["memory_mib"] <= 4096 and document["requests"]["cpu_millicores"] <= 2000


def test_wiring_urls_are_the_services_urls(plan_dir):
    document = json.loads((plan_dir / "platform.json").read_text())
    urls = {s["name"]: s["url"] for s in document["services"]}
    connects = [e for e in document["wiring"] if e["url"]]
    assert len(connects) >= 7
    for edge in connects:
        assert edge["url"] == urls[edge["to"]]
    grafana_es = next(e for e in document["wiring"] if (e["from"], e["to"]) == ("grafana", "elasticsearch"))
    assert grafana_es["credentials_secret"] == "cd4ml-monitoring/elasticsearch-user-grafana"


def test_every_object_is_its_own_file_and_schema_valid(plan_dir):
    objects = load_objects(plan_dir)
    kinds = {o["kind"] for o in objects}
    assert {"Namespace", "Secret", "Elasticsearch", "Kibana", "ServiceAccount", "PersistentVolumeClaim",
            "Role", "RoleBinding", "ConfigMap", "ResourceQuota", "LimitRange"} <= kinds
    assert validate_objects(objects) >= 2 * (len(objects) - 2)


def test_validation_catches_a_misspelt_field():
    broken = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "y"},
              "dataa": {"k": "v"}}
    with pytest.raises(InvalidObject, match="ConfigMap y/x @ Kubernetes"):
        validate_objects([broken], SUPPORTED_KUBERNETES)


def test_releases_name_repo_chart_version_values(plan_dir):
    releases = [yaml.safe_load(p.read_text()) for p in (plan_dir / "releases").glob("*.yaml")]
    assert {r["chart"] for r in releases} == {"gocd", "eck-operator", "fluentd", "grafana", "mlflow", "gitea"}
    for release in releases:
        assert set(release) == {"name", "namespace", "repo", "chart", "version", "values"}
        assert release["repo"].startswith("https://")


def test_no_secret_value_in_any_file(plan_dir):
    secrets = [o for o in load_objects(plan_dir) if o["kind"] == "Secret"]
    assert len(secrets) >= 6
    generated = 0
    for secret in secrets:
        keys = set(secret.get("stringData", {}))
        assert not keys & {"password", "admin-password"}, secret["metadata"]["name"]
        named = secret["metadata"].get("annotations", {}).get("cd4ml.dev/generated-keys")
        generated += bool(named)
    # 3 realm users, grafana's copy of its user, grafana admin, gocd admin and its password file; roles.yml has
    # none; MLflow's admin, its tenant logins, and the tenant's login for the agents and each app namespace;
    # Gitea's admin, its logins (the reader's among them) and GoCD's copy of the reader's
    assert generated == 15
    text = "\n".join(p.read_text() for p in plan_dir.rglob("*") if p.is_file())
    assert "mock-password" not in text and "changeme" not in text


def test_set_overrides_one_run(tmp_path):
    result = runner.invoke(app, ["plan", "--out", str(tmp_path), "--set", "services=gocd,mlflow",
                                 "--set", "appEnvironments=dev"])
    assert result.exit_code == 0, result.output
    document = json.loads((tmp_path / "platform.json").read_text())
    assert [s["name"] for s in document["services"]] == ["gocd", "mlflow"]
    assert "cd4ml-dev" in document["namespaces"]
    assert not list((tmp_path / "releases").glob("*grafana*"))


def test_a_second_plan_leaves_no_stale_files(tmp_path):
    assert runner.invoke(app, ["plan", "--out", str(tmp_path)]).exit_code == 0
    assert runner.invoke(app, ["plan", "--out", str(tmp_path), "--set", "services=gocd"]).exit_code == 0
    assert not list((tmp_path / "objects").glob("*elasticsearch*"))
    assert not list((tmp_path / "deploys").glob("*"))  # no MLflow, no model service to preview


def test_bad_config_exits_1_with_the_key_and_no_traceback(tmp_path):
    result = runner.invoke(app, ["plan", "--out", str(tmp_path), "--set", "profile=huge"])
    assert result.exit_code == 1
    assert "cd4ml:profile = 'huge': must be one of 'laptop' or 'cluster'" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "platform.json").exists()


def test_unknown_stack_exits_1(tmp_path):
    result = runner.invoke(app, ["plan", "--stack", "nope", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "stacks: cluster, eks, gke, local" in result.output


def test_plan_summary_lists_every_service(tmp_path):
    result = runner.invoke(app, ["plan", "--out", str(tmp_path)])
    assert "6 Helm releases" in result.output
    for url in ("http://gocd-server.cd4ml-gocd.svc.cluster.local:8153/go",
                "http://mlflow.cd4ml-mlflow.svc.cluster.local:5000"):
        assert url in result.output


def test_kit_chart_renders_deploy_rights_for_the_agents(plan_dir):
    apps = ("cd4ml-staging", "cd4ml-production")
    bindings = [o for o in load_objects(plan_dir) if o["kind"] == "RoleBinding" and o["metadata"]["namespace"] in apps]
    assert {b["metadata"]["namespace"] for b in bindings} == set(apps)
    for binding in bindings:
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "gocd-agent", "namespace": "cd4ml-gocd"}]
    roles = [o for o in load_objects(plan_dir) if o["kind"] == "Role"]
    # Beside the deploy rights: only the GoCD server's own, on pods in its namespace.
    assert {(r["metadata"]["namespace"], r["metadata"]["name"]) for r in roles if r["metadata"]["namespace"] not in apps} \
        == {("cd4ml-gocd", "gocd-elastic-agent-pods")}


def test_project_file_config_matches_the_model():
    from infra.cli.project_file import project_document

    on_disk = yaml.safe_load((Path(__file__).resolve().parents[1] / "Pulumi.yaml").read_text())
    assert on_disk == project_document(), "run `cd4ml sync-project-config` after changing infra/config/model.py"
    assert on_disk["stackConfigDir"] == "stacks"


def test_readme_port_forwards_are_the_ones_links_point_to():
    """Dashboard links and handouts use infra/platform/access.py; the README must forward the same ports."""
    from infra.config import SERVICE_NAMES, load_config
    from infra.platform.access import LOCAL_PORTS, port_forward_command
    from infra.platform.build import build_platform

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    services = build_platform(load_config({"cd4ml:services": list(SERVICE_NAMES)}), "local").services
    for name in LOCAL_PORTS:
        assert port_forward_command(name, services[name].endpoint) in readme, name
