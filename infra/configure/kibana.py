"""Kibana by code: the data views of the kit's index families, and which one Discover opens with,
so a participant sees their predictions without configuring anything.

Uses Kibana's data views API (`/api/data_views`, every write with `kbn-xsrf`); a data view is read
first and only created or updated when it differs, so a second run writes nothing.

Run in-cluster as `python -m infra.configure.kibana DESIRED.json` with KIBANA_URL, KIBANA_USERNAME
and KIBANA_PASSWORD in the environment (see infra/platform/kibana.py, which writes DESIRED.json).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from infra.configure.api import (
    ELASTIC_ADMIN_HINT,
    ApiError,
    JsonApi,
    Outcome,
    Response,
    covers,
    refusal,
    run_main,
    wait_for,
)
from infra.upstream.kibana import NEEDED_CORE_SERVICES, core_levels

STATUS = "/api/status"
DATA_VIEWS = "/api/data_views/data_view"
DEFAULT_VIEW = "/api/data_views/default"
XSRF = {"kbn-xsrf": "cd4ml"}


def _refused(api: JsonApi, answer: Response, doing: str) -> ApiError:
    return refusal("Kibana", api, answer, doing, ELASTIC_ADMIN_HINT)


def ensure_data_view(api: JsonApi, view: dict[str, Any]) -> Outcome:
    path = f"{DATA_VIEWS}/{view['id']}"
    current = api.call("GET", path)
    if current.status == 200 and covers((current.body or {}).get("data_view"), view):
        return Outcome("data view", view["id"], "unchanged")
    if current.status == 404:
        written = api.call("POST", DATA_VIEWS, body={"data_view": view}, headers=XSRF)
        action = "created"
    elif current.status == 200:
        changes = {k: v for k, v in view.items() if k != "id"}  # the id is the path, not a field to update
        written = api.call("POST", path, body={"data_view": changes}, headers=XSRF)
        action = "updated"
    else:
        raise _refused(api, current, f"GET {path}")
    if written.status != 200:
        raise _refused(api, written, f"writing data view {view['id']}")
    return Outcome("data view", view["id"], action)


def ensure_default(api: JsonApi, view_id: str) -> Outcome:
    current = api.call("GET", DEFAULT_VIEW)
    if current.status == 200 and (current.body or {}).get("data_view_id") == view_id:
        return Outcome("default data view", view_id, "unchanged")
    written = api.call("POST", DEFAULT_VIEW, body={"data_view_id": view_id, "force": True}, headers=XSRF)
    if written.status != 200:
        raise _refused(api, written, f"POST {DEFAULT_VIEW}")
    return Outcome("default data view", view_id, "updated")


def configure(api: JsonApi, desired: dict[str, Any], health_timeout: float = 600.0,
              pause: Callable[[float], None] | None = None) -> list[Outcome]:
    def ready(answer: Response) -> bool:
        return answer.status == 200 and all(level == "available" for level in core_levels(answer.body).values())

    wait_for(api, STATUS, ready, f"Kibana at {api.base_url}{STATUS} to report " + " and ".join(
        f"core.{service} 'available'" for service in NEEDED_CORE_SERVICES), health_timeout, pause,
        login_hint=ELASTIC_ADMIN_HINT)
    outcomes = [ensure_data_view(api, view) for view in desired["data_views"]]
    outcomes.append(ensure_default(api, desired["default_data_view"]))
    return outcomes


def main(argv: list[str] | None = None) -> int:
    return run_main("kibana", sys.argv[1:] if argv is None else argv,
                    ("KIBANA_URL", "KIBANA_USERNAME", "KIBANA_PASSWORD"),
                    lambda env: JsonApi(env["KIBANA_URL"], env["KIBANA_USERNAME"], env["KIBANA_PASSWORD"]), configure)


if __name__ == "__main__":
    sys.exit(main())
