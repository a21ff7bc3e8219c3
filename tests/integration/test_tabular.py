"""training/tabular.py end to end on a generated card-fraud-shaped file: train, artifacts, report, score,
and the trained model served by the local inference server."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import requests

from local.inference_server import serve
from training import tabular

pytestmark = pytest.mark.slow

BUDGET = 15.0  # alerts per 1,000 transactions
SMALL = ["--num-round", "150", "--forest-trees", "40"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("tabular")
    csv = root / "transactions.csv"
    tabular.generate(12_000, fraud_rate=0.03, seed=3).to_csv(csv, index=False)
    model_dir = root / "model"
    code = tabular.main(
        ["train", "--csv", str(csv), "--out", str(model_dir), "--alerts-per-1000", str(BUDGET), *SMALL]
    )
    assert code == 0
    return csv, model_dir


def read(model_dir, name):
    return json.loads((model_dir / name).read_text())


def test_config_carries_the_file_features_and_the_threshold_rule(run):
    _, model_dir = run
    config = read(model_dir, "config.json")
    assert config["feature_source"] == "file"
    assert config["feature_names"] == [
        *(f"V{k}" for k in range(1, 29)),
        "Amount",
    ]  # Time splits, not a feature
    assert config["threshold_rule"] == {
        "kind": "alert_budget",
        "costs": {"false_positive": 1.0, "false_negative": 25.0},
        "max_alerts_per_1000": BUDGET,
    }
    assert 0 < config["threshold"] < 1
    assert config["thresholds"]["decision"] == config["threshold"]
    assert config["split"]["kind"] == "time"
    assert not list(model_dir.glob(".staging-*"))


def test_metrics_for_three_models_at_their_thresholds(run):
    _, model_dir = run
    metrics = read(model_dir, "metrics.json")
    assert metrics["split"] == "time"
    assert set(metrics["models"]) == {"logistic_regression", "random_forest", "xgboost"}
    test_rows = metrics["split_detail"]["splits"]["test"]["rows"]
    for m in metrics["models"].values():
        matrix = m["confusion_matrix"]
        assert sum(matrix.values()) == test_rows == m["rows"]
        flagged = matrix["true_positive"] + matrix["false_positive"]
        assert m["alerts_per_1000_transactions"] == pytest.approx(1000 * flagged / test_rows)
        precision, recall = m["precision_at_threshold"], m["recall_at_threshold"]
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        assert m["f1_at_threshold"] == pytest.approx(f1)
        assert m["pr_auc"] > m["positive_rate"]
        # The budget is met where the threshold was chosen.
        assert m["validation_alerts_per_1000_transactions"] <= BUDGET


def test_trees_beat_the_logistic_baseline_and_any_single_column(run):
    csv, model_dir = run
    from sklearn.metrics import roc_auc_score

    metrics = read(model_dir, "metrics.json")["models"]
    table = pd.read_csv(csv)
    y = table["Class"].to_numpy()
    best_column = max(
        max(roc_auc_score(y, table[c]), 1 - roc_auc_score(y, table[c])) for c in table.columns if c != "Class"
    )
    assert metrics["xgboost"]["roc_auc"] > metrics["logistic_regression"]["roc_auc"]
    assert metrics["xgboost"]["roc_auc"] > best_column + 0.05


def test_report_has_the_payments_section_and_plots(run):
    _, model_dir = run
    page = (model_dir / "report" / "report.html").read_text()
    assert "Payments: labelled CSV" in page and "Split by time on column Time" in page
    assert "at most 15.000 alerts per 1,000 transactions" in page
    for plot in ("roc.png", "pr.png"):
        assert f'src="{plot}"' in page
        assert (model_dir / "report" / plot).stat().st_size > 1000


def test_scored_csv_has_exact_contributions_and_the_flag(run, tmp_path):
    csv, model_dir = run
    out = tmp_path / "scored.csv"
    assert tabular.main(["score", "--model-dir", str(model_dir), "--csv", str(csv), "--out", str(out)]) == 0
    scored = pd.read_csv(out)
    config = read(model_dir, "config.json")
    assert len(scored) == 12_000 and scored["row"].tolist() == list(range(1, 12_001))
    assert (scored["flagged"] == (scored["score"] >= config["threshold"])).all()
    assert (scored["Class"] == pd.read_csv(csv)["Class"]).all()
    contributions = scored[[f"contribution_{n}" for n in config["feature_names"]]].sum(axis=1)
    margin = scored["base_value"] + contributions
    assert np.allclose(1 / (1 + np.exp(-margin)), scored["score"], atol=1e-5)


def test_score_refuses_a_file_without_the_model_columns(run, tmp_path, capsys):
    csv, model_dir = run
    broken = tmp_path / "broken.csv"
    pd.read_csv(csv).drop(columns=["V7", "Amount"]).head(50).to_csv(broken, index=False)
    out = tmp_path / "out.csv"
    assert (
        tabular.main(["score", "--model-dir", str(model_dir), "--csv", str(broken), "--out", str(out)]) == 2
    )
    assert "V7, Amount" in capsys.readouterr().err
    assert not out.exists()


def test_inference_server_serves_the_artifact_like_the_score_command(run, tmp_path):
    csv, model_dir = run
    rows = pd.read_csv(csv).sample(25, random_state=1)
    features = read(model_dir, "config.json")["feature_names"]
    rows.to_csv(tmp_path / "rows.csv", index=False)
    tabular.main(
        [
            "score",
            "--model-dir",
            str(model_dir),
            "--csv",
            str(tmp_path / "rows.csv"),
            "--out",
            str(tmp_path / "s.csv"),
        ]
    )
    expected = pd.read_csv(tmp_path / "s.csv")
    handle = serve(str(model_dir))
    try:
        ping = requests.get(f"{handle.url}/ping", timeout=5).json()
        assert ping["model_version"] == read(model_dir, "config.json")["model_version"]
        response = requests.post(
            f"{handle.url}/invocations", json={"instances": rows[features].to_dict("records")}, timeout=10
        )
        assert response.status_code == 200
        predictions = response.json()["predictions"]
        assert [p["score"] for p in predictions] == pytest.approx(expected["score"].tolist(), abs=1e-6)
        first = predictions[0]
        assert list(first["contributions"]) == features
        assert first["contributions"]["V14"] == pytest.approx(expected["contribution_V14"][0], abs=1e-5)
        margin = first["base_value"] + sum(first["contributions"].values())
        assert first["score"] == pytest.approx(1 / (1 + math.exp(-margin)), abs=1e-6)
        body = "\n".join(",".join(repr(float(v)) for v in row) for row in rows[features].to_numpy())
        by_csv = requests.post(
            f"{handle.url}/invocations", data=body, headers={"Content-Type": "text/csv"}, timeout=10
        )
        assert [p["score"] for p in by_csv.json()["predictions"]] == pytest.approx(
            [p["score"] for p in predictions], abs=1e-7
        )
        wrong = requests.post(
            f"{handle.url}/invocations", json={"instances": [{"order_amount": 1.0}]}, timeout=5
        )
        assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "invalid_feature"
    finally:
        handle.stop()


def test_a_file_without_a_time_column_is_split_stratified(tmp_path):
    csv = tmp_path / "no_time.csv"
    tabular.generate(4000, fraud_rate=0.04, seed=8).drop(columns=["Time"]).to_csv(csv, index=False)
    out = tmp_path / "model"
    args = ["train", "--csv", str(csv), "--out", str(out), "--num-round", "40", "--forest-trees", "10"]
    assert tabular.main(args) == 0
    metrics = read(out, "metrics.json")
    assert metrics["split"] == "stratified"
    assert metrics["threshold_rule"]["kind"] == "cost"
    assert "stratified random split" in (out / "report" / "report.html").read_text()
    rates = [s["positives"] / s["rows"] for s in metrics["split_detail"]["splits"].values()]
    assert max(rates) - min(rates) < 0.005
