"""Participants' agents run only their own pipelines: the kit's ValidatingAdmissionPolicy evaluated by a
real kube-apiserver (the envtest binaries, tests/envtest/controlplane.py: etcd and kube-apiserver v1.36
with its default admission plugins), against agent pods made as the elastic-agent plugin makes them.

The plugin (gocd/kubernetes-elastic-agents v5.0.2-779, KubernetesInstanceFactory.java) starts from the
profile's PodConfiguration YAML (l.227-243), adds every profile property as an annotation and the job as
Gson JSON in `Elastic-Agent-Job-Identifier` (l.138-143; model/JobIdentifier.java l.28-54), and the labels
`Elastic-Agent-Created-By`, `Elastic-Agent-Job-Id`, `kind` and, when the job is in a GoCD environment,
`Elastic-Agent-Environment-Name` (l.199-212, put after the YAML's own: the plugin's win)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from stack_settings import workshop

from infra.config import load_config
from infra.platform.build import build_platform
from infra.platform.gocd import (
    agent_admission,
    as_started,
    elastic_agent_pod,
    plugin_marks,
)
from infra.platform.layout import Namespaces
from infra.polling import Observation, poll_until
from infra.render import kit_objects

sys.path.insert(0, str(Path(__file__).parent / "envtest"))
from controlplane import ControlPlane, missing_binaries  # noqa: E402

PARTICIPANTS = ("ada", "grace")


@pytest.fixture(scope="module")
def platform():
    return build_platform(load_config(workshop(participantNames=",".join(PARTICIPANTS), modelRepos=[
        "https://github.com/your-org/cd4ml-workshop-{participant}.git"])), "workshop")


def test_a_policy_only_where_there_are_participants(platform):
    team = build_platform(load_config({}), "local")
    assert agent_admission(Namespaces.from_config(load_config({})), team.tenants) == ()
    policy, binding = [o for o in platform.services["gocd"].objects if o["kind"].startswith("ValidatingAdmission")]
    assert binding["spec"]["policyName"] == policy["metadata"]["name"] and binding["spec"]["validationActions"] == [
        "Deny"]
    assert all(f"'gocd-agent-{name}': '{name}'" in policy["spec"]["matchConditions"][0]["expression"]
               for name in PARTICIPANTS)


def test_each_participants_config_repo_may_refer_only_to_their_own_environment(platform):
    """And a repository the workshop shares (no {participant} in its URL) to none: a second reading found
    that its 'environment *' let whoever pushes to it run pipelines as any participant."""
    from kube_objects import configure_desired

    shared = build_platform(load_config(workshop(participantNames=",".join(PARTICIPANTS), modelRepos=[
        "https://github.com/your-org/cd4ml-workshop-{participant}.git", "https://github.com/your-org/demo.git"])),
        "workshop")
    rules = {r["material"]["attributes"]["url"]: r["rules"]
             for r in configure_desired(shared.services["gocd"])["config_repos"]}
    assert [rule["type"] for rule in rules["https://github.com/your-org/demo.git"]] == ["pipeline_group"]
    team = configure_desired(build_platform(load_config({"cd4ml:modelRepos": ["https://github.com/t/m.git"]}),
                                            "local").services["gocd"])["config_repos"]
    assert {rule["type"]: rule["resource"] for rule in team[0]["rules"]} == {"pipeline_group": "*",
                                                                           "environment": "*"}
    repos = configure_desired(platform.services["gocd"])["config_repos"]
    environments = {repo["material"]["attributes"]["url"]: [rule["resource"] for rule in repo["rules"]
                                                            if rule["type"] == "environment"] for repo in repos}
    assert environments == {"https://github.com/your-org/cd4ml-workshop-ada.git": ["ada"],
                            "https://github.com/your-org/cd4ml-workshop-grace.git": ["grace"]}


@pytest.fixture(scope="module")
def api_server(tmp_path_factory, platform):
    missing = missing_binaries(("etcd", "kube-apiserver"))
    if missing:
        pytest.skip(f"envtest binaries not built ({', '.join(missing)}): `make envtest` builds them (never in CI)")
    plane = ControlPlane(root=tmp_path_factory.mktemp("plane")).start()
    try:
        gocd = platform.services['gocd'].namespace
        wanted = [o for o in kit_objects(platform)
                  if (o["kind"] == "Namespace" and o["metadata"]["name"] == gocd)
                  or (o["kind"] == "ServiceAccount" and o["metadata"].get("namespace") == gocd)
                  or o["kind"].startswith("ValidatingAdmissionPolicy")]
        assert len([o for o in wanted if o["kind"].startswith("ValidatingAdmissionPolicy")]) == 2
        plane.apply([yaml.safe_dump(o) for o in wanted])
        yield plane
    finally:
        plane.destroy()


def plugin_pod(platform, profile_owner: str, pipeline: str, environment: str | None) -> dict:
    """The pod the plugin would create for a job of `pipeline` (in `environment`) on `profile_owner`'s
    elastic profile, exactly as the kit configures that profile."""
    from kube_objects import configure_desired

    desired = configure_desired(platform.services["gocd"])
    profile_id = f"cd4ml-ml-{profile_owner}"
    profile = next(p for p in desired["elastic_profiles"] if p["id"] == profile_id)
    labels, annotations = plugin_marks(pipeline, environment, job_id=7)
    properties = {p["key"]: p["value"] for p in profile["properties"]}  # each one an annotation too
    return as_started(elastic_agent_pod(desired, profile_id), platform.services["gocd"].namespace,
                      (labels, {**properties, **annotations}))


def server_says(plane, pod: dict) -> str:
    """Create the pod on the API server (dry run: admitted, not stored); '' if admitted, else the refusal."""
    done = subprocess.run(["kubectl", "--kubeconfig", str(plane.kubeconfig), "create", "--dry-run=server",
                           "-o", "name", "-f", "-"], input=json.dumps(pod), capture_output=True, text=True)
    return "" if done.returncode == 0 else done.stderr.strip()


@pytest.fixture(scope="module")
def admitting(api_server, platform):
    """The policy is enforced once the API server has compiled it: wait for the first refusal."""
    stray = plugin_pod(platform, "ada", "grace-model", "grace")
    poll_until(lambda: Observation(bool(said := server_says(api_server, stray)), said, said or "admitted"),
               what="the API server to enforce the agents' admission policy", timeout=30)
    return api_server


def test_a_participants_own_pipeline_runs_on_their_agents(admitting, platform):
    assert server_says(admitting, plugin_pod(platform, "ada", "ada-diabetes-model", "ada")) == ""
    assert server_says(admitting, plugin_pod(platform, "grace", "grace-diabetes-model", "grace")) == ""


def test_naming_another_participants_profile_is_refused_with_a_reason(admitting, platform):
    said = server_says(admitting, plugin_pod(platform, "ada", "grace-diabetes-model", "grace"))
    assert "agents-run-their-own-pipelines" in said
    assert "the agents of ada (elastic profile cd4ml-ml-ada) run only jobs of pipelines in the GoCD environment " \
           "ada, and this job is in grace" in said


def test_a_pipeline_outside_any_environment_or_with_anothers_name_is_refused(admitting, platform):
    assert "this job is in none" in server_says(admitting, plugin_pod(platform, "ada", "ada-model", None))
    # Only ada's repository may put pipelines in her environment; a name that is not hers still is refused.
    assert "run only pipelines named ada-..." in server_says(admitting,
                                                             plugin_pod(platform, "ada", "grace-model", "ada"))


def test_pods_of_no_participant_are_not_the_policys_business(admitting, platform):
    pod = plugin_pod(platform, "ada", "anything", None)
    pod["spec"]["serviceAccountName"] = "default"
    assert server_says(admitting, pod) == ""


def test_the_ready_repositories_pipelines_run_on_their_owners_agents_only(admitting, platform):
    """What the git server is seeded with (and `cd4ml repos` writes) for each participant is what the policy
    admits, end to end."""
    from infra.platform.example_repo import EXAMPLE, PIPELINE_FILE, tenant_pipeline

    written = {}
    for tenant in platform.tenants:
        config = yaml.safe_load(tenant_pipeline((EXAMPLE / PIPELINE_FILE).read_text(), tenant))
        [(environment, listed)] = config["environments"].items()
        written[tenant.name] = (listed["pipelines"][0], environment)
    for name, (pipeline, environment) in written.items():
        assert server_says(admitting, plugin_pod(platform, name, pipeline, environment)) == ""
    graces_pipeline, graces_environment = written["grace"]
    assert "run only jobs of pipelines in the GoCD environment ada" in server_says(
        admitting, plugin_pod(platform, "ada", graces_pipeline, graces_environment))


def test_names_differing_only_in_case_are_the_owners_as_in_gocd(admitting, platform):
    """GoCD lets ada's repository name her environment 'Ada' (its rules ignore case): her job is hers."""
    assert server_says(admitting, plugin_pod(platform, "ada", "Ada-model", "Ada")) == ""
    assert "this job is in Grace" in server_says(admitting, plugin_pod(platform, "ada", "ada-model", "Grace"))


def smoke_context(plane, platform):
    from infra.document import PlatformDocument
    from infra.smoke.cluster import KubeCluster, KubeTarget, load_apis
    from infra.smoke.core import SmokeContext
    from infra.smoke.runner import declared_pods

    document = PlatformDocument.of(platform)
    apis = load_apis(KubeTarget(kubeconfig=yaml.safe_load(plane.kubeconfig.read_text()), context="envtest"))
    return SmokeContext(platform=document, targets={}, cluster=KubeCluster(apis), api_only=True,
                        declared_pods=declared_pods(platform, document))


def test_the_smoke_checks_agrees_with_the_api_server_and_the_kits_own_pods_are_admitted(admitting, platform):
    """`gocd.agents-isolation` and `platform.admission` as `cd4ml smoke --api-only` runs them on a workshop:
    the kit's declared agent pod carries its own job's marks, or the policy would refuse it."""
    from infra.smoke.checks.gocd import agents_isolation

    context = smoke_context(admitting, platform)
    assert agents_isolation(context) == "ada's agents take ada's jobs and refuse grace's"
    # What `platform.admission` dry-runs for the agents (the other namespaces are not on this API server).
    [agent] = [p for p in context.declared_pods if p["spec"].get("serviceAccountName") == "gocd-agent-ada"]
    assert context.cluster.refusal(agent) is None


def test_the_smoke_check_fails_when_the_policy_is_gone(api_server, platform):
    """Last: the binding deleted by hand, the check names what is missing."""
    from infra.smoke.checks.gocd import agents_isolation
    from infra.smoke.core import CheckFailed

    name = next(o for o in platform.services["gocd"].objects
                if o["kind"] == "ValidatingAdmissionPolicyBinding")["metadata"]["name"]
    subprocess.run(["kubectl", "--kubeconfig", str(api_server.kubeconfig), "delete",
                    "validatingadmissionpolicybinding", name], check=True, capture_output=True)
    context = smoke_context(api_server, platform)
    poll_until(lambda: Observation(not server_says(api_server, plugin_pod(platform, "ada", "grace-x", "grace")),
                                   None, "still refused"), what="the policy to stop applying", timeout=30)
    with pytest.raises(CheckFailed) as failed:
        agents_isolation(context)
    assert "grace's pipelines could run as gocd-agent-ada" in str(failed.value.diagnosis)
