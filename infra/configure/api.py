"""A small JSON-over-HTTP client on urllib: basic auth, media types, ETags, and errors that say
what was asked and what came back — never the password."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Response:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)

    def summary(self) -> str:
        message = self.body.get("message") if isinstance(self.body, dict) else self.body
        text = json.dumps(message) if not isinstance(message, str) else message
        return f"HTTP {self.status} {text[:300]}" if text else f"HTTP {self.status}"


class ApiError(RuntimeError):
    """A call that did not give the answer the step needs; the message is a diagnosis."""


class JsonApi:
    """With `anonymous_first`, calls go without credentials until the server asks for them (a 401
    with `WWW-Authenticate`), then always with them: GoCD rejects credentials while its security is
    off, and requires them once it is on."""

    def __init__(self, base_url: str, username: str | None = None, password: str | None = None,
                 timeout: float = 15.0, anonymous_first: bool = False) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self._authorization = (
            "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode() if username else None)
        self.timeout = timeout
        self.authenticating = bool(self._authorization) and not anonymous_first

    def call(self, method: str, path: str, *, accept: str = "application/json", body: Any = None,
             headers: dict[str, str] | None = None, anonymous: bool = False) -> Response:
        """`anonymous=True` for endpoints that never take credentials (health checks)."""
        answer = self._send(method, path, accept, body, headers, with_credentials=self.authenticating and not anonymous)
        if (answer.status == 401 and not anonymous and not self.authenticating and self._authorization
                and answer.header("WWW-Authenticate")):
            self.authenticating = True
            answer = self._send(method, path, accept, body, headers, with_credentials=True)
        return answer

    def _send(self, method: str, path: str, accept: str, body: Any, headers: dict[str, str] | None,
              with_credentials: bool) -> Response:
        all_headers = {"Accept": accept, **(headers or {})}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        if with_credentials and self._authorization:
            all_headers["Authorization"] = self._authorization
        request = urllib.request.Request(self.base_url + path, data=data, method=method, headers=all_headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                return Response(answer.status, dict(answer.headers.items()), _decode(answer.read()))
        except urllib.error.HTTPError as refused:
            return Response(refused.code, dict(refused.headers.items()), _decode(refused.read()))


def _decode(raw: bytes) -> Any:
    text = raw.decode(errors="replace")
    try:
        return json.loads(text) if text else None
    except ValueError:
        return text
