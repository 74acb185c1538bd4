"""The quality gate: the pipeline's `gate` stage, which stops a worse or a harmful model before any deploy.

    python -m model.gate --model out/model.json --min-r2 0.3 --max-error-gap 0.2
    # or CD4ML_MIN_R2=0.3 CD4ML_MAX_ERROR_GAP=0.2 (the pipeline's variables)

Two fitness functions: accuracy (r2 at least the threshold) and do-no-harm (the error gap between
groups, model/fairness.py, at most its threshold). The metrics are read from the MLflow run, not from
model.json: the tracking server is the record everyone looks at, and a hand-edited artifact cannot talk
a model past the gate.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

DEFAULT_MIN_R2 = 0.3
METRIC = "r2"
DEFAULT_MAX_ERROR_GAP = 0.2
GAP_METRIC = "error_gap"
"""model/fairness.py METRIC (imported lazily there: numpy and pandas are slow to import for --help)."""


def _pair(value: float, threshold: float) -> tuple[str, str]:
    """Two decimals, unless that would print a failing value equal to its threshold."""
    for digits in (2, 4, 6):
        shown = f"{value:.{digits}f}", f"{threshold:.{digits}f}"
        if shown[0] != shown[1]:
            return shown
    return f"{value!r}", f"{threshold!r}"


def verdict(r2: float, min_r2: float, run_id: str) -> tuple[bool, str]:
    value, threshold = _pair(r2, min_r2)
    if r2 < min_r2:
        return False, f"{METRIC} {value} is below the threshold {threshold} (run {run_id})"
    return True, f"{METRIC} {value} meets the threshold {threshold} (run {run_id}): gate passed"


def harm_verdict(gap: float, max_gap: float, run_id: str) -> tuple[bool, str]:
    value, threshold = _pair(gap, max_gap)
    if gap > max_gap:
        return False, (f"{GAP_METRIC} {value} is above the threshold {threshold} (run {run_id}): the model's error "
                       "differs too much between groups (mae_* metrics in the run); do no harm")
    return True, f"{GAP_METRIC} {value} is within the threshold {threshold} (run {run_id})"


DEFAULT_LIVE_TOLERANCE = 0.05


def live_verdict(candidate_mae: float, production_mae: float, tolerance: float, production: str,
                 rows: int) -> tuple[bool, str]:
    """The candidate on live data (the production model's predictions whose true value came back) may be at
    most `tolerance` worse than the model that served them."""
    limit = production_mae * (1 + tolerance)
    said = (f"on {rows} live predictions with feedback the candidate's mean absolute error is {candidate_mae:.2f}, "
            f"the production model's ({production}) {production_mae:.2f}")
    if candidate_mae > limit:
        return False, f"{said}: worse by more than {tolerance:.0%}"
    return True, f"{said}: not worse by more than {tolerance:.0%}"


def compare_on_live_data(live_csv: Path, model_record: dict, tolerance: float) -> tuple[bool, str]:
    """Both models, loaded from MLflow, on the evaluation set model.live_data wrote."""
    import mlflow.pyfunc
    import numpy as np
    import pandas as pd

    from model.live_data import ENVIRONMENT, MODEL_VERSION, TRUE_VALUE

    rows = pd.read_csv(live_csv, dtype={MODEL_VERSION: str})
    served = rows[rows[ENVIRONMENT] == "production"] if (rows[ENVIRONMENT] == "production").any() else rows
    version = served[MODEL_VERSION].mode().iloc[0]
    production = f"models:/{model_record['model_name']}/{version}"
    inputs = rows.drop(columns=[TRUE_VALUE, MODEL_VERSION, ENVIRONMENT])

    def mae(uri: str) -> float:
        predicted = np.asarray(mlflow.pyfunc.load_model(uri).predict(inputs), dtype=float).ravel()
        return float(np.mean(np.abs(predicted - rows[TRUE_VALUE].to_numpy())))

    return live_verdict(mae(model_record["model_uri"]), mae(production), tolerance, production, len(rows))


def _threshold_from_env(parser: argparse.ArgumentParser, name: str = "CD4ML_MIN_R2",
                        default: float = DEFAULT_MIN_R2) -> float:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        parser.error(f"{name}={raw!r} is not a number")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.gate", description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("out/model.json"), help="model.json from the train stage")
    parser.add_argument("--min-r2", type=float, default=None,
                        help=f"lowest acceptable r2 (default: $CD4ML_MIN_R2, else {DEFAULT_MIN_R2})")
    parser.add_argument("--max-error-gap", type=float, default=None,
                        help="largest acceptable error gap between groups (default: $CD4ML_MAX_ERROR_GAP, else "
                             f"{DEFAULT_MAX_ERROR_GAP})")
    parser.add_argument("--live", type=Path, default=None,
                        help="also compare the candidate with the production model on this evaluation set "
                             "(python -m model.live_data writes it)")
    parser.add_argument("--live-tolerance", type=float, default=None,
                        help="how much worse on live data the candidate may be (default: $CD4ML_LIVE_TOLERANCE, "
                             f"else {DEFAULT_LIVE_TOLERANCE})")
    args = parser.parse_args(argv)
    min_r2 = args.min_r2 if args.min_r2 is not None else _threshold_from_env(parser)
    max_gap = args.max_error_gap if args.max_error_gap is not None else _threshold_from_env(
        parser, "CD4ML_MAX_ERROR_GAP", DEFAULT_MAX_ERROR_GAP)

    try:
        record = json.loads(args.model.read_text())
        run_id = record["run_id"]
    except (OSError, ValueError, KeyError) as error:
        print(f"cannot read the run id from {args.model}: {error}", file=sys.stderr)
        return 1

    import mlflow  # here, so `--help` and argument errors stay instant
    from mlflow.exceptions import MlflowException

    try:
        metrics = mlflow.MlflowClient().get_run(run_id).data.metrics
    except MlflowException as error:
        print(f"cannot read run {run_id} from MLflow at {mlflow.get_tracking_uri()}: {error.message}",
              file=sys.stderr)
        return 1
    missing = [m for m in (METRIC, GAP_METRIC) if m not in metrics]
    if missing:
        print(f"run {run_id} has no {' or '.join(map(repr, missing))} metric (it has {sorted(metrics)}); cannot "
              "judge it", file=sys.stderr)
        return 1
    results = [verdict(metrics[METRIC], min_r2, run_id), harm_verdict(metrics[GAP_METRIC], max_gap, run_id)]
    if args.live is not None:
        tolerance = args.live_tolerance if args.live_tolerance is not None else _threshold_from_env(
            parser, "CD4ML_LIVE_TOLERANCE", DEFAULT_LIVE_TOLERANCE)
        try:
            results.append(compare_on_live_data(args.live, record, tolerance))
        except (OSError, ValueError, KeyError, MlflowException) as error:
            print(f"cannot compare on live data from {args.live}: {error}", file=sys.stderr)
            return 1
    for passed, message in results:
        print(message, file=sys.stdout if passed else sys.stderr)
    return 0 if all(passed for passed, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
