"""MLflow by code: one experiment per tenant, so every participant's runs land in their own
experiment from the first `python -m model.train` (their agents set MLFLOW_EXPERIMENT_NAME).

An experiment is looked up by name first and only created (or restored, if someone deleted it)
when needed, so a second run writes nothing.

Run in-cluster as `python -m infra.configure.mlflow DESIRED.json` with MLFLOW_URL in the
environment (see infra/platform/mlflow.py, which writes DESIRED.json).
"""

from __future__ import annotations

import sys
from typing import Any, Callable
from urllib.parse import quote

from infra.configure.api import ApiError, JsonApi, Outcome, Response, run_main, wait_for

API = "/api/2.0/mlflow/experiments"
TENANT_TAG = "cd4ml.tenant"


def ensure_experiment(api: JsonApi, name: str, tenant: str) -> Outcome:
    found = api.call("GET", f"{API}/get-by-name?experiment_name={quote(name)}")
    if found.status == 200:
        experiment = (found.body or {}).get("experiment", {})
        if experiment.get("lifecycle_stage") != "deleted":
            return Outcome("experiment", name, "unchanged")
        restored = api.call("POST", f"{API}/restore", body={"experiment_id": experiment["experiment_id"]})
        if restored.status != 200:
            raise ApiError(f"MLflow answered restoring experiment {name} with {restored.summary()}")
        return Outcome("experiment", name, "updated")
    if found.status != 404:
        raise ApiError(f"MLflow answered looking up experiment {name} with {found.summary()}")
    created = api.call("POST", f"{API}/create", body={"name": name, "tags": [{"key": TENANT_TAG, "value": tenant}]})
    if created.status != 200:
        raise ApiError(f"MLflow answered creating experiment {name} with {created.summary()}")
    return Outcome("experiment", name, "created")


def configure(api: JsonApi, desired: dict[str, Any], health_timeout: float = 600.0,
              pause: Callable[[float], None] | None = None) -> list[Outcome]:
    def healthy(answer: Response) -> bool:
        return answer.status == 200

    wait_for(api, "/health", healthy, f"MLflow at {api.base_url}/health to answer 200", health_timeout, pause)
    return [ensure_experiment(api, item["experiment"], item["tenant"]) for item in desired["experiments"]]


def main(argv: list[str] | None = None) -> int:
    return run_main("mlflow", sys.argv[1:] if argv is None else argv, ("MLFLOW_URL",),
                    lambda env: JsonApi(env["MLFLOW_URL"]), configure)


if __name__ == "__main__":
    sys.exit(main())
