"""Do no harm: the model's error must not differ much between groups of people, measured as a fitness
function beside accuracy, so a model that is accurate on average but worse for one group is stopped.

The groups are the values of one input (the diabetes data's `sex`, two values); the gap is the largest
group's mean absolute error minus the smallest's, relative to the error over everyone.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

GROUP_FEATURE = "sex"
METRIC = "error_gap"


def group_errors(model: Any, X: pd.DataFrame, y: pd.Series, feature: str = GROUP_FEATURE) -> dict[str, float]:
    """Mean absolute error per value of `feature`, named `<feature>_<index>` in sorted value order (the
    data set's values are standardised numbers, unreadable as names)."""
    predicted = np.asarray(model.predict(X), dtype=float)
    errors = {}
    for index, value in enumerate(sorted(X[feature].unique())):
        mask = (X[feature] == value).to_numpy()
        errors[f"{feature}_{index}"] = float(np.mean(np.abs(predicted[mask] - y.to_numpy()[mask])))
    return errors


def error_gap(errors: dict[str, float]) -> float:
    """(largest group error - smallest) / mean of the groups' errors: 0 when every group fares the same."""
    values = list(errors.values())
    if len(values) < 2:
        return 0.0
    return (max(values) - min(values)) / (sum(values) / len(values))
