"""The return model through training/train.py's own code path (--lane return): the same time split and
label maturity, XGBoost against seed 000's random forest + SMOTE and logistic regression, per-action
thresholds from the cost curve, the order model's artifact contract, and its report section."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xgboost as xgb

from returnguard import synth
from returnguard.fallback import FallbackModel
from returnguard.features import RETURN_FEATURE_NAMES
from returnguard.synth_returns import generate_returns, replay_return_table
from training import train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def return_table():
    data = synth.generate(synth.SynthConfig(orders=12_000, seed=11))
    return replay_return_table(data, generate_returns(data))


@pytest.fixture(scope="module")
def return_model(return_table, tmp_path_factory):
    root = tmp_path_factory.mktemp("return-model")
    result = train.train_frame(
        return_table, root, "--lane", "return", "--return_window_days", "0", "--controls", "0"
    )
    return root / "model", root / "output", result


def test_artifacts_follow_the_order_models_contract(return_model):
    model_dir, output_dir, _ = return_model
    for name in (
        "xgboost-model.ubj",
        "config.json",
        "metrics.json",
        "fallback_model.json",
        "evaluation.json",
    ):
        assert (model_dir / name).is_file(), name
    config = json.loads((model_dir / "config.json").read_text())
    assert config["lane"] == "return" and config["feature_names"] == list(RETURN_FEATURE_NAMES)
    t = config["thresholds"]
    assert 0 < t["medium"] <= t["high"] <= t["critical"] < 1 and t["decision"] == t["high"]
    assert list(config["actions"]) == [
        "refund_after_pickup_inspection",
        "photo_or_video_proof",
        "manual_review",
    ]
    assert [a["threshold"] for a in config["actions"].values()] == [t["medium"], t["high"], t["critical"]]
    fallback = FallbackModel.from_json(json.loads((model_dir / "fallback_model.json").read_text()))
    assert fallback.feature_names == RETURN_FEATURE_NAMES
    assert fallback.thresholds["medium"] <= fallback.thresholds["high"] <= fallback.thresholds["critical"]
    evidence = json.loads((model_dir / "evaluation.json").read_text())
    assert evidence["candidate"]["feature_names"] == list(RETURN_FEATURE_NAMES)
    import pandas as pd

    predictions = pd.read_parquet(output_dir / "test_predictions.parquet")
    assert {"return_id", "label", "score_xgboost", "score_random_forest_smote"} <= set(predictions.columns)


def test_xgboost_beats_seed_000s_baseline_on_the_same_time_split(return_model):
    _, _, result = return_model
    metrics = result["metrics"]
    assert metrics["baseline_features"]["random_forest_smote"] == list(train.SEED_000_FEATURES)
    models = metrics["models"]
    assert set(models) == {"xgboost", "logistic_regression", "random_forest_smote"}
    xgb_auc, rf_auc = models["xgboost"]["roc_auc"], models["random_forest_smote"]["roc_auc"]
    assert 0.85 <= xgb_auc < 0.99 and xgb_auc > rf_auc  # measured 0.900 vs 0.862 (LR 0.860)
    assert models["xgboost"]["pr_auc"] >= 2.5 * models["xgboost"]["positive_rate"]
    # the label-maturity rule is the order lane's: splits separated by the inspection delay
    maturity = metrics["label_maturity"]
    assert maturity["maturity_days"] == 21 and maturity["left_out"] > 0


def test_the_score_never_falls_as_a_risk_signal_rises(return_model, return_table):
    model_dir, _, _ = return_model
    booster = xgb.Booster()
    booster.load_model(str(model_dir / "xgboost-model.ubj"))
    rows = return_table.sample(200, random_state=1)[list(RETURN_FEATURE_NAMES)].to_numpy(dtype=np.float64)
    for name in ("refund_ratio", "return_count", "reason_text_other_customers"):
        column = list(RETURN_FEATURE_NAMES).index(name)
        raised = rows.copy()
        raised[:, column] += 5.0
        before = booster.predict(xgb.DMatrix(rows, feature_names=list(RETURN_FEATURE_NAMES)))
        after = booster.predict(xgb.DMatrix(raised, feature_names=list(RETURN_FEATURE_NAMES)))
        assert (after >= before - 1e-6).all(), name


def test_action_thresholds_come_from_each_actions_costs_and_stay_ordered():
    y = np.array([0] * 80 + [1] * 20)
    scores = np.r_[np.linspace(0.0, 0.6, 80), np.linspace(0.4, 1.0, 20)]
    costs = {"medium": ("a", 0.1, 1.0), "high": ("b", 1.0, 1.0), "critical": ("c", 0.01, 1.0)}
    thresholds, actions = train.action_thresholds(y, scores, costs)
    assert thresholds["medium"] == train.cost_threshold(y, scores, 0.1, 1.0)
    assert thresholds["high"] == train.cost_threshold(y, scores, 1.0, 1.0) > thresholds["medium"]
    # critical's own optimum is lower (cheap on honest returns): raised to high's, never below it
    assert actions["c"]["cost_optimal"] < thresholds["high"] == thresholds["critical"]
    assert thresholds["decision"] == thresholds["high"]


def test_a_return_table_without_a_return_feature_is_refused(return_table, tmp_path):
    path = tmp_path / "t.parquet"
    return_table.drop(columns=["refund_ratio"]).to_parquet(path)
    with pytest.raises(train.TrainingDataError, match="refund_ratio"):
        train.load_table(path, train.RETURN)


def test_the_report_has_a_return_section_with_the_same_plots(
    return_model, return_table, trained_model, tmp_path
):
    from training.evaluate import build_report

    order_model, order_output, _ = trained_model
    model_dir, output_dir, _ = return_model
    page = build_report(
        order_model, order_output, tmp_path, None, (model_dir, output_dir, return_table)
    ).read_text()
    assert "order-risk model" in page and "return-request model" in page
    order_plots = {p.name for p in tmp_path.glob("*.png")}
    return_plots = {p.name for p in (tmp_path / "return").glob("*.png")}
    assert order_plots <= return_plots and "shap_summary.png" in return_plots
    for name in return_plots:
        assert f'src="return/{name}"' in page
    assert "seed 000" in page and "refund_after_pickup_inspection" in page and "≥ 3×" in page
