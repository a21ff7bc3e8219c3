"""training/train.py: time split, thresholds, baselines, artifacts; training/evaluate.py's report."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from returnguard import gate, synth
from returnguard.features import FEATURE_NAMES, RETURN_FEATURE_NAMES
from returnguard.payment_scoring import PAYMENT_MODEL_DIR
from returnguard.returns_policy import RETURN_MODEL_DIR
from tests.unit.returns.requests import RETURN_TEST_VERSION
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


def _timeline(days: int = 400, labelled_every: int = 5) -> pd.DataFrame:
    """One order a day; every fifth order labelled (alternately abusive) 10 days after it was placed."""
    t = np.arange(days, dtype=np.int64) * train.DAY_MS
    labelled = np.arange(days) % labelled_every == 0
    label = np.where(labelled, (np.arange(days) // labelled_every) % 2, 0)
    labeled_at = pd.array(np.where(labelled, t + 10 * train.DAY_MS, 0), dtype="Int64")
    labeled_at[~labelled] = pd.NA
    return pd.DataFrame({"order_time_ms": t, "label": label, "labeled_at_ms": labeled_at})


def test_the_fallback_never_counts_a_risk_signal_against_the_risk(trained_model):
    # a logistic regression on collinear risk signals flips signs (return rate over the last 6 orders
    # came out at -1.76 beside +1.45 for the overall rate): in degraded mode customers who returned 6 of
    # 6 orders were approved. Features with a known direction are held at 0 rather than fitted against it.
    from returnguard.features import FEATURES

    model_dir, _, _ = trained_model
    fallback = json.loads((model_dir / "fallback_model.json").read_text())
    direction = {f.name: f.direction for f in FEATURES}
    against = {
        name: c
        for name, c in zip(fallback["feature_names"], fallback["coefficients"], strict=True)
        if direction[name] * c < 0
    }
    assert against == {}
    metrics = json.loads((model_dir / "metrics.json").read_text())
    held = metrics["monotone"]["logistic_held_at_zero"]
    assert all(fallback["coefficients"][fallback["feature_names"].index(name)] == 0.0 for name in held)


def test_split_is_by_time_never_random():
    table = _timeline()
    tr, va, te, report = train.time_split(table, 0.2, 0.15)
    assert tr.order_time_ms.max() < va.order_time_ms.min()
    assert va.order_time_ms.max() < te.order_time_ms.min()
    assert len(tr) + len(va) + len(te) + report["left_out"] == len(table)


def test_splits_are_separated_by_the_maturity_gap_and_young_orders_are_counted():
    table = _timeline()
    maturity = 30 * train.DAY_MS
    tr, va, te, report = train.time_split(table, 0.2, 0.15, maturity)
    assert va.order_time_ms.min() - tr.order_time_ms.max() > maturity - train.DAY_MS
    assert te.order_time_ms.min() - va.order_time_ms.max() > maturity - train.DAY_MS
    as_of = int(table.labeled_at_ms.max())
    assert te.order_time_ms.max() <= as_of - maturity
    young = int((table.order_time_ms > as_of - maturity).sum())
    assert report["too_young_at_end"] == young > 0
    assert report["in_gaps"] > 0
    assert report["left_out"] == len(table) - len(tr) - len(va) - len(te) >= young + report["in_gaps"]
    assert report["splits"]["test"]["rows"] == len(te)


def test_a_validation_positive_labelled_after_the_test_window_starts_is_left_out():
    # Given a validation-window positive whose label only arrived after the test window began
    table = _timeline()
    maturity = 30 * train.DAY_MS
    _, va, te, _ = train.time_split(table, 0.2, 0.15, maturity)
    test_from = int(te.order_time_ms.min())
    late = int(va.index[va.label == 1][-1])
    table.loc[late, "labeled_at_ms"] = test_from + train.DAY_MS
    # When the split is made again
    _, va, _, report = train.time_split(table, 0.2, 0.15, maturity)
    # Then the validation window neither uses it as a positive nor as a negative, and counts it
    assert late not in va.index
    assert report["splits"]["validation"]["excluded"]["labelled_later_positive"] == 1


def test_a_training_row_uses_only_labels_known_when_validation_starts():
    table = _timeline()
    maturity = 30 * train.DAY_MS
    tr, va, _, report = train.time_split(table, 0.2, 0.15, maturity)
    validation_from = int(va.order_time_ms.min())
    assert (tr.labeled_at_ms.dropna() < validation_from).all()
    # An unlabelled order is a known negative only once it is mature at the cut.
    assert (tr.order_time_ms[tr.labeled_at_ms.isna()] + maturity <= validation_from).all()
    assert report["splits"]["train"]["positives"] == int(tr.label.sum())


def test_history_too_short_for_the_gaps_is_refused():
    with pytest.raises(train.TrainingDataError, match="maturity gap"):
        train.time_split(_timeline(days=100), 0.2, 0.15, 40 * train.DAY_MS)


def test_a_table_without_label_times_is_refused(tmp_path):
    table = pd.DataFrame({name: [0.0] for name in FEATURE_NAMES} | {"order_time_ms": [1], "label": [0]})
    table.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(train.TrainingDataError, match="labeled_at_ms"):
        train.load_table(tmp_path / "t.csv")


def test_metrics_count_the_orders_left_out_for_label_maturity(trained_model):
    model_dir, _, _ = trained_model
    metrics = json.loads((model_dir / "metrics.json").read_text())
    maturity = metrics["label_maturity"]
    assert maturity["maturity_days"] == 51
    assert maturity["too_young_at_end"] > 0 and maturity["in_gaps"] > 0
    assert maturity["used"] + maturity["left_out"] == maturity["orders"]
    assert maturity["splits"]["test"]["rows"] == metrics["models"]["xgboost"]["rows"]


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


def test_permuted_label_control_is_at_chance_and_the_shuffled_time_control_is_reported(trained_model):
    model_dir, _, _ = trained_model
    metrics = json.loads((model_dir / "metrics.json").read_text())
    permuted = metrics["controls"]["permuted_labels"]
    assert 0.45 <= permuted["roc_auc"] <= 0.55
    assert permuted["at_chance"] is True
    shuffled = metrics["controls"]["shuffled_time"]
    assert 0.5 < shuffled["roc_auc"] <= 1 and shuffled["rows"] > 0


def test_results_per_hidden_abuse_pattern(trained_model):
    model_dir, output_dir, _ = trained_model
    metrics = json.loads((model_dir / "metrics.json").read_text())
    patterns = metrics["per_pattern"]["xgboost"]
    assert set(patterns) - {"all"} <= set(synth.ABUSE_TYPES) - {"none"}
    assert len(patterns) >= 5
    assert sum(p["positives"] for n, p in patterns.items() if n != "all") == patterns["all"]["positives"]
    for p in patterns.values():
        assert 0 <= p["roc_auc"] <= 1 and 0 <= p["recall_top_2pct"] <= 1
    predictions = pd.read_parquet(output_dir / "test_predictions.parquet")
    assert predictions.loc[predictions.label == 1, "abuse_type"].isin(list(patterns)).all()


def test_per_pattern_ranks_each_pattern_against_every_negative():
    frame = pd.DataFrame(
        {
            "label": [0] * 96 + [1, 1, 1, 1],
            "abuse_type": [None] * 96 + ["wardrobing", "wardrobing", "cod_refusal", "cod_refusal"],
        }
    )
    scores = np.r_[np.linspace(0.1, 0.5, 96), [0.99, 0.98, 0.01, 0.02]]
    result = train.per_pattern(frame, scores)
    assert result["wardrobing"] == {"positives": 2, "roc_auc": 1.0, "recall_top_2pct": 1.0}
    assert result["cod_refusal"] == {"positives": 2, "roc_auc": 0.0, "recall_top_2pct": 0.0}
    assert result["all"]["positives"] == 4 and result["all"]["roc_auc"] == 0.5


def test_report_states_targets_without_passing_or_failing_the_model(trained_model, small_table, tmp_path):
    model_dir, output_dir, _ = trained_model
    page = build_report(model_dir, output_dir, tmp_path, small_table).read_text()
    for section in ("Targets", "Label maturity", "Honesty controls", "Per abuse pattern"):
        assert f"<h2>{section}" in page
    assert "target ≥ 0.90" in page and "target ≥ 9×" in page
    assert "missed" not in page and "met:" not in page
    assert "permuted labels" in page and "shuffled time order" in page
    shares = json.loads((tmp_path / "metrics.json").read_text())["shap_share"]
    assert set(shares) == set(FEATURE_NAMES) and sum(shares.values()) == pytest.approx(1.0)
    assert "<h2>SHAP share per feature" in page and "address_other_customers" in page


def test_a_risk_signal_rising_never_lowers_the_score(trained_model, small_table):
    # A customer whose 6 of 6 last orders came back, 4 of them claimed damaged, must not score lower
    # than the same customer with fewer returns or claims.
    import xgboost as xgb

    from returnguard.features import RISK_SIGNALS

    model_dir, _, _ = trained_model
    booster = xgb.Booster()
    booster.load_model(str(model_dir / train.MODEL_FILE))
    rows = small_table.sample(300, random_state=1)[list(FEATURE_NAMES)].reset_index(drop=True)
    base = booster.predict(xgb.DMatrix(rows, feature_names=list(FEATURE_NAMES)))
    for name in sorted(RISK_SIGNALS):
        step = 0.2 if "rate" in name else 2.0
        higher = rows.assign(**{name: rows[name] + step})
        raised = booster.predict(xgb.DMatrix(higher, feature_names=list(FEATURE_NAMES)))
        assert (raised >= base - 1e-7).all(), name


def test_the_cost_of_the_monotone_constraints_is_reported(trained_model, small_table, tmp_path):
    model_dir, output_dir, _ = trained_model
    metrics = json.loads((model_dir / "metrics.json").read_text())
    monotone = metrics["monotone"]
    assert "customer_damaged_claims" in monotone["constrained"]
    unconstrained = monotone["unconstrained"]["roc_auc"]
    assert monotone["roc_auc_cost"] == pytest.approx(unconstrained - metrics["models"]["xgboost"]["roc_auc"])
    page = build_report(model_dir, output_dir, tmp_path, small_table).read_text()
    assert "<h2>Monotone constraints" in page and "cost of the constraints" in page
    assert train.monotone_constraints().count("1") == len(monotone["constrained"])


def test_the_fallback_model_scores_in_pure_python_as_sklearn_did(trained_model, small_table):
    from returnguard.fallback import FallbackModel

    model_dir, output_dir, result = trained_model
    served = FallbackModel.load(model_dir / "fallback_model.json")
    metrics = result["metrics"]
    assert metrics["fallback"] == {"model": "logistic_regression", "file": "fallback_model.json"}
    assert served.metrics["roc_auc"] == metrics["models"]["logistic_regression"]["roc_auc"]
    assert 0 < served.thresholds["medium"] <= served.thresholds["high"] <= served.thresholds["critical"] < 1
    predictions = pd.read_parquet(output_dir / "test_predictions.parquet").head(300)
    rows = small_table.set_index("order_id").loc[predictions["order_id"]]
    for (_, row), expected in zip(rows.iterrows(), predictions["score_logistic_regression"], strict=True):
        scored = served.score({name: float(row[name]) for name in FEATURE_NAMES})
        assert scored.score == pytest.approx(float(expected), abs=1e-9)
        p = scored.score
        logit = np.log(p / (1 - p))
        # the logit of a probability near 0 or 1 is only known to float precision over p(1-p): a score
        # of 1 - 1e-10 (logit 23.2) gives its logit to about 1e-6, whatever the contributions
        conditioned = 1e-6 + 4 * np.finfo(float).eps / (p * (1 - p))
        assert sum(scored.contributions.values()) + served.intercept == pytest.approx(logit, abs=conditioned)
    assert (
        "Fallback model" in (build_report(model_dir, output_dir, model_dir.parent / "fb-report")).read_text()
    )


def test_make_model_packs_the_fallback_for_sagemaker_and_the_api_stack(trained_model, tmp_path):
    import tarfile

    from training.bootstrap import package

    model_dir, _, _ = trained_model
    model_tar, _ = package(model_dir, tmp_path)
    with tarfile.open(model_tar) as archive:
        assert "fallback_model.json" in archive.getnames()
    copied = json.loads((tmp_path / "fallback_model.json").read_text())
    assert copied == json.loads((model_dir / "fallback_model.json").read_text())


def test_make_model_packs_the_return_model_in_the_same_archive(two_lane_model, tmp_path):
    import tarfile

    from training.bootstrap import package
    from training.inference import model_fn

    model_tar, _ = package(two_lane_model, tmp_path / "out")
    with tarfile.open(model_tar) as archive:
        assert {
            "return/xgboost-model.ubj",
            "return/config.json",
            "return/fallback_model.json",  # degraded return decisions need it
        } <= set(archive.getnames())
        archive.extractall(tmp_path / "unpacked", filter="data")
    assert set(model_fn(str(tmp_path / "unpacked")).lanes) == {"return"}
    # beside it, for the api stack (RG_MODEL_CONFIG's `return` thresholds)
    assert (tmp_path / "out" / "return" / "config.json").is_file()
    # and the return fallback, which the api stack ships inside the score function
    assert (tmp_path / "out" / "return" / "fallback_model.json").read_text() == (
        two_lane_model / "return" / "fallback_model.json"
    ).read_text()


def _lanes_args(champion, tmp_path, *extra: str):
    """An order run's arguments as the retraining job passes them (the serving archive as --champion)."""
    return train.parse_args(
        [
            "--train",
            "unused",
            "--output-data-dir",
            str(tmp_path / "output"),
            "--champion",
            str(champion),
            *extra,
        ]
    )


# Gate bounds nothing fails: the lane's candidate is approved whatever its numbers.
LENIENT_GATE = (
    *("--gate_max_roc_auc_drop", "1", "--gate_max_pr_auc_drop", "1", "--gate_max_level_psi", "1000"),
    *("--gate_max_alert_rate", "1", "--gate_max_alert_rate_ratio", "1000000"),
    *("--gate_min_window_rows", "1", "--gate_min_window_positives", "1"),
)


def test_an_order_candidate_keeps_the_serving_archives_return_lane_without_return_data(
    two_lane_model, tmp_path
):
    # Given the serving archive as the retraining job's champion channel gets it (both lanes in one
    # model.tar.gz) and no return training data
    from training.bootstrap import package

    channel = tmp_path / "champion"
    package(two_lane_model, channel)
    # When an order candidate's other lanes are resolved
    lanes, chosen = train.resolve_lanes(_lanes_args(channel, tmp_path), "v-new", tmp_path / "work")
    # Then it serves the same return model (with its fallback), recorded as not retrained; no payment lane
    assert lanes["return"] == {"serving_lane": True, "retrained": False, "serves": "serving"}
    assert lanes["payment"] == {"serving_lane": False, "retrained": False, "serves": None}
    for name in ("xgboost-model.ubj", "config.json", "fallback_model.json"):
        assert (chosen["return"] / name).read_bytes() == (two_lane_model / "return" / name).read_bytes()
    assert set(chosen) == {"return"}
    assert train.OTHER_LANE_DIRS == (RETURN_MODEL_DIR, PAYMENT_MODEL_DIR)  # the folders inference loads


def test_a_serving_return_lane_that_cannot_be_read_is_recorded_and_never_dropped_silently(
    two_lane_model, tmp_path
):
    # Given a serving archive whose order model is fine but whose return model is not a model
    import shutil

    broken = tmp_path / "serving"
    shutil.copytree(two_lane_model, broken)
    (broken / "return" / "xgboost-model.ubj").write_bytes(b"not a model")
    # When an order candidate's other lanes are resolved
    lanes, chosen = train.resolve_lanes(_lanes_args(broken, tmp_path), "v-new", tmp_path / "work")
    # Then the lane carries the error (the gate rejects the candidate for it) and the broken model is not copied
    assert lanes["return"]["serves"] is None and "XGBoostError" in lanes["return"]["error"]
    assert "return" not in chosen
    assert gate.decide({"lanes": lanes, **_approvable()}, FEATURE_NAMES).reasons == (
        "return_lane_unresolved",
    )
    # and a serving archive that does not open at all: every lane unresolved, nothing chosen
    (tmp_path / "bad.tar.gz").write_bytes(b"not an archive")
    lanes, chosen = train.resolve_lanes(
        _lanes_args(tmp_path / "bad.tar.gz", tmp_path), "v-new", tmp_path / "w2"
    )
    assert chosen == {} and all("could not be read" in lane["error"] for lane in lanes.values())


def _approvable() -> dict:
    """Order-lane evidence the gate approves (so only the lanes decide)."""
    side = {"feature_names": list(FEATURE_NAMES), "roc_auc": 0.9, "pr_auc": 0.5, "alert_rate": 0.05}
    return {
        "kind": gate.EVIDENCE_KIND,
        "window": {"rows": 1000, "positives": 50},
        "candidate": side,
        "champion": side,
        "score_psi": 0.0,
        "level_psi": 0.0,
    }


@pytest.mark.parametrize(("bounds", "serves"), [(LENIENT_GATE, "candidate"), ((), "serving")])
def test_the_return_lane_is_retrained_gated_and_the_winner_served(
    two_lane_model, return_table, tmp_path, bounds, serves
):
    # Given return training data beside the serving archive
    return_table.to_parquet(tmp_path / "returns.parquet")
    extra = ("--return_train", str(tmp_path / "returns.parquet"), "--num_round", "30", "--baselines", "0")
    args = _lanes_args(two_lane_model, tmp_path, *extra, "--controls", "0", *bounds)
    # When the order candidate's lanes are resolved
    lanes, chosen = train.resolve_lanes(args, "v-new", tmp_path / "work")
    # Then a return candidate was trained and scored beside the serving return model on its own window
    lane = lanes["return"]
    assert lane["retrained"] is True and lane["serves"] == serves
    evidence = lane["evidence"]
    assert evidence["candidate"]["model_version"] == "v-new-return"
    assert evidence["champion"]["model_version"] == RETURN_TEST_VERSION
    assert evidence["candidate"]["feature_names"] == list(RETURN_FEATURE_NAMES)
    # the winner is what the archive gets: the candidate under lenient bounds, the serving one otherwise
    # (the default bounds reject it: the serving model here learned these very rows, ROC-AUC 0.998)
    served = json.loads((chosen["return"] / "config.json").read_text())["model_version"]
    assert served == ("v-new-return" if serves == "candidate" else RETURN_TEST_VERSION)
    if serves == "serving":
        assert "roc_auc_worse" in gate.decide(evidence, RETURN_FEATURE_NAMES).reasons
    assert (tmp_path / "output" / "return" / "test_predictions.parquet").is_file()


def test_a_model_saturating_at_one_gets_levels_it_can_rank_into_and_says_so():
    # Given validation scores where the most abusive orders tie at exactly 1.0 (a logistic regression
    # far out on a feature) and every cut below them is less than 90% precise
    y = np.array([1] * 18 + [0, 0] + [0, 0, 1, 0, 0] * 4 + [0] * 60)
    scores = np.r_[np.ones(20), np.linspace(0.99, 0.5, 20), np.linspace(0.4, 0.01, 60)]
    levels = train.level_thresholds(y, scores, train.cost_threshold(y, scores, 1.0, 5.0))
    assert levels["critical"] == 1.0  # what the levels alone would give: a level entered only by overflow
    # When the saturation cap applies
    capped, record = train.cap_saturated(y, scores, levels)
    # Then every level lies below 1.0 in order, at most the highest rankable score, and the cap is recorded
    assert 0 < capped["medium"] <= capped["high"] <= capped["critical"] == 0.99 < 1
    assert capped["decision"] == capped["high"]
    assert record["critical"] == {"uncapped": 1.0, "capped": 0.99, "validation_precision": 18 / 21}
    # and a model that never saturates is left as it was
    assert train.cap_saturated(y, scores * 0.9, levels | {"critical": 0.8})[1] == {}
