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
from http_standin import BackgroundServer, HttpStandIn, Request, authorized

UNAUTHORIZED = (401, {"error": {"type": "security_exception", "reason": "unable to authenticate user"}})


class ElasticsearchStandIn(HttpStandIn):
    """`_cluster/health`, `_bulk`, `_search` and `_delete_by_query` over in-memory indices."""

    def __init__(self, users: dict[str, str]):
        super().__init__()
        self.users = users
        self.status = "green"
        self.indices: dict[str, list[dict]] = {}
        self.lock = threading.Lock()
        self.route("GET", "/_cluster/health", self._health)
        self.route("POST", "/_bulk", self._bulk)
        self.route("POST", r"/([^/_][^/]*)/_search", self._search)
        self.route("POST", r"/([^/_][^/]*)/_delete_by_query", self._delete)

    def _health(self, request: Request):
        if not authorized(request, self.users):
            return UNAUTHORIZED
        return 200, {"status": self.status, "number_of_nodes": 1, "unassigned_shards": 0 if self.status != "red" else 3}

    def _bulk(self, request: Request):
        if not authorized(request, self.users):
            return UNAUTHORIZED
        lines = [json.loads(line) for line in request.body.decode().splitlines() if line.strip()]
        with self.lock:
            for action, document in zip(lines[::2], lines[1::2], strict=True):
                meta = action.get("index") or action.get("create")
                self.indices.setdefault(meta["_index"], []).append(document)
        return 200, {"errors": False, "items": []}

    def _matching(self, pattern: str, query: dict) -> list[dict]:
        phrase = query.get("query", {}).get("match_phrase", {})
        with self.lock:
            docs = [d for name, docs in self.indices.items() if fnmatch.fnmatch(name, pattern) for d in docs]
        return [d for d in docs if all(d.get(k) == v for k, v in phrase.items())]

    def _search(self, request: Request):
        if not authorized(request, self.users):
            return UNAUTHORIZED
        hits = self._matching(request.match.group(1), request.json)
        return 200, {"hits": {"total": {"value": len(hits), "relation": "eq"}, "hits": [{"_source": h} for h in hits]}}

    def _delete(self, request: Request):
        if not authorized(request, self.users):
            return UNAUTHORIZED
        doomed = self._matching(request.match.group(1), request.json)
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
    """`/api/status` (core.elasticsearch from its own association) and `/api/console/proxy`."""

    def __init__(self, association: Connection):
        super().__init__()
        self.association = association
        self.route("GET", "/api/status", self._status)
        self.route("POST", "/api/console/proxy", self._proxy)

    def _es_level(self) -> str:
        try:
            answer = requests.get(f"{self.association.url}/_cluster/health", timeout=2,
                                  auth=(self.association.username, self.association.password))
            return "available" if answer.status_code == 200 else "unavailable"
        except requests.RequestException:
            return "unavailable"

    def _status(self, request: Request):
        level = self._es_level()
        overall = "available" if level == "available" else "critical"
        return 200, {"status": {"overall": {"level": overall}, "core": {"elasticsearch": {"level": level}}}}

    def _proxy(self, request: Request):
        if request.headers.get("kbn-xsrf") is None:
            return 400, {"message": "Request must contain a kbn-xsrf header."}
        try:
            # Console runs as the logged-in user, against Kibana's configured Elasticsearch.
            answer = requests.post(self.association.url + request.query["path"], data=request.body, timeout=2,
                                   auth=request.basic_auth, headers={"Content-Type": "application/json"})
        except requests.RequestException as failure:
            return 502, {"message": str(failure)}
        return answer.status_code, answer.content


class GrafanaStandIn(HttpStandIn):
    """`/api/health`, datasources by uid with their health, and `/api/ds/query` counts."""

    def __init__(self, admin: tuple[str, str], datasources: dict[str, tuple[Connection, str]]):
        super().__init__()
        self.admin = {admin[0]: admin[1]}
        self.datasources = datasources  # uid -> (connection, index pattern)
        self.route("GET", "/api/health", lambda r: (200, {"database": "ok", "version": "stand-in"}))
        self.route("GET", r"/api/datasources/uid/([^/]+)", self._datasource)
        self.route("GET", r"/api/datasources/uid/([^/]+)/health", self._datasource_health)
        self.route("POST", "/api/ds/query", self._query)

    def _search(self, uid: str, body: dict) -> requests.Response:
        connection, index = self.datasources[uid]
        return requests.post(f"{connection.url}/{index}/_search", json=body, timeout=2,
                             auth=(connection.username, connection.password))

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
        except requests.RequestException as failure:
            return 500, {"message": str(failure)}
        if answer.status_code != 200:
            return 500, {"results": {"A": {"error": f"status {answer.status_code}"}}}
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

    def _ship(self, record: dict) -> None:
        if self.drop:
            return
        index = f"{self.index_prefix}-{datetime.date.today():%Y.%m.%d}"
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
                        stand_in._ship(message[2])
                    return
                unpacker = msgpack.Unpacker(raw=False, ext_hook=lambda code, data: data)
                chunk = first
                while chunk:
                    unpacker.feed(chunk)
                    for message in unpacker:
                        if isinstance(message, list) and len(message) >= 3 and isinstance(message[2], dict):
                            stand_in._ship(message[2])
                    chunk = self.request.recv(65536)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        server = socketserver.ThreadingTCPServer(("127.0.0.1", self.port), _Handler)
        server.daemon_threads = True
        self._serve(server)
        return self
