"""Closing the data collection loop: the served model's predictions whose true outcome came back, pulled
from the platform's events into an evaluation set (a CSV of the inputs, the true value and the model
version that answered), for the gate to compare a new model with the one in production on live data.

    python -m model.live_data --kibana https://kibana.<domain> --out out/live.csv
    # CD4ML_USERNAME / CD4ML_PASSWORD: your login (the handout's); CD4ML_TENANT: your name (agents have it)

It reads through Kibana's console (the address participants have; Elasticsearch stays inside the
cluster), as you: your Elasticsearch role reads your events and nobody else's. At most the newest
10,000 predictions and 10,000 feedback events (Elasticsearch's default result window).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import cd4ml_events
import pandas as pd
import requests

PAGE = 10_000
TRUE_VALUE = "true_value"
MODEL_VERSION = "model_version"
ENVIRONMENT = "environment"


class LiveDataError(RuntimeError):
    pass


def search(kibana: str, auth: tuple[str, str], tenant: str, kind: str, timeout: float = 30) -> list[dict[str, Any]]:
    """The sources of a tenant's events of one kind, through Kibana's console proxy (which answers 200
    and carries Elasticsearch's own status in a header)."""
    pattern = cd4ml_events.index_pattern(tenant)
    answer = requests.post(f"{kibana.rstrip('/')}/api/console/proxy", auth=auth, timeout=timeout,
                           params={"path": f"/{pattern}/_search", "method": "POST"}, headers={"kbn-xsrf": "cd4ml"},
                           json={"size": PAGE, "query": {"match_phrase": {"kind": kind}}})
    status = answer.headers.get("x-console-proxy-status-code", str(answer.status_code))
    if answer.status_code == 401:
        raise LiveDataError(f"Kibana at {kibana} refused the login {auth[0]!r}: check CD4ML_USERNAME/CD4ML_PASSWORD")
    if answer.status_code != 200 or status != "200":
        raise LiveDataError(f"searching {pattern} as {auth[0]!r} through {kibana}: Elasticsearch answered {status} "
                            f"({answer.text[:200]}); a login reads only its own tenant's events")
    return [hit.get("_source", {}) for hit in answer.json().get("hits", {}).get("hits", [])]


def evaluation_set(predictions: list[dict[str, Any]], feedback: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per prediction whose true value came back: its inputs, the true value, who answered."""
    truth = {f["prediction_event_id"]: f[TRUE_VALUE] for f in feedback if "prediction_event_id" in f}
    rows = [{**p["features"], TRUE_VALUE: truth[p["event_id"]], MODEL_VERSION: p[MODEL_VERSION],
             ENVIRONMENT: p[ENVIRONMENT]}
            for p in predictions
            if p.get("status") == "ok" and p.get("features") and p.get("event_id") in truth]
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.live_data", description=__doc__.splitlines()[0])
    parser.add_argument("--kibana", default=os.environ.get("CD4ML_KIBANA_URL"),
                        help="Kibana's address (default: $CD4ML_KIBANA_URL), e.g. https://kibana.workshop.example.com")
    parser.add_argument("--out", type=Path, default=Path("out/live.csv"))
    args = parser.parse_args(argv)
    tenant = os.environ.get("CD4ML_TENANT") or cd4ml_events.DEFAULT_TENANT
    user, password = os.environ.get("CD4ML_USERNAME", tenant), os.environ.get("CD4ML_PASSWORD")
    if not args.kibana or not password:
        print("give Kibana's address (--kibana or CD4ML_KIBANA_URL) and your login (CD4ML_USERNAME, "
              "CD4ML_PASSWORD: the handout's)", file=sys.stderr)
        return 2
    try:
        predictions = search(args.kibana, (user, password), tenant, cd4ml_events.PREDICTION)
        feedback = search(args.kibana, (user, password), tenant, cd4ml_events.FEEDBACK)
    except (LiveDataError, requests.RequestException) as error:
        print(f"cannot read the live events: {error}", file=sys.stderr)
        return 1
    if not predictions:
        # A wildcard over indices the login may not read answers 200 with nothing (Elasticsearch resolves
        # it to the indices the role authorises), not 403.
        print(f"no prediction events of {tenant!r} readable by {user!r} in {cd4ml_events.index_pattern(tenant)}: "
              "a login reads only its own tenant's events (is CD4ML_TENANT your name?), and the model service "
              "sends them once it serves predictions", file=sys.stderr)
        return 1
    rows = evaluation_set(predictions, feedback)
    if rows.empty:
        print(f"none of {len(predictions)} predictions has feedback yet: POST /feedback on the model service "
              "sends the true value of a prediction", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows.to_csv(args.out, index=False)
    print(f"wrote {len(rows)} predictions with their true value to {args.out} "
          f"(model versions {', '.join(sorted(rows[MODEL_VERSION].astype(str).unique()))})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
