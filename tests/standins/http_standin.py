"""A tiny HTTP server on 127.0.0.1 for stand-ins: routes by method and path regex, checks basic auth.

Stand-ins implement only the documented API calls the smoke checks make, and can be put into the
broken states the checks must catch. They are not the services.
"""

from __future__ import annotations

import base64
import json
import re
import socketserver
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

Handler = Callable[["Request"], tuple]
"""Returns (status, payload) or (status, payload, headers)."""

CONTRACT_HEADERS = ("Accept", "Content-Type", "kbn-xsrf", "If-Match", "X-GoCD-Confirm")
"""The request headers a service routes or refuses on; recorded with each call (see tests/contracts)."""


@dataclass(frozen=True)
class Call:
    """One request a stand-in received, as the contract ledger describes calls."""

    service: str
    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    """The CONTRACT_HEADERS present, with their values."""


RECORDED: set[Call] = set()
"""Every call the stand-ins of this process received (tests/contracts/ledger.py checks them)."""
_FOREIGN = threading.Event()


@contextmanager
def foreign_calls() -> Iterator[None]:
    """Calls a test makes to try a stand-in itself (a wrong Accept, a missing header): not the kit's, so
    not recorded for the contract ledger."""
    _FOREIGN.set()
    try:
        yield
    finally:
        _FOREIGN.clear()


class Request:
    def __init__(self, method: str, path: str, query: dict[str, str], headers, body: bytes, match: re.Match):
        self.method, self.path, self.query, self.headers, self.body, self.match = (
            method, path, query, headers, body, match)

    @property
    def json(self) -> Any:
        return json.loads(self.body or b"{}")

    @property
    def basic_auth(self) -> tuple[str, str] | None:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return user, password


class BackgroundServer:
    """A socketserver on 127.0.0.1 served from a daemon thread; `stop()` frees the port again."""

    def __init__(self) -> None:
        self.server: socketserver.BaseServer | None = None
        self.port = 0

    def _serve(self, server: socketserver.BaseServer) -> None:
        self.server = server
        self.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


class HttpStandIn(BackgroundServer):
    """Subclasses add routes with `self.route(method, pattern, handler)` and name the `service` they stand
    in for; every request is recorded for the contract ledger."""

    service = ""

    def __init__(self) -> None:
        super().__init__()
        self.routes: list[tuple[str, re.Pattern, Handler]] = []

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        self.routes.append((method, re.compile(f"^{pattern}$"), handler))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> HttpStandIn:
        stand_in = self

        class _Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def _serve(self) -> None:
                parsed = urlparse(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
                if stand_in.service and not _FOREIGN.is_set():
                    RECORDED.add(Call(stand_in.service, self.command, parsed.path, tuple(
                        (name, self.headers[name]) for name in CONTRACT_HEADERS if name in self.headers)))
                for method, pattern, handler in stand_in.routes:
                    match = pattern.match(parsed.path)
                    if method == self.command and match:
                        answer = handler(Request(self.command, parsed.path, query, self.headers, body, match))
                        status, payload, headers = answer if len(answer) == 3 else (*answer, {})
                        break
                else:
                    status, payload, headers = 404, {"error": f"no route {self.command} {parsed.path}"}, {}
                data = payload if isinstance(payload, bytes) else (
                    payload.encode() if isinstance(payload, str) else json.dumps(payload).encode())
                send(self, status, data, {"Content-Type": "application/json", **headers})

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        self._serve(ThreadingHTTPServer(("127.0.0.1", self.port), _Handler))
        return self


def send(handler: BaseHTTPRequestHandler, status: int, data: bytes, headers: dict[str, str]) -> None:
    """One whole answer, with its length (the clients keep connections alive)."""
    handler.send_response(status)
    for name, value in headers.items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def authorized(request: Request, users: dict[str, str]) -> bool:
    credentials = request.basic_auth
    return bool(credentials) and users.get(credentials[0]) == credentials[1]
