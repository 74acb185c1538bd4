"""The example's data: scikit-learn's diabetes set, bundled with the library so CI needs no download.

The split is deterministic so two runs on the same commit train on the same rows: a metric that
moves between runs then means the code or the parameters changed, not the sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sklearn.datasets import load_diabetes
from sklearn.model_selection import train_test_split

TEST_SIZE = 0.2
SEED = 42
TARGET = "progression"
"""A quantitative measure of disease progression one year after baseline."""


@dataclass(frozen=True)
class Split:
    X_train: pd.DataFrame
    X_test: pd.DataFrame
    y_train: pd.Series
    y_test: pd.Series

    @property
    def features(self) -> list[str]:
        return list(self.X_train.columns)


def load_frame() -> pd.DataFrame:
    """All 442 rows: ten numeric, already standardised features and the target."""
    data = load_diabetes(as_frame=True)
    return data.frame.rename(columns={"target": TARGET})


def load_split(test_size: float = TEST_SIZE, seed: int = SEED) -> Split:
    frame = load_frame()
    X, y = frame.drop(columns=[TARGET]), frame[TARGET]
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=test_size, random_state=seed)
    return Split(X_train, X_test, y_train, y_test)
