"""Gitea's API as the kit calls it (Gitea 1.27.3; the real server answers it in tests/test_gitea_server.py).
Standard library only: mounted into the Gitea configure Job beside infra/configure/gitea.py, and read by
the workshop smoke checks."""

from __future__ import annotations

from urllib.parse import quote

API = "/api/v1"
HEALTH = "/api/healthz"
"""routers/web/web.go l.296: the one call answered without a login when sign-in is required to view."""
CURRENT_USER = f"{API}/user"
"""routers/api/v1/api.go l.1098-1099: the caller; `login` and `is_admin` in the body."""


def api_path(*parts: str) -> str:
    """An API path with each part escaped (user, repository and file names go in the path)."""
    return API + "".join(f"/{quote(part, safe='')}" for part in parts)


def repo_path(owner: str, name: str) -> str:
    """GET: 200 for who may read it, 404 for anyone else (a private repository is not shown to exist)."""
    return api_path("repos", owner, name)


RESERVED_USERNAMES = ("api", "metrics", "v2", "assets", "attachments", "avatar", "avatars", "repo-avatars", "captcha",
                      "login", "org", "repo", "user", "explore", "issues", "pulls", "milestones", "notifications",
                      "ghost", "gitea-actions")
"""Names Gitea refuses for a user (models/user/user.go l.592-629 reservedUsernames, those that are DNS
labels): a participant with one of them could not get their login or repository."""
