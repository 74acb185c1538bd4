"""The git server answers: its health, and the sample tenant's ready repository as the admin sees it."""

from __future__ import annotations

from infra.platform.gitea import GiteaSettings
from infra.smoke.core import Check, CheckFailed, Diagnosis, SmokeContext
from infra.smoke.http import call, json_of
from infra.upstream import gitea as gitea_api


def health(context: SmokeContext) -> str:
    """GET /api/healthz: Gitea's own check of its database and cache (answered without a login)."""
    gitea = context.target("gitea")
    answer = call(context, gitea, "GET", gitea_api.HEALTH, expect="Gitea's health", statuses=(200, 503))
    status = json_of(answer, gitea, "the health report").get("status")
    if answer.status_code != 200 or status != "pass":
        raise CheckFailed(Diagnosis("gitea", f"GET {gitea.url}{gitea_api.HEALTH}", '{"status": "pass"}',
                                    f"HTTP {answer.status_code} {status}", "its database or cache check fails: "
                                    "kubectl -n cd4ml-git logs deploy/gitea"))
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


CHECKS = (
    Check("gitea.health", "gitea", health),
    Check("gitea.ready-repos", "gitea", ready_repos),
)
