"""A small JSON-over-HTTP client on urllib: basic auth, media types, ETags, and errors that say
what was asked and what came back — never the password.

Hand-written on purpose: the configure Jobs run this on a stock Python image with nothing installed
(the kit builds no image for them), so `requests` is not there; the smoke checks, which run where the
kit is installed, use `requests`."""

from __future__ import annotations

import base64
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from infra.polling import Observation, WaitTimeout, poll_until


@dataclass
class Response:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)

    def summary(self) -> str:
        """`HTTP <status> <the server's own words>`: its message, its error reason, or the body."""
        body = self.body
        if isinstance(body, dict):
            error = body.get("error")
            body = body.get("message") or (error.get("reason") if isinstance(error, dict) else error) or body
        text = body if isinstance(body, str) else (json.dumps(body) if body is not None else "")
        return f"HTTP {self.status} {text[:300]}".rstrip()


@dataclass(frozen=True)
class Outcome:
    what: str
    id: str
    action: str  # created | updated | unchanged

    def __str__(self) -> str:
        return f"{self.what} {self.id}: {self.action}"


def covers(current: Any, desired: Any) -> bool:
    """Whether the server's copy already holds every field the kit sets (GoCD adds links, defaults
    and encrypted values of its own). Property lists compare as key -> value maps."""
    if isinstance(desired, dict):
        return isinstance(current, dict) and all(covers(current.get(k), v) for k, v in desired.items())
    if isinstance(desired, list) and desired and all(isinstance(d, dict) and "key" in d for d in desired):
        have = {p.get("key"): p.get("value") for p in current or [] if isinstance(p, dict)}
        return {d["key"]: d.get("value") for d in desired} == have
    if isinstance(desired, list):
        return isinstance(current, list) and len(current) == len(desired) and all(
            covers(c, d) for c, d in zip(current, desired, strict=True))
    return current == desired


class ApiError(RuntimeError):
    """A call that did not give the answer the step needs; the message is a diagnosis."""


class JsonApi:
    """With `anonymous_first`, calls go without credentials until the server asks for them (a 401
    with `WWW-Authenticate`), then always with them: GoCD rejects credentials while its security is
    off, and requires them once it is on."""

    def __init__(self, base_url: str, username: str | None = None, password: str | None = None,
                 timeout: float = 15.0, anonymous_first: bool = False,
                 default_accept: str | None = "application/json") -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self._authorization = (
            "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode() if username else None)
        self.timeout = timeout
        self.authenticating = bool(self._authorization) and not anonymous_first
        self.default_accept = default_accept
        """None: every call names its media type (GoCD routes by Accept: a wrong one is a 404)."""

    def call(self, method: str, path: str, *, accept: str | None = None, body: Any = None,
             headers: dict[str, str] | None = None) -> Response:
        accept = accept or self.default_accept
        if not accept:
            raise TypeError(f"{method} {path}: this API routes by media type, and the call names none")
        answer = self._send(method, path, accept, body, headers, with_credentials=self.authenticating)
        if (answer.status == 401 and not self.authenticating and self._authorization
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


ELASTIC_ADMIN_HINT = "not the kit's admin, or its password differs from the elasticsearch-user-admin Secret"
"""Elasticsearch and Kibana are configured as the Elasticsearch admin; where to look when refused."""


def refusal(service: str, api: JsonApi, answer: Response, doing: str, login_hint: str) -> ApiError:
    """An unexpected answer as a diagnosis; a refused login names the user and where its password is."""
    cause = f". Likely cause: user {api.username}: {login_hint}" if answer.status in (401, 403) else ""
    return ApiError(f"{service} answered {doing} with {answer.summary()}{cause}")


class Refused(ApiError):
    """The server turned the login down: waiting longer will not help."""


def wait_for(api: JsonApi, path: str, healthy: Callable[[Response], bool], what: str, timeout: float,
             pause: Callable[[float], None] | None = None, login_hint: str = "", accept: str | None = None) -> None:
    """Poll `path` until `healthy`, or raise an ApiError saying what was awaited and what was last
    seen; a refused login fails at once, naming the user and `login_hint` (where the password is)."""
    def look() -> Observation[bool]:
        answer = api.call("GET", path, accept=accept)
        if answer.status in (401, 403):
            raise Refused(f"{api.base_url}{path} refused user {api.username}: {answer.summary()}. "
                          f"Likely cause: {login_hint or 'a wrong password'}")
        return Observation(healthy(answer), True, answer.summary())

    refusals: list[Refused] = []

    def look_or_stop() -> Observation[bool]:
        try:
            return look()
        except Refused as refused:
            refusals.append(refused)
            return Observation(True, False)

    kwargs = {"pause": pause} if pause else {}
    try:
        poll_until(look_or_stop, what=what, timeout=timeout, max_interval=10.0, **kwargs)
    except WaitTimeout as timed_out:
        raise ApiError(str(timed_out)) from None
    if refusals:
        raise refusals[0]


def run_main(service: str, argv: list[str], required_env: tuple[str, ...],
             make_api: Callable[[dict[str, str]], JsonApi],
             configure: Callable[..., list[Outcome]]) -> int:
    """The Job's entry point: one line per item ensured, exit 1 with the diagnosis on failure,
    2 on a usage mistake; never the password."""
    if len(argv) != 1:
        print(f"usage: python -m infra.configure.{service} DESIRED.json", file=sys.stderr)
        return 2
    with open(argv[0], encoding="utf-8") as source:
        desired = json.load(source)
    env = dict(os.environ)
    for name in required_env:
        # Credentials arrive as files (a mounted Secret, never an env var); NAME_FILE says where.
        if not env.get(name) and env.get(f"{name}_FILE"):
            with open(env[f"{name}_FILE"], encoding="utf-8") as secret:
                env[name] = secret.read().strip()
    missing = [name for name in required_env if not env.get(name)]
    if missing:
        print(f"{service} configure: environment variable(s) {', '.join(missing)} not set", file=sys.stderr)
        return 2
    api = make_api(env)
    try:
        for outcome in configure(api, desired, float(os.environ.get("CD4ML_HEALTH_TIMEOUT", "900"))):
            print(f"{service} configure: {outcome}", flush=True)
    except ApiError as failed:
        print(f"{service} configure: FAILED: {failed}", file=sys.stderr)
        return 1
    print(f"{service} configure: done", flush=True)
    return 0
