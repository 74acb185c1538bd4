"""The git server answers (its health, each tenant's ready repository as the admin sees it), GoCD's server
has cloned and parsed each ready repository as its reader, and the agents' pods reach the git server (they
clone the same repositories for every job)."""

from __future__ import annotations

from infra.platform.gitea import GiteaSettings
from infra.platform.gocd import GoCDSettings
from infra.platform.network import allow_to
from infra.polling import Observation, WaitTimeout, poll_until
from infra.smoke.checks.gocd import INTERNAL_CONFIG_REPOS, probe_as_agents, read_as_admin
from infra.smoke.core import Check, CheckFailed, Diagnosis, Skip, SmokeContext
from infra.smoke.http import call, json_of
from infra.upstream import gitea as gitea_api
from infra.upstream.gocd import CONFIG_REPOS, MATERIAL_CHECK_FAILED, SERVER_HEALTH_MESSAGES


def health(context: SmokeContext) -> str:
    """GET /api/healthz: Gitea's own check of its database and cache (answered without a login; a failing
    one is 424 Failed Dependency, routers/web/healthcheck/check.go l.41-46)."""
    gitea = context.target("gitea")
    answer = call(context, gitea, "GET", gitea_api.HEALTH, expect="Gitea's health", statuses=(200, 424))
    status = json_of(answer, gitea, "the health report").get("status")
    if answer.status_code != 200 or status != "pass":
        raise CheckFailed(Diagnosis("gitea", f"GET {gitea.url}{gitea_api.HEALTH}", '{"status": "pass"}',
                                    f"HTTP {answer.status_code} {status}", "its database or cache check fails: "
                                    f"kubectl -n {context.service('gitea').namespace} logs deploy/gitea"))
    return "healthy"


def ready_repos(context: SmokeContext) -> str:
    """Each tenant's ready repository exists and holds a commit (the configure Job seeded it)."""
    gitea = context.target("gitea")
    repos = context.platform.settings(GiteaSettings).repos
    for repo in repos:
        path = gitea_api.repo_path(repo.owner, repo.name)
        answer = call(context, gitea, "GET", path, expect=f"repository {repo.owner}/{repo.name}", statuses=(200, 404))
        if answer.status_code != 200 or json_of(answer, gitea, "the repository").get("empty"):
            raise CheckFailed(Diagnosis("gitea", f"GET {gitea.url}{path}", "the ready repository, with its first "
                                        "commit", f"HTTP {answer.status_code}", "the gitea-configure Job did not "
                                        "finish (its log names each repository)"))
    return f"{len(repos)} ready repositories, each with its first commit"


def gocd_reads_ready_repos(context: SmokeContext) -> str:
    """GoCD's server has cloned and parsed each ready repository as the reader (its config repository shows
    a good modification: what GoCD's Config Repositories page shows; GoCD checks materials about once a
    minute, so one registered moments ago is polled until the deadline), and its latest check of each did
    not fail (GoCD keeps a parse result once made, so a clone that fails later shows only among the
    server's health messages)."""
    edge = context.edge("gocd", "gitea")
    if edge is None:
        raise Skip("GoCD reads no ready repositories here (the stack names modelRepos, or GoCD is off)")
    gocd, gitea = context.target("gocd"), context.settings(GiteaSettings)
    ready = {repo.clone_url for repo in gitea.repos}
    repos = {r.id: r.url for r in context.settings(GoCDSettings).config_repos if r.url in ready}
    cannot_clone = (f"GoCD cannot clone from the git server as {gitea.reader}: the reader's password (Secret "
                    f"{edge.credentials_secret}, set by the gocd-configure Job), its read access (the gitea-configure "
                    f"Job's log), or the {allow_to('gitea')} network policy")

    def look() -> Observation[dict[str, str]]:
        listing = read_as_admin(context, INTERNAL_CONFIG_REPOS, CONFIG_REPOS.accept, "GoCD's config repositories")
        shown = {r.get("id"): r.get("parse_info") or {} for r in listing.get("_embedded", {}).get("config_repos", [])}
        waiting = {i: "not registered" if i not in shown else shown[i].get("error") or "not checked yet"
                   for i in repos if not (shown.get(i) or {}).get("good_modification")}
        return Observation(not waiting, waiting, "; ".join(f"{i}: {seen[:300]}" for i, seen in waiting.items()))

    try:
        poll_until(look, what="a good modification of each ready repository", timeout=context.timeout)
    except WaitTimeout as timeout:
        seen = timeout.last_seen
        if "MODIFICATION CHECK FAILED" in seen.upper():
            cause = cannot_clone
        elif "not registered" in seen or "not checked yet" in seen:
            cause = ("GoCD has not checked it yet (about once a minute after it starts; one missing: the "
                     "gocd-configure Job's log): rerun with a longer --timeout")
        else:
            cause = ("its pipeline file does not parse, or breaks its config repository's rules: GoCD's Config "
                     "Repositories page shows the error")
        raise CheckFailed(Diagnosis("gocd", f"GET {gocd.url}{INTERNAL_CONFIG_REPOS}",
                                    f"{sorted(repos)} cloned from {edge.url} and parsed", seen, cause)) from None
    messages = read_as_admin(context, SERVER_HEALTH_MESSAGES.path, SERVER_HEALTH_MESSAGES.accept,
                             "GoCD's server health messages")
    for repo_id, url in sorted(repos.items()):
        failing = next((m for m in messages if str(m.get("message", "")).startswith(
            MATERIAL_CHECK_FAILED.format(url=url))), None)
        if failing:
            raise CheckFailed(Diagnosis(
                "gocd", f"GET {gocd.url}{SERVER_HEALTH_MESSAGES.path}", f"no failed check of {repo_id} ({url})",
                f"{failing.get('message', '').splitlines()[0]}: {str(failing.get('detail'))[-300:]}",
                f"parsed once, but GoCD's latest check fails: {cannot_clone}"))
    return f"GoCD cloned and parsed {len(repos)} ready repositories from {edge.url}, and its latest checks pass"


def agents_reach_gitea(context: SmokeContext) -> str:
    """A probe labelled as the sample tenant's agents reaches the git server at the URL their jobs clone
    from (each job's agent clones its pipeline's material itself)."""
    edge = context.edge(context.sample_tenant.agents_node, "gitea")
    if edge is None:
        raise Skip("the agents clone nothing from the git server here (the stack names modelRepos)")
    return probe_as_agents(context, edge, gitea_api.HEALTH, "application/json",
                           f"jobs could not check out their repository: the Service name/port, or the "
                           f"{allow_to('gitea')} network policy")


CHECKS = (
    Check("gitea.health", "gitea", health),
    Check("gitea.ready-repos", "gitea", ready_repos),
    Check("wire.gocd-gitea", "gitea", gocd_reads_ready_repos),
    Check("wire.gocd-agents-gitea", "gitea", agents_reach_gitea, needs_cluster=True),
)
