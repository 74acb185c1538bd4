"""Elasticsearch by code: the retention policy (index lifecycle) and the index templates of the
kit's two index families, ensured once the cluster answers and before Fluentd writes a document.

Every item is read first and written (PUT, which Elasticsearch treats as create-or-replace) only
when it lacks a field the kit sets, so a second run writes nothing.

Run in-cluster as `python -m infra.configure.elasticsearch DESIRED.json` with ES_URL, ES_USERNAME
and ES_PASSWORD in the environment (see infra/platform/elasticsearch.py, which writes DESIRED.json).
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

HEALTH = "/_cluster/health"


def _refused(api: JsonApi, answer: Response, doing: str) -> ApiError:
    return refusal("Elasticsearch", api, answer, doing, ELASTIC_ADMIN_HINT)


def ensure(api: JsonApi, what: str, path: str, desired: dict[str, Any],
           current_of: Callable[[Any], Any]) -> Outcome:
    name = path.rsplit("/", 1)[-1]
    current = api.call("GET", path)
    if current.status == 200 and covers(current_of(current.body), desired):
        return Outcome(what, name, "unchanged")
    if current.status not in (200, 404):
        raise _refused(api, current, f"GET {path}")
    written = api.call("PUT", path, body=desired)
    if written.status not in (200, 201):
        raise _refused(api, written, f"PUT {path}")
    return Outcome(what, name, "created" if current.status == 404 else "updated")


def configure(api: JsonApi, desired: dict[str, Any], health_timeout: float = 600.0,
              pause: Callable[[float], None] | None = None) -> list[Outcome]:
    def serving(answer: Response) -> bool:
        return answer.status == 200 and isinstance(answer.body, dict) and answer.body.get("status") in (
            "green", "yellow")

    wait_for(api, HEALTH, serving, f"Elasticsearch at {api.base_url}{HEALTH} to answer green or yellow",
             health_timeout, pause, login_hint=ELASTIC_ADMIN_HINT)
    outcomes = [ensure(api, "lifecycle policy", f"/_ilm/policy/{name}", body,
                       lambda found, n=name: (found or {}).get(n, {}))
                for name, body in desired["lifecycle_policies"].items()]
    outcomes += [ensure(api, "index template", f"/_index_template/{name}", body,
                        lambda found: next(iter((found or {}).get("index_templates", [])), {}).get("index_template"))
                 for name, body in desired["index_templates"].items()]
    return outcomes


def main(argv: list[str] | None = None) -> int:
    return run_main("elasticsearch", sys.argv[1:] if argv is None else argv, ("ES_URL", "ES_USERNAME", "ES_PASSWORD"),
                    lambda env: JsonApi(env["ES_URL"], env["ES_USERNAME"], env["ES_PASSWORD"]), configure)


if __name__ == "__main__":
    sys.exit(main())
