"""training/train.py: time split, thresholds, baselines, artifacts; training/evaluate.py's report."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from returnguard.features import FEATURE_NAMES
from training import train
from training.evaluate import build_report

pytestmark = pytest.mark.slow


def test_artifacts_record_features_thresholds_window_and_metrics(trained_model):
    model_dir, output_dir, _ = trained_model
    config = json.loads((model_dir / "config.json").read_text())
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert config["feature_names"] == list(FEATURE_NAMES)
    t = config["thresholds"]
    assert 0 < t["medium"] <= t["high"] <= t["critical"] < 1
    assert t["decision"] == t["high"]
    window = config["data_window"]
    assert (
        window["train"]["to"]
        < window["validation"]["from"]
        <= window["validation"]["to"]
        < window["test"]["from"]
    )
    assert config["model_version"].startswith("v")
    assert set(metrics["models"]) == {"xgboost", "logistic_regression", "random_forest_smote"}
    for result in metrics["models"].values():
        assert 0.5 < result["roc_auc"] <= 1
        assert result["pr_auc"] > result["positive_rate"]
    assert not list(model_dir.glob(".staging-*"))
    predictions = pd.read_parquet(output_dir / "test_predictions.parquet")
    assert len(predictions) == metrics["models"]["xgboost"]["rows"]


def test_model_beats_chance_by_a_wide_margin_on_the_later_window(trained_model):
    _, _, result = trained_model
    xgb_metrics = result["metrics"]["models"]["xgboost"]
    assert xgb_metrics["roc_auc"] >= 0.85
    assert xgb_metrics["pr_auc"] >= 3 * xgb_metrics["positive_rate"]


def test_split_is_by_time_never_random():
    table = pd.DataFrame({"order_time_ms": np.arange(1000) * 1000, "label": np.tile([0, 1], 500)})
    tr, va, te = train.time_split(table, 0.2, 0.15)
    assert tr.order_time_ms.max() < va.order_time_ms.min()
    assert va.order_time_ms.max() < te.order_time_ms.min()
    assert len(tr) + len(va) + len(te) == 1000


def test_cost_threshold_minimises_expected_cost():
    y = np.array([0, 0, 0, 0, 1, 0, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    threshold = train.cost_threshold(y, scores, cost_fp=1.0, cost_fn=10.0)
    # Flagging from 0.5 up costs one false positive; any higher cut misses a 10-cost positive.
    assert threshold == 0.5
    assert train.cost_threshold(y, scores, cost_fp=10.0, cost_fn=1.0) == 0.7


def test_missing_columns_are_named(tmp_path):
    pd.DataFrame({"order_time_ms": [1], "label": [0]}).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(train.TrainingDataError, match="order_amount"):
        train.load_table(tmp_path / "t.csv")
    with pytest.raises(train.TrainingDataError, match="not found"):
        train.load_table(tmp_path / "absent")


def test_cli_reports_bad_data_without_a_traceback(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code = train.main(["--train", str(tmp_path / "empty"), "--model-dir", str(tmp_path / "m")])
    assert code == 2
    assert "no .parquet or .csv" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_report_has_every_plot_and_the_metrics(trained_model, small_table, tmp_path):
    model_dir, output_dir, _ = trained_model
    path = build_report(model_dir, output_dir, tmp_path, small_table)
    page = path.read_text()
    for image in (
        "roc.png",
        "pr.png",
        "score_distribution.png",
        "calibration.png",
        "threshold_cost.png",
        "shap_summary.png",
    ):
        assert (tmp_path / image).stat().st_size > 5_000
        assert image in page
    assert "Random forest + SMOTE" in page and "Logistic regression" in page
    assert json.loads((tmp_path / "metrics.json").read_text())["split"] == "time"
