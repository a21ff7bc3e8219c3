"""A small card-payment model trained in the test session on the payment features of a synthetic
history (the reference replay), packed beside an order model as one archive: `<dir>/payment/`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd

from returnguard.features import PAYMENT_FEATURE_NAMES
from returnguard.payment_scoring import PAYMENT_MODEL_DIR

PAYMENT_TEST_VERSION = "payment-test-1"
PAYMENT_TEST_THRESHOLDS = {"decision": 0.5, "medium": 0.3, "high": 0.6, "critical": 0.85}


def payment_table(customers: int = 150, days: int = 45, seed: int = 9) -> pd.DataFrame:
    """Point-in-time payment vectors with the generator's ground truth (`label`: any fraud scenario)."""
    from returnguard import payment_synth
    from returnguard.payments import replay

    table = payment_synth.generate(
        payment_synth.PaymentSynthConfig(customers=customers, days=days, seed=seed)
    )
    _, walk = replay(*payment_synth.to_contexts(table))
    vectors = pd.DataFrame([vector for _, vector in walk])
    vectors["label"] = (table["scenario"] != "genuine").astype(int).to_numpy()
    vectors["transaction_time_ms"] = payment_synth._ms(table["transaction_time"])
    vectors["scenario"] = table["scenario"].to_numpy()
    return vectors


def add_payment_model(order_model_dir: Path, out: Path, table: pd.DataFrame, rounds: int = 40) -> Path:
    """`out`: a copy of the order model (with whatever lanes it has) plus a payment model under `payment/`."""
    import xgboost as xgb

    shutil.copytree(order_model_dir, out)
    lane = out / PAYMENT_MODEL_DIR
    lane.mkdir()
    matrix = xgb.DMatrix(
        table[list(PAYMENT_FEATURE_NAMES)].astype(float),
        label=table["label"],
        feature_names=list(PAYMENT_FEATURE_NAMES),
    )
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 4, "eta": 0.3, "nthread": 1, "seed": 1}, matrix, rounds
    )
    booster.save_model(str(lane / "xgboost-model.ubj"))
    (lane / "config.json").write_text(
        json.dumps(
            {
                "model_version": PAYMENT_TEST_VERSION,
                "feature_names": list(PAYMENT_FEATURE_NAMES),
                "thresholds": PAYMENT_TEST_THRESHOLDS,
            }
        )
    )
    return out
