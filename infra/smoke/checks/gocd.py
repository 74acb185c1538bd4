"""GoCD: the server answers its health API, and its agents may deploy into the application namespaces
and nowhere else. (Profiles and config repos come with GoCD-by-code.)"""

from __future__ import annotations

from infra.platform.gocd import AGENT_SERVICE_ACCOUNT, AGENTS_NODE
from infra.smoke.core import Check, CheckFailed, Diagnosis, Skip, SmokeContext
from infra.smoke.http import call, json_of


def server_health(context: SmokeContext) -> str:
    gocd = context.target("gocd")
    expect = 'HTTP 200 {"health": "OK"}'
    body = json_of(call(context, gocd, "GET", "/api/v1/health", expect=expect), gocd, expect)
    if body.get("health") != "OK":
        raise CheckFailed(Diagnosis("gocd", f"{gocd.url}/api/v1/health", expect, str(body),
                                    "the server is still starting (plugins, database migration): wait and rerun"))
    return "server healthy"


def agents_deploy_rights(context: SmokeContext) -> str:
    """The agents may create Deployments in every application namespace and nowhere else the kit owns
    (asked of the API server as a SubjectAccessReview: nothing is created)."""
    deploy_edges = [e for e in context.platform["wiring"] if e["from"] == AGENTS_NODE and e["kind"] == "deploy"]
    if not deploy_edges:
        raise Skip("the platform has no application namespaces to deploy into")
    account = (deploy_edges[0]["from_namespace"], AGENT_SERVICE_ACCOUNT)
    allowed_in = {e["to_namespace"] for e in deploy_edges}
    for namespace in sorted(allowed_in):
        if not context.cluster.can_i(account, "create", "apps", "deployments", namespace):
            raise CheckFailed(Diagnosis(
                "gocd", f"SubjectAccessReview system:serviceaccount:{account[0]}:{account[1]}",
                f"create deployments allowed in {namespace}", "denied",
                f"the RoleBinding 'deployer' in {namespace} is missing or names another ServiceAccount"))
    for namespace in sorted(set(context.platform["namespaces"]) - allowed_in):
        if context.cluster.can_i(account, "create", "apps", "deployments", namespace):
            raise CheckFailed(Diagnosis(
                "gocd", f"SubjectAccessReview system:serviceaccount:{account[0]}:{account[1]}",
                f"create deployments denied in {namespace}", "allowed",
                "the agents' ServiceAccount has rights beyond the application namespaces "
                "(a ClusterRoleBinding or a RoleBinding the kit did not make)"))
    return f"may deploy to {', '.join(sorted(allowed_in))}, nowhere else"


CHECKS = (
    Check("gocd.health", "gocd", server_health),
    Check("wire.gocd-agents-deploy", "gocd", agents_deploy_rights, needs_cluster=True),
)
