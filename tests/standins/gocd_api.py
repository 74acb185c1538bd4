"""A stand-in for the GoCD 26.1 server APIs the kit calls: it is not GoCD. Built from gocd/gocd at tag
26.1.0 and the Spark 2.9.4 it pins (a second reading, with file:line evidence, is in the closing note
of issue #14); each request passes the stages a real request passes, in GoCD's order
(`server/src/main/webapp/WEB-INF/web.xml`):

1. Security (Spring filters, on the original path, before any routing): while security is off,
   Basic credentials get 401 "credentials are not required" with no challenge, on every /api/**
   path, health too (`AbstractBasicAuthenticationFilter.java` l.108-117). Once on: anonymous gets
   401 with `WWW-Authenticate: Basic realm="GoCD"` (health excepted: allow-all,
   `AuthorizeFilterChain.java` l.61-65), a wrong password 401 (health too), a non-admin on a
   supervisor path (`/api/admin/**` but for the user-level paths listed before it) 403, with the
   challenge as well. Security is on as soon as one auth config exists (`SecurityConfig.java` l.42-44);
   with no admin named, every logged-in user is an admin (l.63-65).
2. `SparkPreFilter` (l.46-80): on every API path but a few (health among them), the Accept header
   must be exactly one of GoCD's media types, else 404 text/plain.
3. Spark's route choice by Accept (`spark_routing.py`, a port of Spark's MimeParse): a registered
   version or the unversioned alias of the newest, else Spark's HTML 404.
4. The controller: `verifyContentType` (415) on pipeline groups, config repos and system admins
   only; create answers 200 with a quoted ETag, a taken id 422; update needs `If-Match` (412).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import requests
from http_standin import HttpStandIn, Request
from spark_routing import LATEST_VERSION_MIMETYPE, gocd_media_types, pick

COLLECTIONS = {
    "cluster_profiles": ("/go/api/admin/elastic/cluster_profiles", "application/vnd.go.cd.v1+json"),
    "elastic_profiles": ("/go/api/elastic/profiles", "application/vnd.go.cd.v2+json"),
    "config_repos": ("/go/api/admin/config_repos", "application/vnd.go.cd.v4+json"),
    "auth_configs": ("/go/api/admin/security/auth_configs", "application/vnd.go.cd.v2+json"),
    "pipeline_groups": ("/go/api/admin/pipeline_groups", "application/vnd.go.cd.v1+json"),
}
"""Each path's only registered version in 26.1.0 (ClusterProfilesControllerV1, ElasticProfileControllerV2,
ConfigReposControllerV4, SecurityAuthConfigControllerV2, PipelineGroupsControllerV1)."""
KEYS = {"pipeline_groups": "name"}
"""Pipeline groups are addressed by name; everything else by id."""
ENTITY_NAMES = {"cluster_profiles": "Cluster Profile", "elastic_profiles": "elasticProfile",
                "config_repos": "config-repo", "auth_configs": "security auth config",
                "pipeline_groups": "pipeline group"}
"""How each controller names its entity in a 422 (HaltApiMessages.java l.34-36)."""
CHECKS_CONTENT_TYPE = {"config_repos", "pipeline_groups"}
"""Controllers that run verifyContentType (ApiController.java l.77-91); system admins too."""
SYSTEM_ADMINS = ("/go/api/admin/security/system_admins", "application/vnd.go.cd.v2+json")
SITE_URLS = ("/go/api/admin/config/server/site_urls", "application/vnd.go.cd.v1+json")
"""GoCD 19.11+ (ServerSiteUrlsConfigControllerV1): admin only, GET, and POST or PUT to create or update,
without ETags; an empty config omits both URLs."""
HEALTH = ("/go/api/v1/health", "application/vnd.go.cd.v1+json")
CURRENT_USER = ("/go/api/current_user", "application/vnd.go.cd.v1+json")
"""CurrentUserController (api-current-user-v1) l.60-71: GET for any non-anonymous user; UserRepresenter
l.24-31 with UserSummaryRepresenter's login_name. The user exists: the plugin's authentication added it
(AbstractPluginAuthenticationProvider l.122)."""
INTERNAL_CONFIG_REPOS = "/go/api/internal/config_repos"
SERVER_HEALTH_MESSAGES = "/go/api/server_health_messages"
CHALLENGE = {"WWW-Authenticate": 'Basic realm="GoCD"'}
PRE_FILTER_EXEMPT = ("/go/api/v1/health",)
"""Paths SparkPreFilter lets through whatever their Accept (l.46-53; only health among the kit's)."""
USER_LEVEL = ("/go/api/admin/elastic/cluster_profiles", "/go/api/admin/pipeline_groups", "/go/api/admin/config_repos",
              "/go/api/elastic/profiles", "/go/api/internal/")
"""Paths the security chain lets any logged-in user through (AuthorizeFilterChain.java l.91-106, before
`/api/admin/**` needs a supervisor at l.109); their controllers then refuse non-admins themselves."""
VALID_ACCEPTS = frozenset([LATEST_VERSION_MIMETYPE] + [f"application/vnd.go.cd.v{v}+json" for v in range(1, 12)])
"""ApiVersion.java l.27-36: what SparkPreFilter accepts, compared as whole strings."""
NOT_FOUND_PRE_FILTER = (404, b"The url you are trying to reach appears to be incorrect.\r\n",
                        {"Content-Type": "text/plain;charset=utf-8"})
NOT_FOUND_SPARK = (404, b"<html><body><h2>404 Not found</h2></body></html>", {"Content-Type": "text/html; charset=utf-8"})


def etag_of(item) -> str:
    return '"' + hashlib.sha256(json.dumps(item, sort_keys=True).encode()).hexdigest()[:32] + '"'


@dataclass(frozen=True)
class ApiRoute:
    method: str
    pattern: re.Pattern
    media_types: tuple[str, ...]
    handler: Callable[[Request], tuple]
    content_type_checked: bool = False


@dataclass
class GoCDApiStandIn(HttpStandIn):
    service = "gocd"
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
        self.refused_routes: list[tuple[str, str, str | None]] = []
        """Requests that reached no controller (method, path, Accept): GoCD's 404s."""
        self.admin_gaps: list[str] = []
        """Moments security was on with no admin named: every user an admin (SecurityConfig.isAdmin)."""
        self.forced_412: int = 0
        """PUTs to refuse with 412 as if someone else had just edited the item."""
        self.create_race: set[str] = set()
        """Ids someone else creates between our GET (404) and our POST (422)."""
        self.parse_errors: dict[str, str] = {}
        self.git_hosts: dict[str, str] = {}
        """In-cluster git server (base URL) -> where it answers here. GoCD clones a config repository from
        there with its material's login (ConfigMaterialUpdateListener, about once a minute; here, before each
        answer that shows the result)."""
        self.checking_materials = True
        """False: GoCD has not checked any material yet (just started): no parse result, no error."""
        self.parsed: set[str] = set()
        """Config repositories parsed once since start: GoCD keeps the result in memory and does not parse a
        repository again until it changes (ConfigReposMaterialParseResultManager l.50-55)."""
        self.material_errors: dict[str, tuple[str, str]] = {}
        """Repository id -> (message, detail) of the server health error its last failed check left."""
        self.api_routes: list[ApiRoute] = []
        self.api("GET", HEALTH[0], 1, self._health)
        for name, (path, accept) in COLLECTIONS.items():
            version = int(accept.split(".v")[1].split("+")[0])
            checked = name in CHECKS_CONTENT_TYPE
            self.api("GET", f"{path}/(?P<id>[^/]+)", version, lambda r, n=name: self._get(n, r))
            self.api("POST", path, version, lambda r, n=name: self._create(n, r), checked)
            self.api("PUT", f"{path}/(?P<id>[^/]+)", version, lambda r, n=name: self._update(n, r), checked)
        self.api("GET", SYSTEM_ADMINS[0], 2, self._get_admins)
        self.api("PUT", SYSTEM_ADMINS[0], 2, self._put_admins, content_type_checked=True)
        self.api("GET", SITE_URLS[0], 1, lambda r: (200, dict(self.site_urls)))
        for method in ("POST", "PUT"):
            self.api(method, SITE_URLS[0], 1, self._set_site_urls)
        self.api("GET", INTERNAL_CONFIG_REPOS, 4, self._internal_repos)
        self.api("GET", SERVER_HEALTH_MESSAGES, 1, self._health_messages)
        self.api("GET", CURRENT_USER[0], 1, self._current_user)
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            self.route(method, "/go/.*", self._through_the_pipeline)

    def api(self, method: str, path: str, version: int, handler, content_type_checked: bool = False) -> None:
        """A controller's route, registered for its version and (as its path's newest) the unversioned alias."""
        self.api_routes.append(ApiRoute(method, re.compile(f"^{path}$"), tuple(gocd_media_types([version])),
                                        handler, content_type_checked))

    # -- security ---------------------------------------------------------------------------
    @property
    def security_on(self) -> bool:
        return bool(self.items["auth_configs"])

    def _authenticate(self, request: Request) -> tuple[int, dict, dict] | str | None:
        """The user, None for anonymous, or the security chain's refusal."""
        credentials = request.basic_auth
        health = request.path.startswith(PRE_FILTER_EXEMPT)
        if not self.security_on:
            if credentials:
                return 401, {"message": "Basic authentication credentials are not required, since security has "
                                        "been disabled on this server."}, {}
            return None
        if not credentials:
            return None if health else (401, {"message": "You are not authenticated!"}, CHALLENGE)
        user, password = credentials
        if self.users.get(user) != password:
            return 401, {"message": "Invalid credentials. Either your username and password are incorrect, or there "
                                    "is a problem with your browser cookies. Please check with your "
                                    "administrator."}, CHALLENGE
        return user

    def is_admin(self, user: str | None) -> bool:
        admins = self.system_admins["users"]
        return not self.security_on or not admins or user in admins

    # -- the request pipeline ------------------------------------------------------------------
    def _through_the_pipeline(self, request: Request):
        if starting := self._starting(request):
            return starting
        who = self._authenticate(request)
        if isinstance(who, tuple):
            self.requests.append((request.method, request.path, None))
            return who
        self.requests.append((request.method, request.path, who))
        if (self.security_on and not self.is_admin(who) and request.path.startswith("/go/api/admin/")
                and not request.path.startswith(USER_LEVEL)):
            return 403, {"message": "You are not authorized to access this resource!"}, CHALLENGE
        accept = request.headers.get("Accept")
        if not request.path.startswith(PRE_FILTER_EXEMPT) and accept not in VALID_ACCEPTS:
            self.refused_routes.append((request.method, request.path, accept))
            return NOT_FOUND_PRE_FILTER
        candidates = [r for r in self.api_routes if r.method == request.method and r.pattern.match(request.path)]
        chosen = pick([t for r in candidates for t in r.media_types], accept)
        route = next((r for r in candidates if chosen in r.media_types), None)
        if route is None:
            self.refused_routes.append((request.method, request.path, accept))
            return NOT_FOUND_SPARK
        if route.handler == self._current_user and who is None:  # checkNonAnonymousUser
            return 401, {"message": "You are not authenticated!"}, CHALLENGE
        if self.security_on and not self.is_admin(who) and route.handler not in (self._health, self._current_user):
            return 403, {"message": "You are not authorized to perform this action."}, {}
        request.user = who
        if (route.content_type_checked and request.body
                and not (request.headers.get("Content-Type") or "").startswith("application/json")):
            return 415, {"message": "You must specify a 'Content-Type' of 'application/json'"}, {}
        request.match = route.pattern.match(request.path)
        with self.lock:
            answer = route.handler(request)
        if self.security_on and not self.system_admins["users"]:
            self.admin_gaps.append(f"{request.method} {request.path}")
        return answer

    # -- handlers -----------------------------------------------------------------------------
    def _current_user(self, request: Request):
        return 200, {"_links": {"self": {"href": f"/go/api/users/{request.user}"}}, "login_name": request.user,
                     "display_name": request.user, "enabled": True, "email": None, "email_me": False,
                     "checkin_aliases": []}

    def _starting(self, request: Request):
        """While the web app starts, Jetty answers every request 503 itself, before security or routing,
        its body chosen by the first Accept value (GoServerLoadingIndicationHandler.java l.65-81)."""
        if self.healthy and self.starting_answers <= 0:
            return None
        self.starting_answers -= 1
        if "json" in (request.headers.get("Accept") or "text/html").split(",")[0]:
            return 503, '{ "message": "GoCD server is starting" }\n'
        return 503, b"GoCD server is starting\n", {"Content-Type": "text/plain"}

    def _health(self, request: Request):
        return 200, {"health": "OK"}  # ServerHealthController.java l.56-58

    def _represent(self, name: str, item: dict) -> dict:
        shown = copy.deepcopy(item)
        shown["_links"] = {"self": {"href": f"http://gocd{COLLECTIONS[name][0]}/{item[KEYS.get(name, 'id')]}"}}
        if name == "pipeline_groups":
            shown.setdefault("pipelines", [])
        if name == "config_repos":
            attributes = shown["material"]["attributes"]
            attributes.setdefault("name", None)
            attributes.setdefault("username", None)
            # Taken as `password`, kept and shown only encrypted (GitMaterialRepresenter l.30, l.43-45).
            if "password" in attributes:
                attributes["encrypted_password"] = "AES:" + hashlib.sha256(attributes.pop("password").encode()).hexdigest()
            # The URL for display (GitMaterialRepresenter l.28): user:password@ becomes user:******@.
            attributes["url"] = re.sub(r"//([^/:@]+):[^/@]+@", r"//\1:******@", attributes["url"])
        return shown

    def _get(self, name: str, request: Request):
        item = self.items[name].get(request.match["id"])
        if item is None:
            return 404, {"message": "Either the resource you requested was not found, or you are not authorized "
                                    "to perform this action."}
        return 200, self._represent(name, item), {"ETag": etag_of(item)}

    @staticmethod
    def _material_refused(name: str, body: dict) -> tuple[int, dict] | None:
        """GoCD takes a material's `password` or its `encrypted_password`, never both (PasswordDeserializer
        l.30-34: a validation error on both fields, so the config repository is not saved)."""
        attributes = (body.get("material") or {}).get("attributes") or {} if name == "config_repos" else {}
        if attributes.get("password") and attributes.get("encrypted_password"):
            return 422, {"message": f"Validations failed for config-repo '{body.get('id')}'. Error(s): [You may only "
                                    "specify `password` or `encrypted_password`, not both!]. Please correct and "
                                    "resubmit.", "data": body}
        return None

    def _create(self, name: str, request: Request):
        body = request.json
        if refused := self._material_refused(name, body):
            return refused
        item_id = body[KEYS.get(name, "id")]
        if item_id in self.create_race:
            self.create_race.discard(item_id)
            theirs = copy.deepcopy(body)  # someone else's copy, a little different from ours
            theirs.get("material", {}).get("attributes", {})["branch"] = "master"
            self.items[name][item_id] = theirs
        if item_id in self.items[name]:
            entity = ENTITY_NAMES[name]
            return 422, {"message": f"Failed to add {entity} '{item_id}'. Another {entity} with the same name "
                                    "already exists.", "data": body}
        # After the id: an elastic profile must name an existing cluster profile (ElasticProfileControllerV2
        # l.131-133, l.211-220; haltBecauseOfReason is a 422, HaltApiResponses l.121-123).
        if name == "elastic_profiles" and body.get("cluster_profile_id") not in self.items["cluster_profiles"]:
            return 422, {"message": "No Cluster Profile exists with the specified cluster_profile_id "
                                    f"'{body.get('cluster_profile_id')}'."}
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
            return 412, {"message": "Someone has modified the entity. Please update your copy with the changes and "
                                    "try again."}
        body = request.json
        if refused := self._material_refused(name, body):
            return refused
        if body.get(KEYS.get(name, "id")) != item_id:
            return 422, {"message": "Renaming of the resource is not supported by this API."}
        self.items[name][item_id] = body
        self.writes.append(("PUT", f"{COLLECTIONS[name][0]}/{item_id}"))
        return 200, self._represent(name, body), {"ETag": etag_of(body)}

    def _get_admins(self, request: Request):
        return 200, self.system_admins | {"_links": {}}, {"ETag": etag_of(self.system_admins)}

    def _put_admins(self, request: Request):
        if request.headers.get("If-Match") != etag_of(self.system_admins):
            return 412, {"message": "Someone has modified the entity. Please update your copy with the changes and "
                                    "try again."}
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

    def _check_material(self, repo: dict) -> None:
        """One material check of a config repository on a git host: the clone's first request (the ref
        advertisement) with the material's login. A failure leaves GoCD's health error (MaterialDatabaseUpdater
        l.113-117: "Modification check failed for material: " + GitMaterial.getLongDescription l.215-217, the
        detail "Failed to run git clone command " + git's stderr, GitMaterial l.352-358, l.397); a success
        clears it (l.111) and, the first time, parses the repository."""
        attributes = repo["material"]["attributes"]
        base = next((b for b in self.git_hosts if attributes["url"].startswith(b + "/")), None)
        if base is None:  # a host this stand-in cannot reach: taken as parsed
            self.parsed.add(repo["id"])
            return
        url = self.git_hosts[base] + attributes["url"][len(base):] + "/info/refs?service=git-upload-pack"
        login = (attributes["username"], attributes.get("password", "")) if attributes.get("username") else None
        clone = f"Cloning into '/godata/pipelines/flyweight/{repo['id']}'...\n"
        try:
            answer = requests.get(url, auth=login, timeout=2)
        except requests.RequestException:
            host = attributes["url"].split("/")[2].split(":")[0]
            stderr = f"fatal: unable to access '{attributes['url']}/': Could not resolve host: {host}"
        else:
            if answer.status_code == 200:
                self.material_errors.pop(repo["id"], None)
                self.parsed.add(repo["id"])
                return
            stderr = f"remote: {answer.text.strip()}\n" + (
                f"fatal: Authentication failed for '{attributes['url']}/'" if answer.status_code == 401 else
                f"fatal: repository '{attributes['url']}/' not found")
        message = (f"Modification check failed for material: URL: {attributes['url']}, Branch: "
                   f"{attributes.get('branch', 'master')}\nNo pipelines affected, may only affect configuration "
                   "repositories.")
        self.material_errors[repo["id"]] = (message, f"Failed to run git clone command {clone}{stderr}")

    def check_materials(self) -> None:
        """A round of GoCD's material checks (each answer showing their results runs one first)."""
        if self.checking_materials:
            for repo in self.items["config_repos"].values():
                self._check_material(repo)

    def _health_messages(self, request: Request):
        self.check_materials()
        return 200, [{"message": message, "detail": detail, "level": "ERROR", "time": "2026-12-07T10:00:00Z"}
                     for message, detail in self.material_errors.values()]

    def _internal_repos(self, request: Request):
        """Each repository's parse_info as ConfigReposMaterialParseResultManager.get (l.50-71) gives it: the
        kept parse result once parsed (a later failed check does not change it); before that, the material's
        health error, upper-cased with its detail (l.104-115), with no modification; nothing at all ({}) while
        GoCD has not checked it."""
        self.check_materials()
        repos = []
        for repo in self.items["config_repos"].values():
            modification = {"username": "ada", "email_address": None, "revision": "0123abc", "comment": "model",
                            "modified_time": "2026-11-23T10:00:00Z"}
            error = self.parse_errors.get(repo["id"])
            failure = self.material_errors.get(repo["id"])
            if repo["id"] in self.parsed or error:
                parse_info = {"latest_parsed_modification": modification,
                              "good_modification": None if error else modification, "error": error}
            elif failure:
                parse_info = {"latest_parsed_modification": None, "good_modification": None,
                              "error": f"{failure[0].upper()}\n{failure[1]}"}
            else:
                parse_info = {}
            repos.append(self._represent("config_repos", repo) | {"material_update_in_progress": False,
                                                                  "parse_info": parse_info})
        return 200, {"_embedded": {"config_repos": repos}, "auto_completion": []}
