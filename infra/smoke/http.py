"""HTTP calls whose every failure becomes a diagnosis: what was tried, what was expected, what came back."""

from __future__ import annotations

from typing import Any

import requests

from infra.smoke.core import CheckFailed, Diagnosis, SmokeContext, Target


def likely_cause(status: int | None, service: str) -> str:
    if status is None:
        return (f"{service} is down, not ready yet, or the URL is wrong (check the Service and that the "
                f"pods are Running)")
    if status in (401, 403):
        return f"{service} rejected the credentials: the password in its Secret and the one in use differ"
    if status == 404:
        return f"{service} answers but not this API: wrong path prefix or an older/newer version"
    if status == 503:
        return f"{service} is not ready: still starting, or overloaded; wait and rerun, then read its pod logs"
    if status >= 500:
        return f"{service} is up but failing inside: read its pod logs"
    return f"{service} answered unexpectedly"


def call(context: SmokeContext, target: Target, method: str, path: str, *, expect: str,
         statuses: tuple[int, ...] = (200,), anonymous: bool = False, **kwargs: Any) -> requests.Response:
    """`anonymous=True` sends no login even when the target has one, and no session cookie either
    (health APIs; proving that a service refuses strangers)."""
    endpoint = target.url.rstrip("/") + path
    try:
        if anonymous:
            # No login, no cookie; but the run's certificate trust (`ingress.*` checks) still applies.
            with type(context.session)() as fresh:
                fresh.verify = context.session.verify
                response = fresh.request(method, endpoint, timeout=10, **kwargs)
        else:
            response = context.session.request(method, endpoint, auth=target.auth, timeout=10, **kwargs)
    except requests.RequestException as failure:
        seen = f"no answer ({type(failure).__name__})"
        raise CheckFailed(Diagnosis(target.service, f"{method} {endpoint}", expect, seen,
                                    likely_cause(None, target.service))) from None
    if response.status_code not in statuses:
        raise CheckFailed(Diagnosis(target.service, f"{method} {endpoint}", expect,
                                    f"HTTP {response.status_code}: {response.text[:200]}",
                                    likely_cause(response.status_code, target.service)))
    return response


def json_of(response: requests.Response, target: Target, expect: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise CheckFailed(Diagnosis(target.service, response.url, expect, f"not JSON: {response.text[:120]!r}",
                                    f"something else answers at {target.url} (a proxy or another service?)")) from None
