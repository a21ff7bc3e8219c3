"""Training on the raw-transaction payment features: three models in one run, the alert-budget
threshold, label maturity, and an artifact the payment lane of the inference code loads."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from returnguard import payment_synth
from returnguard.features import PAYMENT_FEATURE_NAMES
from returnguard.payments import replay
from training import payments
from training.inference import _load

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    table = payment_synth.generate(payment_synth.PaymentSynthConfig(customers=150, days=90, seed=4))
    _, walk = replay(*payment_synth.to_contexts(table))
    rows = pd.DataFrame([vector for _, vector in walk])
    rows["label"] = (table["label"] == 1).fillna(False).astype(int).to_numpy()  # what the lake knows
    rows["transaction_time_ms"] = payment_synth._ms(table["transaction_time"])
    root = tmp_path_factory.mktemp("payment-training")
    rows.to_parquet(root / "training-data.parquet")
    out = root / "payment"
    result = payments.train(
        [
            "--training-data", str(root / "training-data.parquet"),
            "--label-maturity-days", "20",
            "--out", str(out),
            "--alerts-per-day", "25",
            "--num-round", "80",
            "--forest-trees", "30",
        ]
    )  # fmt: skip
    return rows, out, result


def test_three_models_are_measured_on_the_latest_payments(trained) -> None:
    _, out, result = trained
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["models"]) == {"logistic_regression", "random_forest", "xgboost"}
    for model in metrics["models"].values():
        assert {
            "roc_auc",
            "pr_auc",
            "precision_at_threshold",
            "recall_at_threshold",
            "f1_at_threshold",
        } <= set(model)
        assert set(model["confusion_matrix"]) == {
            "true_positive",
            "false_positive",
            "false_negative",
            "true_negative",
        }
        assert "alerts_per_1000_transactions" in model
    assert metrics["split"] == "time"
    assert metrics["models"]["xgboost"]["roc_auc"] > 0.8
    assert (
        metrics["threshold_rule"]["kind"] == "alert_budget"
        and metrics["threshold_rule"]["alerts_per_day"] == 25
    )


def test_young_payments_are_left_out_and_the_levels_are_ordered(trained) -> None:
    rows, out, _ = trained
    config = json.loads((out / "config.json").read_text())
    maturity = config["label_maturity"]
    young = rows.transaction_time_ms > rows.transaction_time_ms.max() - 20 * 86_400_000
    assert maturity["rows_left_out_too_young"] == int(young.sum()) > 0
    t = config["thresholds"]
    assert 0 <= t["medium"] <= t["high"] <= t["critical"] <= 1 and t["high"] == config["threshold"]
    assert "Payments: raw card transactions" in (out / "report" / "report.html").read_text()


def test_the_artifact_is_the_payment_lane(trained) -> None:
    _, out, _ = trained
    model = _load(str(out), "payment")
    assert model.feature_names == PAYMENT_FEATURE_NAMES
