"""A workshop's participants, checked as them: the sample participant's one login opens GoCD, Kibana,
Grafana, MLflow and the git server, and reaches their own experiment, events and repository but not the
second participant's. The
password is read where the platform keeps it (the participant's Elasticsearch user Secret), so these
checks need the cluster. (The second participant's agents and namespaces: gocd.agents-isolation and
wire.gocd-agents-deploy.)"""

from __future__ import annotations

import dataclasses

from infra import events
from infra.document import TenantEntry
from infra.platform.elasticsearch import user_credentials
from infra.platform.gitea import GiteaSettings, ReadyRepo
from infra.smoke.checks.mlflow import API as MLFLOW_API
from infra.smoke.core import Check, CheckFailed, Diagnosis, Skip, SmokeContext, Target
from infra.smoke.http import call, json_of
from infra.upstream import gitea as gitea_api
from infra.upstream.gocd import CURRENT_USER

HAS_PRIVILEGES = "/_security/user/_has_privileges"
"""Elasticsearch: which of the privileges asked for the caller's roles grant (needs none of its own)."""


def _participants(context: SmokeContext, needed: int) -> tuple[TenantEntry, ...]:
    tenants = context.platform.tenants
    if len(tenants) < needed:
        raise Skip("no workshop participants" if not tenants else "fewer than two participants")
    return tenants[:needed]


def _as(context: SmokeContext, service: str, tenant: TenantEntry) -> Target:
    """The service's target, logged in as the participant (their password from their Secret)."""
    target = context.target(service)
    credentials = user_credentials(tenant.name, context.service("elasticsearch").namespace)
    namespace, _, secret = credentials.qualified_name.partition("/")
    key = f"participant-login-{tenant.name}"
    data = context.once(key, lambda: context.cluster.read_secret(namespace, secret))
    return dataclasses.replace(target, username=data["username"], password=data["password"])


def _refused_login(service: str, where: str, tenant: TenantEntry, seen: str, configure: str) -> CheckFailed:
    return CheckFailed(Diagnosis(
        service, where, f"{tenant.name}'s login accepted", seen,
        f"{service} does not know {tenant.name}'s login, or another password: {configure}"))


def _ready_repo(context: SmokeContext, tenant: TenantEntry) -> ReadyRepo | None:
    """The participant's ready repository on the git server, if it holds one."""
    return next((r for r in context.platform.settings(GiteaSettings).repos if r.tenant == tenant.name), None)


def participant_logins(context: SmokeContext) -> str:
    """The sample participant logs in, with their handout's login, to each service that has logins."""
    (own,) = _participants(context, 1)
    opened = []
    if "gocd" in context.targets:
        gocd = _as(context, "gocd", own)
        answer = call(context, gocd, "GET", CURRENT_USER.path, expect=f"GoCD's user {own.login}",
                      headers={"Accept": CURRENT_USER.accept}, statuses=(200, 401))
        login = json_of(answer, gocd, "the current user").get("login_name") if answer.status_code == 200 else None
        if login != own.login:
            raise _refused_login("gocd", f"GET {gocd.url}{CURRENT_USER.path}", own, f"HTTP {answer.status_code}",
                                 "the password file (Secret gocd-password-file) is from another `up`; `cd4ml up`")
        opened.append("GoCD")
    if "kibana" in context.targets:
        kibana = _as(context, "kibana", own)
        answer = call(context, kibana, "GET", "/api/status", expect="Kibana's status", statuses=(200, 401, 503))
        if answer.status_code == 401:
            raise _refused_login("kibana", f"GET {kibana.url}/api/status", own, "HTTP 401",
                                 "Elasticsearch's file realm lacks the user (the ECK file realm Secret)")
        opened.append("Kibana")
    if "grafana" in context.targets:
        grafana = _as(context, "grafana", own)
        answer = call(context, grafana, "GET", "/api/user", expect=f"Grafana's user {own.login}", statuses=(200, 401))
        login = json_of(answer, grafana, "the signed-in user").get("login") if answer.status_code == 200 else None
        if login != own.login:
            raise _refused_login("grafana", f"GET {grafana.url}/api/user", own, f"HTTP {answer.status_code}",
                                 "the grafana-configure Job did not create it (kubectl -n cd4ml-monitoring logs "
                                 "-l app.kubernetes.io/component=grafana-configure)")
        opened.append("Grafana")
    if "mlflow" in context.targets:
        mlflow = _as(context, "mlflow", own)
        answer = call(context, mlflow, "GET", f"{MLFLOW_API}/experiments/get-by-name", expect="their experiment",
                      params={"experiment_name": own.mlflow_experiment}, statuses=(200, 401, 403, 404))
        if answer.status_code != 200:
            raise _refused_login("mlflow", f"GET {mlflow.url}{MLFLOW_API}/experiments/get-by-name", own,
                                 f"HTTP {answer.status_code}: {answer.text[:120]}",
                                 "the mlflow-configure Job did not create the login, its experiment or its grant")
        opened.append("MLflow (their experiment)")
    if "gitea" in context.targets:
        gitea = _as(context, "gitea", own)
        answer = call(context, gitea, "GET", gitea_api.CURRENT_USER, expect=f"Gitea's user {own.login}",
                      statuses=(200, 401))
        login = json_of(answer, gitea, "the signed-in user").get("login") if answer.status_code == 200 else None
        if login != own.login:
            raise _refused_login("gitea", f"GET {gitea.url}{gitea_api.CURRENT_USER}", own,
                                 f"HTTP {answer.status_code}", "the gitea-configure Job did not create it "
                                 f"(kubectl -n {context.service('gitea').namespace} logs -l "
                                 "app.kubernetes.io/component=gitea-configure)")
        if repo := _ready_repo(context, own):
            path = gitea_api.repo_path(repo.owner, repo.name)
            found = call(context, gitea, "GET", path, expect=f"their repository {repo.owner}/{repo.name}",
                         statuses=(200, 404))
            if found.status_code != 200:
                raise CheckFailed(Diagnosis(
                    "gitea", f"GET {gitea.url}{path} as {own.name}",
                    f"their ready repository {repo.owner}/{repo.name}", f"HTTP {found.status_code}",
                    "the gitea-configure Job did not create it (its log names each repository)"))
        opened.append("Gitea (their repository)")
    if not opened:
        raise Skip("none of GoCD, Kibana, Grafana, MLflow and Gitea was given an endpoint")
    return f"{own.name} logs in to {', '.join(opened)}"


def participants_apart(context: SmokeContext) -> str:
    """The sample participant cannot read the second's experiment or events."""
    own, other = _participants(context, 2)
    kept = []
    if "mlflow" in context.targets:
        mlflow = _as(context, "mlflow", own)
        answer = call(context, mlflow, "GET", f"{MLFLOW_API}/experiments/get-by-name", expect="a refusal",
                      params={"experiment_name": other.mlflow_experiment}, statuses=(200, 403, 404))
        if answer.status_code == 200:
            raise CheckFailed(Diagnosis(
                "mlflow", f"GET {mlflow.url}{MLFLOW_API}/experiments/get-by-name as {own.name}",
                f"403 for {other.name}'s experiment", "HTTP 200",
                f"{own.name} holds a permission on {other.name}'s experiment, or MLflow's default permission "
                "is not NO_PERMISSIONS: the kit's MLflow auth config"))
        kept.append("experiment")
    if "elasticsearch" in context.targets:
        es = _as(context, "elasticsearch", own)
        theirs, mine = events.index_pattern(other.name), events.index_pattern(own.name)
        answer = call(context, es, "POST", HAS_PRIVILEGES, expect="the login's index privileges",
                      json={"index": [{"names": [theirs, mine], "privileges": ["read"]}]})
        found = json_of(answer, es, "privileges").get("index", {})
        granted = {name: privileges.get("read") for name, privileges in found.items()}
        if granted.get(theirs) is not False or granted.get(mine) is not True:
            raise CheckFailed(Diagnosis(
                "elasticsearch", f"POST {es.url}{HAS_PRIVILEGES} as {own.name}",
                f"read on {mine} only, not on {theirs}", str(granted),
                f"the role cd4ml_tenant_{own.name} in the kit's roles.yml names other indices, or the user holds "
                "another role"))
        kept.append("events")
    theirs_repo = _ready_repo(context, other) if "gitea" in context.targets else None
    if theirs_repo:
        gitea = _as(context, "gitea", own)
        path = gitea_api.repo_path(theirs_repo.owner, theirs_repo.name)
        answer = call(context, gitea, "GET", path, expect="a refusal", statuses=(200, 403, 404))
        if answer.status_code == 200:
            raise CheckFailed(Diagnosis(
                "gitea", f"GET {gitea.url}{path} as {own.name}",
                f"404 for {other.name}'s repository", "HTTP 200",
                f"{theirs_repo.owner}/{theirs_repo.name} was made public or {own.name} was added to it as a "
                "collaborator: the kit makes every ready repository private, readable by its owner and GoCD's "
                "reader only"))
        kept.append("repository")
    if not kept:
        raise Skip("none of MLflow, Elasticsearch and Gitea was given an endpoint")
    return f"{own.name} cannot read {other.name}'s {' or '.join(kept)}"


CHECKS = (
    Check("workshop.logins", "platform", participant_logins, needs_cluster=True),
    Check("workshop.participants-apart", "platform", participants_apart, needs_cluster=True),
)
