"""Grafana by code (workshop mode): one Viewer login per participant, with the same generated
password as their GoCD and Kibana logins, so the monitoring dashboard needs no account set-up.

A user is looked up by login first and only created when missing; its password is read from the
mounted Secret file of that login (never from the desired configuration, never printed).

Run in-cluster as `python -m infra.configure.grafana DESIRED.json` with GRAFANA_URL,
GRAFANA_USERNAME and GRAFANA_PASSWORD (the admin) in the environment.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from infra.configure.api import ApiError, JsonApi, Outcome, Response, refusal, run_main, wait_for

ADMIN_HINT = "not Grafana's admin, or its password differs from the grafana-admin Secret"


def ensure_user(api: JsonApi, login: str, password_dir: str) -> Outcome:
    found = api.call("GET", f"/api/users/lookup?loginOrEmail={quote(login)}")
    if found.status == 200:
        return Outcome("user", login, "unchanged")
    if found.status != 404:
        raise refusal("Grafana", api, found, f"looking up user {login}", ADMIN_HINT)
    password_file = Path(password_dir) / login
    if not password_file.is_file():
        raise ApiError(f"no password file {password_file} for Grafana user {login}: is the participants' Secret "
                       "mounted?")
    created = api.call("POST", "/api/admin/users", body={
        "name": login, "login": login, "email": f"{login}@cd4ml.invalid",
        "password": password_file.read_text().strip()})
    if created.status != 200:
        raise refusal("Grafana", api, created, f"creating user {login}", ADMIN_HINT)
    return Outcome("user", login, "created")


def configure(api: JsonApi, desired: dict[str, Any], health_timeout: float = 600.0,
              pause: Callable[[float], None] | None = None) -> list[Outcome]:
    def healthy(answer: Response) -> bool:
        return answer.status == 200

    wait_for(api, "/api/health", healthy, f"Grafana at {api.base_url}/api/health to answer 200", health_timeout,
             pause, login_hint=ADMIN_HINT)
    return [ensure_user(api, login, desired["password_dir"]) for login in desired["users"]]


def main(argv: list[str] | None = None) -> int:
    return run_main("grafana", sys.argv[1:] if argv is None else argv,
                    ("GRAFANA_URL", "GRAFANA_USERNAME", "GRAFANA_PASSWORD"),
                    lambda env: JsonApi(env["GRAFANA_URL"], env["GRAFANA_USERNAME"], env["GRAFANA_PASSWORD"]),
                    configure)


if __name__ == "__main__":
    sys.exit(main())
