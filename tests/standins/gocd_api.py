"""A stand-in for the GoCD 26.1 server APIs the kit calls, built from GoCD's API docs and source
(notes in the closing note of issue #3): it is not GoCD.

What it reproduces, because the kit's configure code and smoke checks depend on it:
- `GET /go/api/v1/health`: 503 while starting, then 200 {"health": "OK"}; no auth ever needed.
- Exact media types: an admin API called with another Accept answers a plain-text 404.
- Create (POST) answers 200 with a quoted ETag; an existing id answers 422. Update (PUT) needs
  `If-Match` with the current ETag, else 412. Every error body is {"message": ...}.
- Security: off until an authorization configuration exists. While off, any request carrying
  Basic credentials is refused with 401; once on, an anonymous call gets 401 with
  `WWW-Authenticate: Basic realm="GoCD"`, a wrong password 401, a non-admin 403.
- With no system admins named, every logged-in user is an admin.
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
from dataclasses import dataclass, field

from http_standin import HttpStandIn, Request

COLLECTIONS = {
    "cluster_profiles": ("/go/api/admin/elastic/cluster_profiles", "application/vnd.go.cd.v1+json"),
    "elastic_profiles": ("/go/api/elastic/profiles", "application/vnd.go.cd.v2+json"),
    "config_repos": ("/go/api/admin/config_repos", "application/vnd.go.cd.v4+json"),
    "auth_configs": ("/go/api/admin/security/auth_configs", "application/vnd.go.cd.v2+json"),
    "pipeline_groups": ("/go/api/admin/pipeline_groups", "application/vnd.go.cd.v1+json"),
}
KEYS = {"pipeline_groups": "name"}
"""Pipeline groups are addressed by name; everything else by id."""
SYSTEM_ADMINS = ("/go/api/admin/security/system_admins", "application/vnd.go.cd.v2+json")
SITE_URLS = ("/go/api/admin/config/server/site_urls", "application/vnd.go.cd.v1+json")
"""GoCD 19.11+ (ServerSiteUrlsConfigControllerV1): admin only, GET, and POST or PUT to create or update,
without ETags; an empty config omits both URLs."""
INTERNAL_CONFIG_REPOS = "/go/api/internal/config_repos"
CHALLENGE = {"WWW-Authenticate": 'Basic realm="GoCD"'}


def etag_of(item) -> str:
    return '"' + hashlib.sha256(json.dumps(item, sort_keys=True).encode()).hexdigest()[:32] + '"'


@dataclass
class GoCDApiStandIn(HttpStandIn):
    users: dict[str, str] = field(default_factory=dict)
    """The logins the mounted password file would accept (user -> password)."""
    starting_answers: int = 0
    """How many health calls answer 503 before the server is up."""
    healthy: bool = True

    def __post_init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.items: dict[str, dict[str, dict]] = {name: {} for name in COLLECTIONS}
        self.system_admins: dict = {"roles": [], "users": []}
        self.site_urls: dict = {}
        self.writes: list[tuple[str, str]] = []
        self.requests: list[tuple[str, str, str | None]] = []  # method, path, user (None = anonymous)
        self.forced_412: int = 0
        """PUTs to refuse with 412 as if someone else had just edited the item."""
        self.create_race: set[str] = set()
        """Ids someone else creates between our GET (404) and our POST (422)."""
        self.parse_errors: dict[str, str] = {}
        self.route("GET", "/go/api/v1/health", self._health)
        for name, (path, accept) in COLLECTIONS.items():
            self.route("GET", f"{path}/(?P<id>[^/]+)", self._guarded(accept, lambda r, n=name: self._get(n, r)))
            self.route("POST", path, self._guarded(accept, lambda r, n=name: self._create(n, r)))
            self.route("PUT", f"{path}/(?P<id>[^/]+)", self._guarded(accept, lambda r, n=name: self._update(n, r)))
        self.route("GET", SYSTEM_ADMINS[0], self._guarded(SYSTEM_ADMINS[1], self._get_admins))
        self.route("PUT", SYSTEM_ADMINS[0], self._guarded(SYSTEM_ADMINS[1], self._put_admins))
        self.route("GET", SITE_URLS[0], self._guarded(SITE_URLS[1], lambda r: (200, dict(self.site_urls))))
        for method in ("POST", "PUT"):
            self.route(method, SITE_URLS[0], self._guarded(SITE_URLS[1], self._set_site_urls))
        self.route("GET", INTERNAL_CONFIG_REPOS, self._guarded(COLLECTIONS["config_repos"][1], self._internal_repos))

    # -- security ---------------------------------------------------------------------------
    @property
    def security_on(self) -> bool:
        return bool(self.items["auth_configs"])

    def _who(self, request: Request) -> tuple[int, dict, dict] | str | None:
        """The user, None for anonymous-while-off, or a refusal to send back."""
        credentials = request.basic_auth
        if not self.security_on:
            if credentials:
                return 401, {"message": "Basic authentication credentials are not required, since security has "
                                        "been disabled on this server."}, {}
            return None
        if not credentials:
            return 401, {"message": "You are not authenticated!"}, CHALLENGE
        user, password = credentials
        if self.users.get(user) != password:
            return 401, {"message": "Invalid credentials. Either your username and password are incorrect, or there "
                                    "is a problem with your browser cookies. Please check with your "
                                    "administrator."}, CHALLENGE
        admins = self.system_admins["users"]
        if admins and user not in admins:
            return 403, {"message": "You are not authorized to access this resource!"}, {}
        return user

    def _guarded(self, accept: str, handler):
        def serve(request: Request):
            who = self._who(request)
            self.requests.append((request.method, request.path, who if isinstance(who, str) else None))
            if isinstance(who, tuple):
                return who
            if request.headers.get("Accept") != accept:
                return 404, b"The url you have requested is not available", {"Content-Type": "text/plain"}
            if request.method in ("POST", "PUT") and request.headers.get("Content-Type") != "application/json":
                return 415, {"message": "You must specify a 'Content-Type' of 'application/json'"}, {}
            with self.lock:
                return handler(request)
        return serve

    # -- handlers -----------------------------------------------------------------------------
    def _health(self, request: Request):
        if request.basic_auth and not self.security_on:
            return 401, {"message": "Basic authentication credentials are not required, since security has been "
                                    "disabled on this server."}, {}
        if not self.healthy or self.starting_answers > 0:
            self.starting_answers -= 1
            return 503, {"health": "Server is starting"}
        return 200, {"health": "OK"}

    def _represent(self, name: str, item: dict) -> dict:
        shown = copy.deepcopy(item)
        shown["_links"] = {"self": {"href": f"http://gocd{COLLECTIONS[name][0]}/{item[KEYS.get(name, 'id')]}"}}
        if name == "pipeline_groups":
            shown.setdefault("pipelines", [])
        if name == "config_repos":
            attributes = shown["material"]["attributes"]
            attributes.setdefault("name", None)
            attributes.setdefault("username", None)
        return shown

    def _get(self, name: str, request: Request):
        item = self.items[name].get(request.match["id"])
        if item is None:
            return 404, {"message": "Either the resource you requested was not found, or you are not authorized "
                                    "to perform this action."}
        return 200, self._represent(name, item), {"ETag": etag_of(item)}

    def _create(self, name: str, request: Request):
        body = request.json
        item_id = body[KEYS.get(name, "id")]
        if item_id in self.create_race:
            self.create_race.discard(item_id)
            theirs = copy.deepcopy(body)  # someone else's copy, a little different from ours
            theirs.get("material", {}).get("attributes", {})["branch"] = "master"
            self.items[name][item_id] = theirs
        if item_id in self.items[name]:
            return 422, {"message": f"Failed to add {name[:-1]} '{item_id}'. Another {name[:-1]} with the same "
                                    f"name already exists.", "data": body}
        self.items[name][item_id] = body
        self.writes.append(("POST", f"{COLLECTIONS[name][0]}/{item_id}"))
        return 200, self._represent(name, body), {"ETag": etag_of(body)}

    def _update(self, name: str, request: Request):
        item_id = request.match["id"]
        current = self.items[name].get(item_id)
        if current is None:
            return 404, {"message": "Either the resource you requested was not found, or you are not authorized."}
        if self.forced_412 > 0:
            self.forced_412 -= 1
            current["touched"] = current.get("touched", 0) + 1  # someone else's edit changes the ETag
        if request.headers.get("If-Match") != etag_of(current):
            return 412, {"message": "Someone has modified the configuration for this resource. Please update your "
                                    "copy of the config with the changes and try again."}
        body = request.json
        if body.get(KEYS.get(name, "id")) != item_id:
            return 422, {"message": "Renaming of the resource is not supported by this API."}
        self.items[name][item_id] = body
        self.writes.append(("PUT", f"{COLLECTIONS[name][0]}/{item_id}"))
        return 200, self._represent(name, body), {"ETag": etag_of(body)}

    def _get_admins(self, request: Request):
        return 200, self.system_admins | {"_links": {}}, {"ETag": etag_of(self.system_admins)}

    def _put_admins(self, request: Request):
        if request.headers.get("If-Match") != etag_of(self.system_admins):
            return 412, {"message": "Someone has modified the configuration for this resource."}
        self.system_admins = {"roles": request.json.get("roles", []), "users": request.json.get("users", [])}
        self.writes.append(("PUT", SYSTEM_ADMINS[0]))
        return 200, self.system_admins, {"ETag": etag_of(self.system_admins)}

    def _set_site_urls(self, request: Request):
        body = {k: v for k, v in request.json.items() if k in ("site_url", "secure_site_url") and v}
        if body.get("secure_site_url", "https://").split("://")[0] != "https":
            return 422, {"message": "Secure site url must start with https"}
        self.site_urls = body
        self.writes.append((request.method, SITE_URLS[0]))
        return 200, dict(body)

    def _internal_repos(self, request: Request):
        repos = []
        for repo in self.items["config_repos"].values():
            error = self.parse_errors.get(repo["id"])
            modification = {"revision": "0123abc", "comment": "model", "modified_time": "2026-11-23T10:00:00Z"}
            repos.append(self._represent("config_repos", repo) | {
                "material_update_in_progress": False,
                "parse_info": {"error": error, "good_modification": None if error else modification,
                               "latest_parsed_modification": modification}})
        return 200, {"_embedded": {"config_repos": repos}, "auto_completion": []}
