"""A stand-in for Gitea 1.27.3 as the kit's configure Job leaves it: its users with their passwords, each
ready repository private to its owner with GoCD's reader as a read-only collaborator. It answers the calls
the smoke checks make and the one a git client makes first when GoCD clones over HTTP (the ref
advertisement). Every call is in tests/contracts/gitea.yaml, and tests/test_gitea_server.py replays the
same requests against the real Gitea and compares the answers.

It is not Gitea: the configure Job itself runs only against the real server (tests/test_gitea_server.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from http_standin import HttpStandIn, Request

from infra.platform.gitea import GiteaSettings

ANONYMOUS_API = (403, {"message": "Only signed in user is allowed to call APIs."})
"""routers/api/v1/api.go l.900-905: any API call without a login, with sign-in required to view."""
TEXT = {"Content-Type": "text/plain; charset=utf-8"}


@dataclass
class GiteaRepo:
    owner: str
    name: str
    readers: set[str] = field(default_factory=set)
    empty: bool = False


class GiteaStandIn(HttpStandIn):
    service = "gitea"

    def __init__(self, admin: tuple[str, str], users: dict[str, str], repos: list[GiteaRepo],
                 root_url: str = "http://localhost:3030/"):
        super().__init__()
        self.swagger = f"{root_url}api/swagger"  # modules/setting/api.go l.35-41: the API errors' `url`
        self.admin = admin[0]
        self.passwords = {admin[0]: admin[1], **users}
        self.repos = {(r.owner, r.name): r for r in repos}
        self.healthy = True
        self.route("GET", "/api/healthz", self._health)
        # The home page, to anyone (routers/web/web.go l.517, home.go l.62-64): what the ingress check opens.
        self.route("GET", "/", lambda r: (200, b"<!DOCTYPE html><title>Gitea</title>", {"Content-Type": "text/html"}))
        self.route("GET", "/api/v1/user", self._current_user)
        self.route("GET", r"/api/v1/repos/([^/]+)/([^/]+)", self._repo)
        self.route("GET", r"/([^/]+)/([^/]+)\.git/info/refs", self._refs)

    @classmethod
    def as_configured(cls, settings: GiteaSettings, admin: tuple[str, str], passwords: dict[str, str],
                      root_url: str = "http://localhost:3030/") -> GiteaStandIn:
        """What the gitea-configure Job leaves: each repository's owner (with their password from `passwords`),
        the reader with read access to every ready repository, each seeded with its first commit."""
        users = {repo.owner: passwords[repo.owner] for repo in settings.repos if repo.owner != admin[0]}
        users[settings.reader] = passwords[settings.reader]
        return cls(admin, users, [GiteaRepo(r.owner, r.name, {settings.reader}) for r in settings.repos], root_url)

    def take_read_access(self, user: str) -> None:
        """`user` is no longer a collaborator of any repository (what removing it in Gitea's UI does)."""
        for repo in self.repos.values():
            repo.readers.discard(user)

    def _signed_in(self, request: Request) -> str | None:
        login = request.basic_auth
        return login[0] if login and self.passwords.get(login[0]) == login[1] else None

    def _api_caller(self, request: Request) -> tuple[str | None, tuple | None]:
        """The API's caller, or its refusal: 403 without a login; 401 for a wrong one (api.go l.850-856, apiAuth:
        basic auth that fails is refused before any route)."""
        if request.basic_auth is None:
            return None, ANONYMOUS_API
        user = self._signed_in(request)
        return user, ((401, {"message": "invalid username, password or token", "url": self.swagger})
                      if user is None else None)

    def _may_read(self, user: str | None, repo: GiteaRepo) -> bool:
        return user is not None and (user in (self.admin, repo.owner) or user in repo.readers)

    def _health(self, request: Request):
        status = "pass" if self.healthy else "fail"  # check.go l.41-46: pass 200, fail 424 Failed Dependency
        check = {"status": status, "time": "2026-12-07T10:00:00Z"}
        return (200 if self.healthy else 424), {"status": status, "description": "Gitea: Git with a cup of tea",
                                                "checks": {"cache:ping": [check], "database:ping": [check]}}

    def _current_user(self, request: Request):
        user, refusal = self._api_caller(request)
        if refusal:
            return refusal
        return 200, {"id": sorted(self.passwords).index(user) + 1, "login": user, "is_admin": user == self.admin}

    def _repo(self, request: Request):
        user, refusal = self._api_caller(request)
        if refusal:
            return refusal
        repo = self.repos.get((request.match.group(1), request.match.group(2)))
        if repo is None or not self._may_read(user, repo):  # services/context/api.go l.142-147, APIErrorNotFound
            return 404, {"message": "not found", "url": self.swagger}
        return 200, {"name": repo.name, "full_name": f"{repo.owner}/{repo.name}", "owner": {"login": repo.owner},
                     "url": f"{self.swagger.removesuffix('swagger')}v1/repos/{repo.owner}/{repo.name}",
                     "private": True, "empty": repo.empty, "default_branch": "main"}

    def _refs(self, request: Request):
        """GET <repo>.git/info/refs (routers/web/repo/githttp.go httpBase), for a private repository."""
        service = request.query.get("service")
        if service not in (None, "git-upload-pack", "git-receive-pack", "git-upload-archive"):
            return 400, b"", {"Content-Type": ""}  # l.80-82: a bare status
        if request.basic_auth and self._signed_in(request) is None:
            # The web routes' auth middleware refuses a failed basic login first, without a challenge
            # (routers/web/web.go l.151-155, services/auth/basic.go l.142-147).
            return 401, b"Failed to authenticate user\n", TEXT
        user = self._signed_in(request)
        if user is None:  # l.146-158; OAuth2 on (its default): the realm that tells credential managers so
            return 401, b"Unauthorized\n", {**TEXT, "WWW-Authenticate": 'Basic realm="Gitea"'}
        repo = self.repos.get((request.match.group(1), request.match.group(2)))
        # Read access suffices for every service here: git's proc-receive support makes a push need read
        # only at this point (l.185-187); l.189-197 and l.207-211 answer the rest 404.
        if repo is None or not self._may_read(user, repo):
            return 404, b"Repository not found", TEXT
        if service is None:  # the dumb protocol's refs file (l.461-469)
            return 200, b"5cf644d41aaf4b55afc3e909ab1d0cc291998940\trefs/heads/main\n", TEXT
        line = f"# service={service}\n"
        advertisement = f"{len(line) + 4:04x}{line}0000".encode()  # pkt-lines: 4 hex digits of length first
        return 200, advertisement, {"Content-Type": f"application/x-{service}-advertisement"}
