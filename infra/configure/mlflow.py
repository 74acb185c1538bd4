"""MLflow by code: one login and one experiment per tenant, so every participant's runs land in
their own experiment from the first `python -m model.train` (their agents set
MLFLOW_EXPERIMENT_NAME and log in as the tenant), and nobody else's is theirs to change.

MLflow's basic-auth app keeps users in its own database; the chart creates only the admin. For each
tenant this ensures, as the admin: the user (created, or its password put back when the generated
one no longer logs in), the experiment (created, or restored if deleted), and MANAGE on it for the
user. Everything is read first, so a second run writes nothing.

Run in-cluster as `python -m infra.configure.mlflow DESIRED.json` with MLFLOW_URL and the admin's
MLFLOW_USERNAME/MLFLOW_PASSWORD (as *_FILE) in the environment; each tenant's password is a file
named after the user under DESIRED's `password_dir` (see infra/platform/mlflow.py).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from infra.configure.api import ApiError, JsonApi, Outcome, Response, run_main, wait_for

API = "/api/2.0/mlflow/experiments"
USERS = "/api/2.0/mlflow/users"
PERMISSIONS = "/api/3.0/mlflow/users/permissions"
"""MLflow 3's per-resource grants (mlflow/server/auth/routes.py, as of 3.15)."""
TENANT_TAG = "cd4ml.tenant"
OWNER_PERMISSION = "MANAGE"


def ensure_experiment(api: JsonApi, name: str, tenant: str) -> tuple[Outcome, str]:
    """(outcome, experiment id)."""
    found = api.call("GET", f"{API}/get-by-name?experiment_name={quote(name)}")
    if found.status == 200:
        experiment = (found.body or {}).get("experiment", {})
        if experiment.get("lifecycle_stage") != "deleted":
            return Outcome("experiment", name, "unchanged"), experiment["experiment_id"]
        restored = api.call("POST", f"{API}/restore", body={"experiment_id": experiment["experiment_id"]})
        if restored.status != 200:
            raise ApiError(f"MLflow answered restoring experiment {name} with {restored.summary()}")
        return Outcome("experiment", name, "updated"), experiment["experiment_id"]
    if found.status != 404:
        raise ApiError(f"MLflow answered looking up experiment {name} with {found.summary()}")
    created = api.call("POST", f"{API}/create", body={"name": name, "tags": [{"key": TENANT_TAG, "value": tenant}]})
    if created.status != 200:
        raise ApiError(f"MLflow answered creating experiment {name} with {created.summary()}")
    return Outcome("experiment", name, "created"), (created.body or {})["experiment_id"]


def ensure_user(api: JsonApi, username: str, password: str) -> Outcome:
    found = api.call("GET", f"{USERS}/get?{urlencode({'username': username})}")
    if found.status == 200:
        as_user = JsonApi(api.base_url, username, password, timeout=api.timeout)
        if as_user.call("GET", f"{USERS}/current").status == 200:
            return Outcome("user", username, "unchanged")
        # The generated password changed (a recreated stack) or someone changed it by hand.
        reset = api.call("PATCH", f"{USERS}/update-password", body={"username": username, "password": password})
        if reset.status != 200:
            raise ApiError(f"MLflow answered resetting the password of {username} with {reset.summary()}")
        return Outcome("user", username, "updated")
    if found.status not in (400, 404):  # MLflow says RESOURCE_DOES_NOT_EXIST with 404 (older: 400)
        raise ApiError(f"MLflow answered looking up user {username} with {found.summary()}")
    created = api.call("POST", f"{USERS}/create", body={"username": username, "password": password})
    if created.status != 200:
        raise ApiError(f"MLflow answered creating user {username} with {created.summary()}")
    return Outcome("user", username, "created")


def ensure_owner(api: JsonApi, username: str, experiment: str, experiment_id: str) -> Outcome:
    what = f"{username} on {experiment}"
    query = urlencode({"username": username, "resource_type": "experiment", "resource_id": experiment_id})
    found = api.call("GET", f"{PERMISSIONS}/get?{query}")
    if found.status != 200:
        raise ApiError(f"MLflow answered reading the permission of {what} with {found.summary()}")
    if (found.body or {}).get("permission") == OWNER_PERMISSION:
        return Outcome("permission", what, "unchanged")
    granted = api.call("POST", f"{PERMISSIONS}/grant", body={
        "username": username, "resource_type": "experiment", "resource_id": experiment_id,
        "permission": OWNER_PERMISSION})
    if granted.status != 200:
        raise ApiError(f"MLflow answered granting {OWNER_PERMISSION} to {what} with {granted.summary()}")
    return Outcome("permission", what, "created")


def configure(api: JsonApi, desired: dict[str, Any], health_timeout: float = 600.0,
              pause: Callable[[float], None] | None = None) -> list[Outcome]:
    def healthy(answer: Response) -> bool:
        return answer.status == 200

    wait_for(api, "/health", healthy, f"MLflow at {api.base_url}/health to answer 200", health_timeout, pause)
    admin = api.call("GET", f"{USERS}/current")
    if admin.status != 200:
        raise ApiError(f"MLflow refused the kit's admin {api.username} ({admin.summary()}): check the Secret "
                       "the chart's auth.existingAdminSecret names")
    outcomes = []
    for tenant in desired["tenants"]:
        password = (Path(desired["password_dir"]) / tenant["user"]).read_text(encoding="utf-8").strip()
        outcomes.append(ensure_user(api, tenant["user"], password))
        outcome, experiment_id = ensure_experiment(api, tenant["experiment"], tenant["tenant"])
        outcomes += [outcome, ensure_owner(api, tenant["user"], tenant["experiment"], experiment_id)]
    return outcomes


def main(argv: list[str] | None = None) -> int:
    return run_main("mlflow", sys.argv[1:] if argv is None else argv,
                    ("MLFLOW_URL", "MLFLOW_USERNAME", "MLFLOW_PASSWORD"),
                    lambda env: JsonApi(env["MLFLOW_URL"], env["MLFLOW_USERNAME"], env["MLFLOW_PASSWORD"]), configure)


if __name__ == "__main__":
    sys.exit(main())
