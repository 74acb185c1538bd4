"""GoCD: the server answers its health API and refuses strangers; the kit's configuration (elastic
agent profiles carrying the wiring edges, one config repository per model repository) is in place;
and its agents may deploy into the application namespaces and nowhere else."""

from __future__ import annotations

import copy
from typing import Any

import yaml

from infra.document import EdgeEntry
from infra.platform.gocd import SMOKE_PIPELINE, GoCDSettings, plugin_marks, policy_name
from infra.platform.network import allow_to
from infra.smoke.core import Check, CheckFailed, Diagnosis, Skip, SmokeContext
from infra.smoke.http import call, json_of
from infra.upstream.gocd import CLUSTER_PROFILES, CONFIG_REPOS, ELASTIC_PROFILES, HEALTH, url_for_display

INTERNAL_CONFIG_REPOS = "/api/internal/config_repos"
"""Where GoCD reports parse results of config repositories (an internal API of its UI, v4 shape)."""
CONFIGURE_HINT = ("the configure Job did not finish: kubectl -n {namespace} logs -l "
                  "app.kubernetes.io/component=gocd-configure")
RECONFIGURE_HINT = ("kubectl -n {namespace} delete job -l app.kubernetes.io/component=gocd-configure, then "
                    "`cd4ml up` (it refreshes, sees the Job gone and runs it again)")


def server_health(context: SmokeContext) -> str:
    gocd = context.target("gocd")
    expect = 'HTTP 200 {"health": "OK"}'
    # While it starts, GoCD answers 503 to every request (GoServerLoadingIndicationHandler.java l.65-81 at
    # 26.1.0); once up, health is always 200 {"health": "OK"} (ServerHealthController.java l.56-58).
    answer = call(context, gocd, "GET", HEALTH.path, expect=expect, anonymous=True, statuses=(200, 503),
                  headers={"Accept": HEALTH.accept})
    if answer.status_code == 503:
        raise CheckFailed(Diagnosis("gocd", f"{gocd.url}{HEALTH.path}", expect, f"HTTP 503: {answer.text[:120]}",
                                    "the server is still starting (plugins, database migration): wait and rerun"))
    body = json_of(answer, gocd, expect)
    if body.get("health") != "OK":
        raise CheckFailed(Diagnosis("gocd", f"{gocd.url}{HEALTH.path}", expect, str(body),
                                    "GoCD answered health without OK: read the server's log"))
    return "server healthy"


def read_as_admin(context: SmokeContext, path: str, accept: str, expect: str) -> Any:
    """An admin read with the kit's login; if GoCD refuses the login because its security is off
    (it rejects credentials then), read anonymously: that failure is gocd.security's to report."""
    gocd = context.target("gocd")
    answer = call(context, gocd, "GET", path, expect=expect, statuses=(200, 401), headers={"Accept": accept})
    if answer.status_code == 401:
        answer = call(context, gocd, "GET", path, expect=expect, anonymous=True, headers={"Accept": accept})
    return json_of(answer, gocd, expect)


def _settings(context: SmokeContext) -> tuple[GoCDSettings, str]:
    """GoCD's settings and its namespace (what the hints name)."""
    return context.settings(GoCDSettings), context.service("gocd").namespace


def security_on(context: SmokeContext) -> str:
    """No anonymous admin: an admin API refuses a caller without a login, and accepts the kit's."""
    gocd, (settings, namespace) = context.target("gocd"), _settings(context)
    path = f"{CLUSTER_PROFILES.path}/{settings.cluster_profile}"
    answer = call(context, gocd, "GET", path, expect="HTTP 401 for an anonymous caller", statuses=(200, 401, 404),
                  anonymous=True, headers={"Accept": CLUSTER_PROFILES.accept})
    if answer.status_code != 401:
        raise CheckFailed(Diagnosis(
            "gocd", f"GET {gocd.url}{path} without a login", "HTTP 401 (security on)",
            f"HTTP {answer.status_code}: anyone may administer GoCD",
            "the password-file authorization was never configured: " + CONFIGURE_HINT.format(namespace=namespace)))
    if gocd.auth is None:
        raise Skip("no GoCD login given (CD4ML_GOCD_USERNAME/CD4ML_GOCD_PASSWORD): only the refusal was checked")
    call(context, gocd, "GET", path, expect="HTTP 200 for the kit's admin", headers={"Accept": CLUSTER_PROFILES.accept})
    return f"anonymous callers refused; {gocd.username} is admin"


def elastic_agent_profiles(context: SmokeContext) -> str:
    """The cluster profile and each tenant's agent profile exist, and each profile's pods get exactly
    the environment the model gives them (the endpoints of the agents' wiring edges among it)."""
    gocd, (settings, namespace) = context.target("gocd"), _settings(context)
    cluster = f"{CLUSTER_PROFILES.path}/{settings.cluster_profile}"
    read_as_admin(context, cluster, CLUSTER_PROFILES.accept, "the kit's cluster profile (HTTP 200)")
    for profile_id, agents in settings.agent_profiles.items():
        expected = agents.env
        path = f"{ELASTIC_PROFILES.path}/{profile_id}"
        expect = f"elastic agent profile {profile_id} whose pods get {sorted(expected)}"
        profile = read_as_admin(context, path, ELASTIC_PROFILES.accept, expect)
        properties = {p.get("key"): p.get("value") for p in profile.get("properties", [])}
        pod = yaml.safe_load(properties.get("PodConfiguration") or "{}") or {}
        containers = pod.get("spec", {}).get("containers") or [{}]
        env = {e["name"]: e.get("value") for e in containers[0].get("env", [])}
        wrong = {name: env.get(name) for name, value in expected.items() if env.get(name) != value}
        if wrong:
            raise CheckFailed(Diagnosis(
                "gocd", f"GET {gocd.url}{path}", f"agent env {expected}", f"agent env differs: {wrong}",
                "the profile was edited by hand or configured from another stack: "
                + RECONFIGURE_HINT.format(namespace=namespace)))
        if pod.get("spec", {}).get("serviceAccountName") != agents.service_account:
            raise CheckFailed(Diagnosis(
                "gocd", f"GET {gocd.url}{path}", f"pods run as ServiceAccount {agents.service_account}",
                f"serviceAccountName {pod.get('spec', {}).get('serviceAccountName')!r}",
                "ML jobs could not deploy: " + RECONFIGURE_HINT.format(namespace=namespace)))
    return f"{len(settings.agent_profiles)} profile(s) carry their tenant's wiring edges"


def config_repositories(context: SmokeContext) -> str:
    """One config repository per model repository, each parsed without error by the YAML plugin."""
    gocd, (settings, namespace) = context.target("gocd"), _settings(context)
    wanted = settings.config_repos
    if not wanted:
        raise Skip("the stack names no modelRepos")
    expect = f"config repositories {[r.id for r in wanted]} parsed without error"
    listing = read_as_admin(context, INTERNAL_CONFIG_REPOS, CONFIG_REPOS.accept, expect)
    present = {r.get("id"): r for r in listing.get("_embedded", {}).get("config_repos", [])}
    for repo in wanted:
        found = present.get(repo.id)
        if found is None or found.get("material", {}).get("attributes", {}).get("url") != url_for_display(repo.url):
            raise CheckFailed(Diagnosis(
                "gocd", f"GET {gocd.url}{INTERNAL_CONFIG_REPOS}", f"config repository {repo.id} for {repo.url}",
                "missing" if found is None else f"it points at {found['material']['attributes'].get('url')}",
                CONFIGURE_HINT.format(namespace=namespace)))
        error = (found.get("parse_info") or {}).get("error")
        if error:
            raise CheckFailed(Diagnosis(
                "gocd", f"config repository {repo.id} ({repo.url})", "its *.gocd.yaml parsed",
                f"parse error: {error[:300]}",
                "the repository is unreachable from the GoCD server (URL, credentials, egress) or its "
                "*.gocd.yaml is invalid; GoCD shows the same error on its Config Repositories page"))
    return f"{len(wanted)} config repositories present, none with a parse error"


def agents_deploy_rights(context: SmokeContext) -> str:
    """The agents may create Deployments in every application namespace and nowhere else the kit owns
    (asked of the API server as a SubjectAccessReview: nothing is created)."""
    tenant = context.sample_tenant
    deploy_edges = [e for e in context.platform.wiring if e.consumer == tenant.agents_node and e.kind == "deploy"]
    if not deploy_edges:
        raise Skip("the platform has no application namespaces to deploy into")
    account = (deploy_edges[0].consumer_namespace, tenant.service_account)
    allowed_in = {e.provider_namespace for e in deploy_edges}
    for namespace in sorted(allowed_in):
        if not context.cluster.can_i(account, "create", "apps", "deployments", namespace):
            raise CheckFailed(Diagnosis(
                "gocd", f"SubjectAccessReview system:serviceaccount:{account[0]}:{account[1]}",
                f"create deployments allowed in {namespace}", "denied",
                f"the RoleBinding 'deployer' in {namespace} is missing or names another ServiceAccount"))
    for namespace in sorted(set(context.platform.namespaces) - allowed_in):
        if context.cluster.can_i(account, "create", "apps", "deployments", namespace):
            raise CheckFailed(Diagnosis(
                "gocd", f"SubjectAccessReview system:serviceaccount:{account[0]}:{account[1]}",
                f"create deployments denied in {namespace}", "allowed",
                "the agents' ServiceAccount has rights beyond the application namespaces "
                "(a ClusterRoleBinding or a RoleBinding the kit did not make)"))
    return f"may deploy to {', '.join(sorted(allowed_in))}, nowhere else"


AGENT_PROBE = """
import os, urllib.request
request = urllib.request.Request(os.environ["PROBE_BASE_URL"] + os.environ["PROBE_PATH"],
                                 headers={"Accept": os.environ["PROBE_ACCEPT"]})
with urllib.request.urlopen(request, timeout=10) as answer:
    print("HEALTH", answer.status)
"""


def probe_as_agents(context: SmokeContext, edge: EdgeEntry, path: str, accept: str, blocked: str) -> str:
    """GET `path` on the edge's provider from a probe pod labelled as the sample tenant's agents (what a
    network policy sees), at the URL the edge hands the agents; `blocked` is the likely cause when it
    cannot. Returns what it reached."""
    name = f"{context.run_id}-{edge.provider}"
    where = f"probe pod {edge.consumer_namespace}/{name} -> {edge.url}{path}"
    try:
        log = context.cluster.run_probe(edge.consumer_namespace, name, timeout=max(context.timeout, 120),
                                        labels=edge.consumer_pods, container={
                                            "image": context.probe_image, "command": ["python", "-c", AGENT_PROBE],
                                            "env": [{"name": "PROBE_BASE_URL", "value": edge.url},
                                                    {"name": "PROBE_PATH", "value": path},
                                                    {"name": "PROBE_ACCEPT", "value": accept}]})
    except Exception as failure:  # noqa: BLE001 - probe failures are the finding
        raise CheckFailed(Diagnosis(edge.provider, where, "HTTP 200 from the agents' pods", str(failure)[:300],
                                    blocked)) from None
    if "HEALTH 200" not in log:
        raise CheckFailed(Diagnosis(edge.provider, where, "HEALTH 200 in the probe's log", log[-200:],
                                    "the server answered, but not healthy: read the log above"))
    return f"agents reach {edge.url}"


def agents_reach_server(context: SmokeContext) -> str:
    """A probe labelled as the sample tenant's agents reaches the server at the URL the cluster
    profile hands agents: what an elastic agent needs to register (and what a network policy
    could block)."""
    edge = context.edge(context.sample_tenant.agents_node, "gocd")
    if edge is None:
        raise Skip("the platform has no gocd-agents -> gocd edge")
    return probe_as_agents(context, edge, HEALTH.path, HEALTH.accept,
                           f"agents could not register: the Service name/port, or the {allow_to('gocd')} network "
                           "policy")


def agents_isolation(context: SmokeContext) -> str:
    """Two participants' agents stay apart: the API server admits the sample participant's agent pod for a
    job of their own, and refuses it for the second participant's job (the agents' admission policy; a dry
    run, nothing is created)."""
    tenants = context.platform.tenants
    if len(tenants) < 2:
        raise Skip("fewer than two participants: no one else's jobs to keep off these agents")
    own, other = tenants[0], tenants[1]
    agent = next((p for p in context.declared_pods if p["spec"].get("serviceAccountName") == own.service_account),
                 None)
    if agent is None:
        raise Skip(f"the kit declares no agent pod for {own.name}")
    namespace = agent["metadata"]["namespace"]
    policy = policy_name(namespace)

    def as_job_of(pipeline: str, environment: str | None) -> dict[str, Any]:
        labels, annotations = plugin_marks(pipeline, environment)
        pod = copy.deepcopy(agent)
        pod["metadata"]["labels"] = {**{k: v for k, v in pod["metadata"].get("labels", {}).items()
                                        if not k.startswith("Elastic-Agent-")}, **labels}
        pod["metadata"]["annotations"] = annotations
        return pod

    mine = f"{own.pipeline_prefix}{SMOKE_PIPELINE}"
    refusal = context.cluster.refusal(as_job_of(mine, own.gocd_environment))
    if refusal:
        raise CheckFailed(Diagnosis(
            "gocd", f"agent pod of {own.name} for a job of {mine} (dry run)", "admitted", refusal,
            f"the ValidatingAdmissionPolicy {policy} refuses the participant's own jobs: `cd4ml up` puts back "
            "the kit's policy"))
    theirs = f"{other.pipeline_prefix}{SMOKE_PIPELINE}"
    refusal = context.cluster.refusal(as_job_of(theirs, other.gocd_environment))
    if not refusal or policy not in refusal:
        raise CheckFailed(Diagnosis(
            "gocd", f"agent pod of {own.name} for a job of {other.name}'s {theirs} (dry run)",
            f"refused by {policy}", refusal or "admitted",
            f"{other.name}'s pipelines could run as {own.service_account} (with {own.name}'s deploy rights): the "
            f"ValidatingAdmissionPolicy or its binding {policy} is missing: `cd4ml up` puts them back"))
    return f"{own.name}'s agents take {own.name}'s jobs and refuse {other.name}'s"


CHECKS = (
    Check("gocd.health", "gocd", server_health),
    Check("gocd.security", "gocd", security_on),
    Check("gocd.elastic-agents", "gocd", elastic_agent_profiles),
    Check("gocd.config-repos", "gocd", config_repositories),
    Check("wire.gocd-agents-deploy", "gocd", agents_deploy_rights, needs_cluster=True, api_only=True),
    Check("wire.gocd-agents-gocd", "gocd", agents_reach_server, needs_cluster=True),
    Check("gocd.agents-isolation", "gocd", agents_isolation, needs_cluster=True, api_only=True),
)
