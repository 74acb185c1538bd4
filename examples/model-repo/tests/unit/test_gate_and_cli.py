"""The gate's verdict and both commands' failures that need no MLflow server."""

from __future__ import annotations

import pytest
from model import gate, train


def test_a_worse_model_is_refused_with_both_numbers_and_the_run():
    passed, message = gate.verdict(0.1234, 0.3, "abc123")
    assert not passed
    assert message == "r2 0.12 is below the threshold 0.30 (run abc123)"


def test_a_good_enough_model_passes():
    passed, message = gate.verdict(0.46, 0.3, "abc123")
    assert passed
    assert message.startswith("r2 0.46 meets the threshold 0.30 (run abc123)") and "passed" in message


def test_the_threshold_itself_passes():
    assert gate.verdict(0.3, 0.3, "r")[0]


def test_a_near_miss_is_not_printed_as_equal_to_the_threshold():
    passed, message = gate.verdict(0.2999, 0.3, "r")
    assert not passed
    assert "r2 0.2999 is below the threshold 0.3000" in message


def test_gate_without_model_json_fails_clearly(tmp_path, capsys):
    assert gate.main(["--model", str(tmp_path / "missing.json"), "--min-r2", "0.3"]) == 1
    assert "cannot read the run id from" in capsys.readouterr().err


def test_gate_rejects_a_threshold_that_is_not_a_number(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("CD4ML_MIN_R2", "high")
    with pytest.raises(SystemExit) as exit_:
        gate.main(["--model", str(tmp_path / "model.json")])
    assert exit_.value.code == 2
    assert "CD4ML_MIN_R2='high' is not a number" in capsys.readouterr().err


def test_train_refuses_to_run_without_a_tracking_server(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert train.main(["--out", str(tmp_path)]) == 2
    assert "MLFLOW_TRACKING_URI is not set" in capsys.readouterr().err
    assert not (tmp_path / "model.json").exists()


def test_the_do_no_harm_gate_fails_a_model_built_to_be_unfair_and_passes_the_example():
    """An unfair model: the example's, but 40 worse for one group (a bias a data error could introduce)."""
    from model import fairness
    from model.data import load_split
    from model.train import fit

    split = load_split()
    fair = fit(split)

    class Unfair:
        def predict(self, X):
            return fair.predict(X) + 40.0 * (X[fairness.GROUP_FEATURE] > 0).to_numpy()

    fair_gap = fairness.error_gap(fairness.group_errors(fair, split.X_test, split.y_test))
    unfair_gap = fairness.error_gap(fairness.group_errors(Unfair(), split.X_test, split.y_test))
    assert gate.harm_verdict(fair_gap, gate.DEFAULT_MAX_ERROR_GAP, "r1")[0]
    passed, message = gate.harm_verdict(unfair_gap, gate.DEFAULT_MAX_ERROR_GAP, "r2")
    assert not passed and "error_gap" in message and "do no harm" in message
    assert gate.GAP_METRIC == fairness.METRIC


def test_the_model_service_reads_the_reference_where_training_writes_it():
    from model import train
    from service import serve

    assert serve.REFERENCE_KEY == train.REFERENCE_KEY
