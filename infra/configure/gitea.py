"""Gitea by code: the ready model repositories, so a participant's first push is a change to the model.

As the chart's admin, for each tenant this ensures: the user (a participant's one login; created, or its
password put back when the generated one no longer logs in), a private repository `<owner>/<name>` (the
single team's is the admin's), its first commit (the example with the tenant's pipeline file, written
only while the repository is empty: a participant's work is never overwritten), and read access for the
login GoCD's server and agents clone with. Everything is read first, so a second run writes nothing.

Calls (Gitea 1.27.3): GET /api/healthz (routers/web/web.go l.296, the one call answered without a login
when sign-in is required to view anything); in routers/api/v1/api.go: GET /user (the caller) l.1058; admin
users l.1797-1809 (POST /admin/users, PATCH /admin/users/{username}, POST /admin/users/{username}/repos);
GET /repos/{owner}/{repo}; collaborators l.1285-1290; POST /repos/{owner}/{repo}/contents l.1498
(ChangeFiles: several files in one commit, also on an empty repository).

Run in-cluster as `python -m infra.configure.gitea DESIRED.json` with GITEA_URL and the admin's
GITEA_USERNAME/GITEA_PASSWORD (as *_FILE); each user's password is a file named after the user under
DESIRED's `password_dir` (see infra/platform/gitea.py).
"""

from __future__ import annotations

import base64
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from infra.configure.api import ApiError, JsonApi, Outcome, Response, refusal, run_main, wait_for
from infra.upstream.gitea import CURRENT_USER, HEALTH, repo_path
from infra.upstream.gitea import api_path as _path

ADMIN_HINT = "not the chart's admin, or its password differs from the gitea-admin Secret"


def ensure_user(api: JsonApi, login: str, password: str, email: str) -> Outcome:
    found = api.call("GET", _path("users", login))
    if found.status == 200:
        if JsonApi(api.base_url, login, password, timeout=api.timeout).call("GET", CURRENT_USER).status == 200:
            return Outcome("user", login, "unchanged")
        # The generated password changed (a recreated stack) or someone changed it by hand.
        reset = api.call("PATCH", _path("admin", "users", login), body={
            "password": password, "must_change_password": False, "login_name": login, "source_id": 0})
        if reset.status != 200:
            raise refusal("Gitea", api, reset, f"PATCH admin user {login} (its password)", ADMIN_HINT)
        return Outcome("user", login, "updated")
    if found.status != 404:
        raise refusal("Gitea", api, found, f"GET user {login}", ADMIN_HINT)
    created = api.call("POST", _path("admin", "users"), body={
        "username": login, "login_name": login, "email": email, "password": password,
        "must_change_password": False, "send_notify": False,
        # Nobody but admins sees a private user; participants do not find each other.
        "visibility": "private"})
    if created.status != 201:
        raise refusal("Gitea", api, created, f"POST admin users ({login})", ADMIN_HINT)
    return Outcome("user", login, "created")


def ensure_repo(api: JsonApi, owner: str, name: str) -> tuple[Outcome, bool]:
    """(outcome, whether it has no commit yet)."""
    what = f"{owner}/{name}"
    found = api.call("GET", repo_path(owner, name))
    if found.status == 200:
        body = found.body or {}
        if body.get("private") is not True:
            raise ApiError(f"Gitea repository {what} exists and is not private: the kit does not make a "
                           "participant's repository public; make it private again, or delete it")
        return Outcome("repository", what, "unchanged"), bool(body.get("empty"))
    if found.status != 404:
        raise refusal("Gitea", api, found, f"GET repository {what}", ADMIN_HINT)
    created = api.call("POST", _path("admin", "users", owner, "repos"), body={
        "name": name, "private": True, "default_branch": "main", "auto_init": False,
        "description": "The CD4ML example model, ready to change and push"})
    if created.status != 201:
        raise refusal("Gitea", api, created, f"POST admin repository {what}", ADMIN_HINT)
    return Outcome("repository", what, "created"), True


def seed(api: JsonApi, owner: str, name: str, files: dict[str, str], message: str) -> Outcome:
    """The first commit on `main`, all files at once."""
    what = f"{owner}/{name}"
    committed = api.call("POST", _path("repos", owner, name, "contents"), body={
        "branch": "main", "message": message,
        "author": {"name": "cd4ml", "email": "cd4ml@cd4ml.invalid"},
        "files": [{"operation": "create", "path": path,
                   "content": base64.b64encode(text.encode()).decode()} for path, text in sorted(files.items())]})
    if committed.status != 201:
        raise refusal("Gitea", api, committed, f"POST the first commit of {what}", ADMIN_HINT)
    return Outcome("first commit", what, "created")


def ensure_reader(api: JsonApi, owner: str, name: str, reader: str) -> Outcome:
    what = f"{reader} reads {owner}/{name}"
    path = _path("repos", owner, name, "collaborators", reader)
    found = api.call("GET", path)
    if found.status == 204:
        permission = api.call("GET", path + "/permission")
        if permission.status == 200 and (permission.body or {}).get("permission") == "read":
            return Outcome("collaborator", what, "unchanged")
    elif found.status != 404:
        raise refusal("Gitea", api, found, f"GET collaborator {what}", ADMIN_HINT)
    added = api.call("PUT", path, body={"permission": "read"})
    if added.status != 204:
        raise refusal("Gitea", api, added, f"PUT collaborator {what}", ADMIN_HINT)
    return Outcome("collaborator", what, "created" if found.status == 404 else "updated")


def configure(api: JsonApi, desired: dict[str, Any], health_timeout: float = 600.0,
              pause: Callable[[float], None] | None = None) -> list[Outcome]:
    def healthy(answer: Response) -> bool:
        return answer.status == 200 and isinstance(answer.body, dict) and answer.body.get("status") == "pass"

    wait_for(api, HEALTH, healthy, f"Gitea at {api.base_url}{HEALTH} to answer 200 " '{"status": "pass"}',
             health_timeout, pause, login_hint=ADMIN_HINT)
    admin = api.call("GET", CURRENT_USER)
    if admin.status != 200 or not (admin.body or {}).get("is_admin"):
        raise ApiError(f"Gitea does not know the kit's admin {api.username} as an admin ({admin.summary()}): "
                       "check the Secret the chart's gitea.admin.existingSecret names")

    def password(user: str) -> str:
        return (Path(desired["password_dir"]) / user).read_text(encoding="utf-8").strip()

    outcomes = [ensure_user(api, user, password(user), f"{user}@{desired['email_domain']}")
                for user in desired["users"]]
    for repo in desired["repos"]:
        owner, name = repo["owner"], repo["name"]
        outcome, empty = ensure_repo(api, owner, name)
        outcomes.append(outcome)
        if empty:
            files = {**desired["files"], repo["pipeline_file"]: repo["pipeline"]}
            outcomes.append(seed(api, owner, name, files, repo["message"]))
        outcomes.append(ensure_reader(api, owner, name, desired["reader"]))
    return outcomes


def main(argv: list[str] | None = None) -> int:
    return run_main("gitea", sys.argv[1:] if argv is None else argv,
                    ("GITEA_URL", "GITEA_USERNAME", "GITEA_PASSWORD"),
                    lambda env: JsonApi(env["GITEA_URL"], env["GITEA_USERNAME"], env["GITEA_PASSWORD"]), configure)


if __name__ == "__main__":
    sys.exit(main())
