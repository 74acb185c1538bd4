"""The data split and the model's quality, without MLflow."""

from __future__ import annotations

import pandas as pd
import pytest
from model.data import TARGET, load_frame, load_split
from model.gate import DEFAULT_MIN_R2
from model.train import evaluate, fit


def test_the_split_is_the_same_every_time():
    first, second = load_split(), load_split()
    pd.testing.assert_frame_equal(first.X_train, second.X_train)
    pd.testing.assert_series_equal(first.y_test, second.y_test)


def test_the_split_holds_out_a_fifth_of_the_rows_and_shares_none():
    split = load_split()
    assert (len(split.X_train), len(split.X_test)) == (353, 89)
    assert set(split.X_train.index).isdisjoint(split.X_test.index)
    assert list(split.y_train.index) == list(split.X_train.index)
    assert TARGET not in split.features and len(split.features) == 10


def test_the_data_has_no_gaps():
    assert not load_frame().isna().any().any()


def test_the_model_beats_the_default_gate():
    """If this fails, the pipeline's gate would stop every run: fix the model before the pipeline."""
    metrics = evaluate(fit(load_split()), load_split())
    assert metrics["r2"] > DEFAULT_MIN_R2
    assert 0 < metrics["rmse"] < load_split().y_test.std()


def test_evaluate_scores_a_perfect_model_as_perfect():
    split = load_split()

    class Oracle:
        def predict(self, X):
            return split.y_test.loc[X.index].to_numpy()

    assert evaluate(Oracle(), split) == pytest.approx({"r2": 1.0, "rmse": 0.0})
