"""A small return model trained in the test session on the declared return features (until the return
lane's trained model ships), packed beside an order model as one archive: `<dir>/return/`, with a
hand-written fallback model beside it (`return/fallback_model.json`, as training writes one)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd

from returnguard.fallback import FILE_NAME as FALLBACK_FILE
from returnguard.features import RETURN_FEATURE_NAMES
from returnguard.returns_policy import RETURN_MODEL_DIR
from tests.unit.returns.requests import RETURN_TEST_VERSION, return_fallback

RETURN_TEST_THRESHOLDS = {"decision": 0.5, "medium": 0.3, "high": 0.6, "critical": 0.85}


def return_table(orders: int = 6000, seed: int = 5) -> pd.DataFrame:
    from returnguard import synth, synth_returns

    data = synth.generate(synth.SynthConfig(orders=orders, seed=seed))
    return synth_returns.replay_return_table(data, synth_returns.generate_returns(data))


def add_return_model(order_model_dir: Path, out: Path, table: pd.DataFrame, rounds: int = 40) -> Path:
    """`out`: a copy of the order model with a return model trained on `table` under `return/`."""
    import xgboost as xgb

    shutil.copytree(order_model_dir, out)
    lane = out / RETURN_MODEL_DIR
    lane.mkdir()
    matrix = xgb.DMatrix(
        table[list(RETURN_FEATURE_NAMES)].astype(float),
        label=table["label"],
        feature_names=list(RETURN_FEATURE_NAMES),
    )
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 4, "eta": 0.2, "nthread": 1, "seed": 1}, matrix, rounds
    )
    booster.save_model(str(lane / "xgboost-model.ubj"))
    (lane / "config.json").write_text(
        json.dumps(
            {
                "model_version": RETURN_TEST_VERSION,
                "feature_names": list(RETURN_FEATURE_NAMES),
                "thresholds": RETURN_TEST_THRESHOLDS,
            }
        )
    )
    (lane / FALLBACK_FILE).write_text(json.dumps(return_fallback()))
    return out
