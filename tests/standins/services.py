"""Stand-ins for Elasticsearch, Kibana, Grafana, GoCD and Fluentd's forward input, built from the
documented API calls the smoke checks make. Each is configured the way the kit configures the real
service (the consumer's URL and credentials), so wiring faults can be injected where they happen."""

from __future__ import annotations

import datetime
import fnmatch
import json
import socketserver
import threading
from dataclasses import dataclass, field

import msgpack
import requests
from es_security import Security
from http_standin import BackgroundServer, HttpStandIn, Request, authorized

UNAUTHORIZED = (401, {"error": {"type": "security_exception", "reason": "unable to authenticate user"}})


def normalized_settings(settings: dict) -> dict:
    """What Elasticsearch hands back for index settings: dotted keys nested under `index`, values
    as strings (`{"index": {"number_of_replicas": "0", "lifecycle": {"name": ...}}}`)."""
    nested: dict = {}
    for key, value in _flatten(settings).items():
        parts = key.split(".")
        if parts[0] != "index":
            parts.insert(0, "index")
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = str(value).lower() if isinstance(value, bool) else str(value)
    return nested


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def not_found(kind: str, name: str):
    return 404, {"error": {"type": "resource_not_found_exception", "reason": f"{kind} [{name}] not found"},
                 "status": 404}


class ElasticsearchStandIn(HttpStandIn):
    """`_cluster/health`, `_bulk`, `_search`, `_delete_by_query` over in-memory indices, and the
    lifecycle-policy and index-template APIs (answers shaped like Elasticsearch 8's: settings
    come back normalized, a policy's delete action gains its default)."""

    service = "elasticsearch"

    def __init__(self, users: dict[str, str], security: Security):
        super().__init__()
        self.users = users
        self.security = security
        self.status = "green"
        self.indices: dict[str, list[dict]] = {}
        self.policies: dict[str, dict] = {}
        self.templates: dict[str, dict] = {}
        self.writes: list[str] = []
        self.lock = threading.Lock()
        self.route("GET", "/_cluster/health", self._health)
        self.route("POST", "/_bulk", self._bulk)
        self.route("POST", r"/([^/_][^/]*)/_search", self._search)
        self.route("POST", r"/([^/_][^/]*)/_delete_by_query", self._delete)
        self.route("GET", r"/_ilm/policy/([^/]+)", self._get_policy)
        self.route("PUT", r"/_ilm/policy/([^/]+)", self._put_policy)
        self.route("GET", r"/_index_template/([^/]+)", self._get_template)
        self.route("PUT", r"/_index_template/([^/]+)", self._put_template)
        self.route("POST", "/_security/user/_has_privileges", self._has_privileges)

    def _has_privileges(self, request: Request):
        """Whether the caller's roles grant each index privilege on each name asked for (no privilege of its
        own is needed). A requested pattern is granted when a role's pattern covers it: here, when it
        matches it as a name (a simpler check than Elasticsearch's automaton subset; exact for the kit's
        patterns)."""
        if not authorized(request, self.users):
            return 401, {"error": {"type": "security_exception", "reason": "unable to authenticate user"}, "status": 401}
        user = request.basic_auth[0]
        asked = request.json.get("index", [])
        index = {name: {privilege: self.security.index_allows(user, name, privilege)
                        for privilege in entry["privileges"]} for entry in asked for name in entry["names"]}
        return 200, {"username": user, "has_all_requested": all(v for p in index.values() for v in p.values()),
                     "cluster": {}, "index": index, "application": {}}

    def _refused(self, request: Request, action: str | None = None):
        """401 for a wrong password; 403 when the user's roles lack the cluster privilege for `action`."""
        if not authorized(request, self.users):
            return UNAUTHORIZED
        user = request.basic_auth[0]
        if action and not self.security.cluster_allows(user, action):
            return self.security.refusal(user, action)
        return None

    def _get_policy(self, request: Request):
        if refused := self._refused(request, "cluster:admin/ilm/get"):
            return refused
        name = request.match.group(1)
        if name not in self.policies:
            return not_found("policy", name)
        return 200, {name: {"version": 1, "modified_date": "2026-11-23T10:00:00.000Z", "policy": self.policies[name],
                            "in_use_by": {"indices": [], "data_streams": [], "composable_templates": []}}}

    def _put_policy(self, request: Request):
        if refused := self._refused(request, "cluster:admin/ilm/put"):
            return refused
        policy = request.json["policy"]
        for phase in policy.get("phases", {}).values():
            if "delete" in phase.get("actions", {}):
                phase["actions"]["delete"].setdefault("delete_searchable_snapshot", True)
        self.policies[request.match.group(1)] = policy
        self.writes.append(request.path)
        return 200, {"acknowledged": True}

    def _get_template(self, request: Request):
        if refused := self._refused(request, "indices:admin/index_template/get"):
            return refused
        name = request.match.group(1)
        if name not in self.templates:
            return not_found("index template matching", name)
        return 200, {"index_templates": [{"name": name, "index_template": self.templates[name]}]}

    def _put_template(self, request: Request):
        if refused := self._refused(request, "indices:admin/index_template/put"):
            return refused
        template = request.json
        if "settings" in template.get("template", {}):
            template["template"]["settings"] = normalized_settings(template["template"]["settings"])
        template.setdefault("composed_of", [])
        self.templates[request.match.group(1)] = template
        self.writes.append(request.path)
        return 200, {"acknowledged": True}

    def _health(self, request: Request):
        if refused := self._refused(request, "cluster:monitor/health"):
            return refused
        return 200, {"status": self.status, "number_of_nodes": 1, "unassigned_shards": 0 if self.status != "red" else 3}

    def _bulk(self, request: Request):
        """Each item authorized on its own (index or create on the index, create_index when it is new):
        a refused item is a 403 in `items`, the request itself a 200 with `"errors": true`."""
        if refused := self._refused(request):
            return refused
        user = request.basic_auth[0]
        if not self.security.may_write_somewhere(user):
            return self.security.refusal(user, "indices:data/write/bulk")
        lines = [json.loads(line) for line in request.body.decode().splitlines() if line.strip()]
        items = []
        with self.lock:
            for action, document in zip(lines[::2], lines[1::2], strict=True):
                operation = "index" if "index" in action else "create"
                index = action[operation]["_index"]
                needs = [operation] + ([] if index in self.indices else ["create_index"])
                missing = [n for n in needs if not self.security.index_allows(user, index, n)]
                if missing:
                    _, error = self.security.refusal(
                        user, "indices:admin/auto_create" if missing[0] == "create_index"
                        else f"indices:data/write/bulk[s] ({operation}) on [{index}]")
                    items.append({operation: {"_index": index, "status": 403, "error": error["error"]}})
                    continue
                self.indices.setdefault(index, []).append(document)
                items.append({operation: {"_index": index, "status": 201, "result": "created"}})
        return 200, {"errors": any(i[next(iter(i))]["status"] >= 400 for i in items), "items": items}

    def _matching(self, pattern: str, query: dict, user: str, operation: str = "read") -> list[dict]:
        """Documents of the indices `pattern` names that the user may `operation`: a wildcard resolves to
        the authorized indices only, as Elasticsearch's security resolves it."""
        phrase = query.get("query", {}).get("match_phrase", {})
        with self.lock:
            docs = [d for name, docs in self.indices.items() if fnmatch.fnmatch(name, pattern)
                    and self.security.index_allows(user, name, operation) for d in docs]
        return [d for d in docs if all(d.get(k) == v for k, v in phrase.items())]

    def _search(self, request: Request):
        if refused := self._refused(request):
            return refused
        user = request.basic_auth[0]
        pattern = request.match.group(1)
        if "*" not in pattern and not self.security.index_allows(user, pattern, "read"):
            return self.security.refusal(user, f"indices:data/read/search on [{pattern}]")
        hits = self._matching(pattern, request.json, user)
        return 200, {"hits": {"total": {"value": len(hits), "relation": "eq"}, "hits": [{"_source": h} for h in hits]}}

    def _delete(self, request: Request):
        if refused := self._refused(request):
            return refused
        doomed = self._matching(request.match.group(1), request.json, request.basic_auth[0], "delete")
        with self.lock:
            for docs in self.indices.values():
                docs[:] = [d for d in docs if d not in doomed]
        return 200, {"deleted": len(doomed)}


@dataclass
class Connection:
    """How a consumer reaches Elasticsearch: what the kit configures (URL, user, password)."""

    url: str
    username: str
    password: str = field(repr=False)


class KibanaStandIn(HttpStandIn):
    """`/api/status` (core.elasticsearch from its own association), `/api/console/proxy`, and the
    data views API (writes need `kbn-xsrf`; a view comes back with fields of Kibana's own)."""

    service = "kibana"

    def __init__(self, association: Connection, users: dict[str, str] | None = None):
        super().__init__()
        self.association = association
        self.users = users
        self.data_views: dict[str, dict] = {}
        self.default_view: str | None = None
        self.plugin_levels: dict[str, str] = {"taskManager": "available"}
        """Plugins' own levels; the task manager goes `degraded` by itself on a busy machine."""
        self.writes: list[str] = []
        self.route("GET", "/api/status", self._status)
        self.route("POST", "/api/console/proxy", self._proxy)
        self.route("GET", r"/api/data_views/data_view/([^/]+)", self._get_view)
        self.route("POST", "/api/data_views/data_view", self._create_view)
        self.route("POST", r"/api/data_views/data_view/([^/]+)", self._update_view)
        self.route("GET", "/api/data_views/default", self._get_default)
        self.route("POST", "/api/data_views/default", self._set_default)

    def _refusal(self, request: Request, write: bool = False):
        if self.users is not None and not authorized(request, self.users):
            return 401, {"statusCode": 401, "error": "Unauthorized", "message": "Unauthorized"}
        if write and request.headers.get("kbn-xsrf") is None:
            return 400, {"statusCode": 400, "error": "Bad Request",
                         "message": "Request must contain a kbn-xsrf header."}
        return None

    def _shown(self, view: dict) -> dict:
        return view | {"version": "WzEsMV0=", "fields": {}, "sourceFilters": [], "allowNoIndex": False,
                       "namespaces": ["default"]}

    def _get_view(self, request: Request):
        if refused := self._refusal(request):
            return refused
        view = self.data_views.get(request.match.group(1))
        if view is None:
            return 404, {"statusCode": 404, "error": "Not Found",
                         "message": f"Saved object [index-pattern/{request.match.group(1)}] not found"}
        return 200, {"data_view": self._shown(view)}

    def _create_view(self, request: Request):
        if refused := self._refusal(request, write=True):
            return refused
        view = request.json["data_view"]
        if view.get("id") in self.data_views:
            return 400, {"statusCode": 400, "error": "Bad Request", "message": f"Duplicate data view: {view['title']}"}
        self.data_views[view["id"]] = view
        self.writes.append(f"create {view['id']}")
        return 200, {"data_view": self._shown(view)}

    def _update_view(self, request: Request):
        if refused := self._refusal(request, write=True):
            return refused
        view_id = request.match.group(1)
        if view_id not in self.data_views:
            return 404, {"statusCode": 404, "error": "Not Found", "message": "not found"}
        changes = request.json["data_view"]
        if "id" in changes:
            return 400, {"statusCode": 400, "error": "Bad Request",
                         "message": "[request body.data_view.id]: definition for this key is missing"}
        self.data_views[view_id] = self.data_views[view_id] | changes
        self.writes.append(f"update {view_id}")
        return 200, {"data_view": self._shown(self.data_views[view_id])}

    def _get_default(self, request: Request):
        if refused := self._refusal(request):
            return refused
        return 200, {"data_view_id": self.default_view or ""}

    def _set_default(self, request: Request):
        if refused := self._refusal(request, write=True):
            return refused
        self.default_view = request.json["data_view_id"]
        self.writes.append(f"default {self.default_view}")
        return 200, {"acknowledged": True}

    def _es_level(self) -> str:
        try:
            answer = requests.get(f"{self.association.url}/_cluster/health", timeout=2,
                                  auth=(self.association.username, self.association.password))
            return "available" if answer.status_code == 200 else "unavailable"
        except requests.RequestException:
            return "unavailable"

    LEVELS = ("available", "degraded", "unavailable", "critical")

    def _status(self, request: Request):
        """Core services from the association, plugins as set (`plugin_levels`); overall is the worst of
        all (status_service.ts, get_summary_status.ts); HTTP 503 when a core service is unavailable or
        worse, else 200, however degraded a plugin is (status.ts l.150)."""
        if refused := self._refusal(request):
            return refused
        level = self._es_level()
        core = {"elasticsearch": {"level": level},
                "savedObjects": {"level": "available" if level == "available" else "unavailable"}}
        plugins = {name: {"level": plugin_level} for name, plugin_level in self.plugin_levels.items()}
        overall = max([c["level"] for c in core.values()] + [p["level"] for p in plugins.values()],
                      key=self.LEVELS.index)
        body = {"status": {"overall": {"level": overall}, "core": core, "plugins": plugins}}
        core_down = any(self.LEVELS.index(c["level"]) >= 2 for c in core.values())
        return (503 if core_down else 200), body

    def _proxy(self, request: Request):
        """Console runs the request as the caller (its own Authorization header) against Kibana's
        Elasticsearch; Elasticsearch's status travels in `x-console-proxy-status-code` and the answer is
        200 whatever it is; 502 only when Elasticsearch cannot be reached (create_handler.ts l.135-176)."""
        if request.headers.get("kbn-xsrf") is None:
            return 400, {"message": "Request must contain a kbn-xsrf header."}
        try:
            answer = requests.request(request.query.get("method", "GET"), self.association.url + request.query["path"],
                                      data=request.body, timeout=2, auth=request.basic_auth,
                                      headers={"Content-Type": "application/json"})
        except requests.RequestException as failure:
            return 502, {"statusCode": 502, "error": "Bad Gateway", "message": str(failure)}
        return 200, answer.content, {"x-console-proxy-status-code": str(answer.status_code),
                                     "x-console-proxy-status-text": answer.reason or ""}


class GrafanaStandIn(HttpStandIn):
    """`/api/health`, datasources by uid with their health, `/api/ds/query` counts, and the
    provisioned dashboards by uid."""

    service = "grafana"

    def __init__(self, admin: tuple[str, str], datasources: dict[str, tuple[Connection, str]],
                 dashboards: list[dict] | None = None):
        super().__init__()
        self.admin = {admin[0]: admin[1]}
        self.datasources = datasources  # uid -> (connection, index pattern)
        self.dashboards = {d["uid"]: d for d in dashboards or []}
        self.users: dict[str, dict] = {}
        self.route("GET", r"/api/dashboards/uid/([^/]+)", self._dashboard)
        self.route("GET", "/api/users/lookup", self._lookup_user)
        self.route("POST", "/api/admin/users", self._create_user)
        self.route("GET", "/api/health", lambda r: (200, {"database": "ok", "version": "stand-in"}))
        self.route("GET", "/api/user", self._signed_in_user)
        # Signed out, the front page sends the browser to the login page (pkg/middleware/auth.go).
        self.route("GET", "/", lambda r: (302, b"", {"Location": "/login", "Content-Type": "text/html"}))
        self.route("GET", r"/api/datasources/uid/([^/]+)", self._datasource)
        self.route("GET", r"/api/datasources/uid/([^/]+)/health", self._datasource_health)
        self.route("POST", "/api/ds/query", self._query)

    def _search(self, uid: str, body: dict) -> requests.Response:
        connection, index = self.datasources[uid]
        return requests.post(f"{connection.url}/{index}/_search", json=body, timeout=2,
                             auth=(connection.username, connection.password))

    def _lookup_user(self, request: Request):
        if not authorized(request, self.admin):
            return 401, {"message": "Unauthorized"}
        user = self.users.get(request.query.get("loginOrEmail", ""))
        return (200, {k: v for k, v in user.items() if k != "password"}) if user else (
            404, {"message": "user not found"})

    def _signed_in_user(self, request: Request):
        """The caller, as Grafana answers GET /api/user (pkg/api/user.go GetSignedInUser: a UserProfileDTO)."""
        logins = {**self.admin, **{login: user.get("password") for login, user in self.users.items()}}
        if not authorized(request, logins):
            return 401, {"message": "Unauthorized"}
        login = request.basic_auth[0]
        found = self.users.get(login, {"id": 1, "login": login, "role": "Admin"})
        return 200, {"id": found["id"], "login": login, "email": found.get("email", ""), "name": found.get("name", ""),
                     "isGrafanaAdmin": login in self.admin, "orgId": 1}

    def _create_user(self, request: Request):
        if not authorized(request, self.admin):
            return 401, {"message": "Unauthorized"}
        body = request.json
        if body["login"] in self.users:
            return 412, {"message": "User with same login already exists"}
        if len(body.get("password", "")) < 4:
            return 400, {"message": "Password is too short"}
        self.users[body["login"]] = {**body, "id": len(self.users) + 2, "role": "Viewer"}
        return 200, {"id": len(self.users) + 1, "message": "User created"}

    def _dashboard(self, request: Request):
        if not authorized(request, self.admin):
            return 401, {"message": "Unauthorized"}
        dashboard = self.dashboards.get(request.match.group(1))
        if dashboard is None:
            return 404, {"message": "Dashboard not found"}
        return 200, {"dashboard": dashboard, "meta": {"provisioned": True, "folderTitle": "CD4ML"}}

    def _datasource(self, request: Request):
        if not authorized(request, self.admin):
            return 401, {"message": "Unauthorized"}
        uid = request.match.group(1)
        if uid not in self.datasources:
            return 404, {"message": "Data source not found"}
        return 200, {"uid": uid, "type": "elasticsearch", "url": self.datasources[uid][0].url}

    def _datasource_health(self, request: Request):
        uid = request.match.group(1)
        if uid not in self.datasources:
            return 404, {"message": "Data source not found"}
        try:
            answer = self._search(uid, {"size": 0})
        except requests.RequestException as failure:
            return 400, {"status": "ERROR", "message": f"dial: {failure.__class__.__name__}"}
        if answer.status_code != 200:
            return 400, {"status": "ERROR", "message": f"Elasticsearch error: status {answer.status_code}"}
        return 200, {"status": "OK", "message": "Elasticsearch data source is healthy."}

    def _query(self, request: Request):
        query = request.json["queries"][0]
        field_name, _, value = query["query"].partition(":")
        try:
            phrase = {"query": {"match_phrase": {field_name: value.strip('"')}}}
            answer = self._search(query["datasource"]["uid"], phrase)
        except requests.RequestException as failure:  # a failed query is a 400 (pkg/api/ds_query.go)
            return 400, {"results": {"A": {"error": str(failure), "status": 400}}}
        if answer.status_code != 200:
            return 400, {"results": {"A": {"error": f"status {answer.status_code}", "status": 400}}}
        count = answer.json()["hits"]["total"]["value"]
        frame = {"data": {"values": [[0], [count]]}}
        return 200, {"results": {"A": {"status": 200, "frames": [frame]}}}


class ForwardStandIn(BackgroundServer):
    """Fluentd's forward input (msgpack over TCP) and an Elasticsearch output with the kit's index
    naming. `drop=True` accepts events and forwards nothing (the 'accepted but lost' fault)."""

    def __init__(self, output: Connection, index_prefix: str, drop: bool = False):
        super().__init__()
        self.output, self.index_prefix, self.drop = output, index_prefix, drop

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def _ship(self, tag: str, record: dict) -> None:
        """Like the kit's Fluentd output: `<prefix>-<first tag part>-<date>` (logstash_prefix ${tag[0]})."""
        if self.drop:
            return
        index = f"{self.index_prefix}-{tag.split('.')[0]}-{datetime.date.today():%Y.%m.%d}"
        body = json.dumps({"index": {"_index": index}}) + "\n" + json.dumps(record) + "\n"
        try:
            requests.post(f"{self.output.url}/_bulk", data=body, timeout=2,
                          auth=(self.output.username, self.output.password),
                          headers={"Content-Type": "application/x-ndjson"})
        except requests.RequestException:
            pass  # like Fluentd: the chunk is retried later, here simply lost

    def start(self) -> ForwardStandIn:
        stand_in = self

        class _Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                first = self.request.recv(65536)
                if first.startswith(b"["):  # in_forward also takes JSON: [tag, time, record]
                    data = first
                    while chunk := self.request.recv(65536):
                        data += chunk
                    message = json.loads(data)
                    if isinstance(message[2], dict):
                        stand_in._ship(message[0], message[2])
                    return
                unpacker = msgpack.Unpacker(raw=False, ext_hook=lambda code, data: data)
                chunk = first
                while chunk:
                    unpacker.feed(chunk)
                    for message in unpacker:
                        if isinstance(message, list) and len(message) >= 3 and isinstance(message[2], dict):
                            stand_in._ship(message[0], message[2])
                    chunk = self.request.recv(65536)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        server = socketserver.ThreadingTCPServer(("127.0.0.1", self.port), _Handler)
        server.daemon_threads = True
        self._serve(server)
        return self
