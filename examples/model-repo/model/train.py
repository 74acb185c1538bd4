"""Train the regressor and register it in MLflow: the pipeline's `train` stage.

    python -m model.train --out out/

Writes out/model.json, the one artifact later stages fetch: the gate reads the run it names, and
deploy serves exactly the registered version it names, so re-running an old pipeline's deploy
stage redeploys that pipeline's model.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from sklearn.linear_model import Ridge
from sklearn.metrics import mean_squared_error, r2_score

from model import fairness
from model.data import SEED, TEST_SIZE, Split, load_split

DEFAULT_EXPERIMENT = "cd4ml-example"
DEFAULT_MODEL_NAME = "diabetes-regressor"
DEFAULT_ALPHA = 0.1
MODEL_JSON = "model.json"
REFERENCE_KEY = "cd4ml"
"""The model's MLmodel metadata key the model service reads (service/serve.py REFERENCE_KEY)."""
SERIALIZATION_FORMAT = "skops"
"""MLflow's safe default: loading never runs code from the artifact, but the serving side needs the
`skops` package. "cloudpickle" needs only mlflow-skinny there, and runs code when it loads."""


def fit(split: Split, alpha: float = DEFAULT_ALPHA) -> Ridge:
    return Ridge(alpha=alpha).fit(split.X_train, split.y_train)


def evaluate(model: Any, split: Split) -> dict[str, float]:
    """Metrics on the held-out rows only; the gate compares these across runs."""
    predicted = model.predict(split.X_test)
    return {
        "rmse": math.sqrt(mean_squared_error(split.y_test, predicted)),
        "r2": float(r2_score(split.y_test, predicted)),
    }


def reference(split: Split, model: Ridge) -> dict[str, Any]:
    """What the model service compares live inputs with and explains predictions by: each training input's
    mean and standard deviation, and the linear model's coefficients (an exact explainer for it)."""
    X = split.X_train
    return {
        "reference": {"rows": len(X), "features": {name: {"mean": float(X[name].mean()), "std": float(X[name].std())}
                                                   for name in split.features}},
        "explainer": {"kind": "linear", "intercept": float(model.intercept_),
                      "coefficients": {name: float(c) for name, c in zip(split.features, model.coef_, strict=True)}},
    }


def train(out_dir: Path, *, experiment: str, model_name: str, pipeline_label: str | None,
          alpha: float = DEFAULT_ALPHA) -> dict[str, Any]:
    """Fit, log and register one model; returns (and writes) the model.json record."""
    # Imported here so the unit tests of fit/evaluate do not pay for MLflow's import.
    import mlflow
    import mlflow.sklearn

    split = load_split()
    model = fit(split, alpha)
    groups = fairness.group_errors(model, split.X_test, split.y_test)
    metrics = {**evaluate(model, split), fairness.METRIC: fairness.error_gap(groups),
               **{f"mae_{name}": value for name, value in groups.items()}}
    known = reference(split, model)

    mlflow.set_experiment(experiment)
    with mlflow.start_run() as run:
        if pipeline_label:
            mlflow.set_tag("pipeline_label", pipeline_label)
        mlflow.log_params({"model": "Ridge", "alpha": alpha, "test_size": TEST_SIZE, "seed": SEED,
                           "train_rows": len(split.X_train)})
        mlflow.log_metrics(metrics)
        # The training inputs' distribution, where people look (the run's artifacts) ...
        mlflow.log_dict(known["reference"], "reference.json")
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            registered_model_name=model_name,
            # The signature lets the service reject a request with missing features by name.
            input_example=split.X_train.head(3),
            serialization_format=SERIALIZATION_FORMAT,
            # ... and with the model itself, where the model service reads it (serve.Reference).
            metadata={REFERENCE_KEY: known},
            # Explicit, because inferring them imports the model in a subprocess (seconds per run);
            # the model-runtime image brings these libraries, nothing installs them at serve time.
            pip_requirements=mlflow.sklearn.get_default_pip_requirements(
                include_skops=SERIALIZATION_FORMAT == "skops",
                include_cloudpickle=SERIALIZATION_FORMAT == "cloudpickle"),
        )

    version = str(info.registered_model_version)
    record = {
        "run_id": run.info.run_id,
        "model_name": model_name,
        "model_version": version,
        "model_uri": f"models:/{model_name}/{version}",
        "metrics": metrics,
        "pipeline_label": pipeline_label,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MODEL_JSON).write_text(json.dumps(record, indent=2) + "\n")
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.train", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out"), help="directory for model.json (default: out)")
    parser.add_argument("--alpha", type=float, default=DEFAULT_ALPHA, help="Ridge regularisation strength")
    args = parser.parse_args(argv)
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        print("MLFLOW_TRACKING_URI is not set: the model must be registered in the platform's MLflow so the "
              "deploy stage can load it. GoCD agents have it; locally, port-forward MLflow and export "
              "MLFLOW_TRACKING_URI=http://localhost:5000", file=sys.stderr)
        return 2
    record = train(
        args.out,
        # The tenant's own experiment and model names, which the platform gives its agents
        # (MLFLOW_EXPERIMENT_NAME, CD4ML_MODEL_PREFIX); the pipeline may name others.
        experiment=(os.environ.get("CD4ML_EXPERIMENT") or os.environ.get("MLFLOW_EXPERIMENT_NAME")
                    or DEFAULT_EXPERIMENT),
        model_name=(os.environ.get("CD4ML_MODEL_NAME")
                    or os.environ.get("CD4ML_MODEL_PREFIX", "") + DEFAULT_MODEL_NAME),
        pipeline_label=os.environ.get("GO_PIPELINE_LABEL") or None,
        alpha=args.alpha,
    )
    metrics = ", ".join(f"{k} {v:.3f}" for k, v in record["metrics"].items())
    print(f"registered {record['model_uri']} (run {record['run_id']}): {metrics}")
    print(f"wrote {args.out / MODEL_JSON}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
