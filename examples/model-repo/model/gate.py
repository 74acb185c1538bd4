"""The quality gate: the pipeline's `gate` stage, which stops a worse model before any deploy.

    python -m model.gate --model out/model.json --min-r2 0.3     # or CD4ML_MIN_R2=0.3

The metric is read from the MLflow run, not from model.json: the tracking server is the record
everyone looks at, and a hand-edited artifact cannot talk a model past the gate.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

DEFAULT_MIN_R2 = 0.3
METRIC = "r2"


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


def _threshold_from_env(parser: argparse.ArgumentParser) -> float:
    raw = os.environ.get("CD4ML_MIN_R2")
    if not raw:
        return DEFAULT_MIN_R2
    try:
        return float(raw)
    except ValueError:
        parser.error(f"CD4ML_MIN_R2={raw!r} is not a number")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.gate", description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("out/model.json"), help="model.json from the train stage")
    parser.add_argument("--min-r2", type=float, default=None,
                        help=f"lowest acceptable r2 (default: $CD4ML_MIN_R2, else {DEFAULT_MIN_R2})")
    args = parser.parse_args(argv)
    min_r2 = args.min_r2 if args.min_r2 is not None else _threshold_from_env(parser)

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
    if METRIC not in metrics:
        print(f"run {run_id} has no {METRIC!r} metric (it has {sorted(metrics)}); cannot judge it", file=sys.stderr)
        return 1
    passed, message = verdict(metrics[METRIC], min_r2, run_id)
    print(message, file=sys.stdout if passed else sys.stderr)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
