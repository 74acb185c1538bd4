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
    args = parser.parse_args(argv)
    min_r2 = args.min_r2 if args.min_r2 is not None else _threshold_from_env(parser)
    max_gap = args.max_error_gap if args.max_error_gap is not None else _threshold_from_env(
        parser, "CD4ML_MAX_ERROR_GAP", DEFAULT_MAX_ERROR_GAP)

    try:
        run_id = json.loads(args.model.read_text())["run_id"]
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
    for passed, message in results:
        print(message, file=sys.stdout if passed else sys.stderr)
    return 0 if all(passed for passed, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
