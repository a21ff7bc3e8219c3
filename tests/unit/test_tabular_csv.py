"""training/tabular.py without training: reading and refusing labelled CSVs, the alert budget, the generator."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training import tabular
from training.inference import InferenceError, input_fn
from training.train import TrainingDataError, cost_threshold

FEATURES = [*(f"V{k}" for k in range(1, 29)), "Amount"]


@pytest.fixture(scope="module")
def table():
    return tabular.generate(3000, fraud_rate=0.03, seed=5)


def write(tmp_path, frame, name="t.csv"):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def refusal(path, **kwargs):
    with pytest.raises(TrainingDataError) as error:
        tabular.load_labelled(path, **kwargs)
    return str(error.value)


def test_features_come_from_the_file_without_label_or_time(tmp_path, table):
    clean, features, time_column = tabular.load_labelled(write(tmp_path, table))
    assert features == FEATURES
    assert time_column == "Time"
    assert len(clean) == len(table)
    assert set(clean["Class"].unique()) == {0, 1}


def test_a_file_without_time_has_no_time_column_and_exclude_drops_ids(tmp_path, table):
    frame = table.drop(columns=["Time"]).assign(transaction_id=range(len(table)))
    _, features, time_column = tabular.load_labelled(write(tmp_path, frame), exclude=("transaction_id",))
    assert time_column is None
    assert features == FEATURES


def test_missing_label_is_named(tmp_path, table):
    message = refusal(write(tmp_path, table.rename(columns={"Class": "is_fraud"})))
    assert "no label column 'Class'" in message and "is_fraud" in message


def test_label_that_is_not_binary_is_refused_with_values_and_lines(tmp_path, table):
    frame = table.copy()
    frame.loc[4, "Class"] = 2
    message = refusal(write(tmp_path, frame))
    assert "must be 0 or 1" in message and "2" in message and "[6]" in message  # data row 4 = line 6


def test_text_labels_are_refused(tmp_path, table):
    frame = table.astype({"Class": object})
    frame.loc[0, "Class"] = "fraud"
    assert "fraud" in refusal(write(tmp_path, frame))


def test_one_class_only_is_refused(tmp_path, table):
    message = refusal(write(tmp_path, table.assign(Class=0)))
    assert "only class 0" in message and "both 0 and 1" in message


def test_empty_label_cells_are_refused_with_their_lines(tmp_path, table):
    frame = table.astype({"Class": float})
    frame.loc[[0, 9], "Class"] = np.nan
    message = refusal(write(tmp_path, frame))
    assert "empty on 2 row(s)" in message and "[2, 11]" in message


def test_non_numeric_columns_are_named(tmp_path, table):
    frame = table.assign(merchant="shop-1", country="IN").astype({"V2": object})
    frame.loc[3, "V2"] = "unknown"
    message = refusal(write(tmp_path, frame))
    for name in ("merchant", "country", "V2", "'unknown'"):
        assert name in message
    assert "V3" not in message


def test_empty_file_and_header_only_are_refused(tmp_path, table):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert "is empty" in refusal(empty)
    header = tmp_path / "header.csv"
    header.write_text(",".join(table.columns) + "\n")
    assert "no rows" in refusal(header)
    assert "not found" in refusal(tmp_path / "absent.csv")


def test_missing_feature_values_are_kept_infinite_ones_refused(tmp_path, table):
    frame = table.copy()
    frame.loc[[1, 2, 3], "V5"] = np.nan
    clean, _, _ = tabular.load_labelled(write(tmp_path, frame))
    assert int(clean["V5"].isna().sum()) == 3
    frame.loc[7, "Amount"] = np.inf
    assert "infinite values in column(s): Amount" in refusal(write(tmp_path, frame))


def test_bad_file_exits_2_and_writes_nothing(tmp_path, table, capsys):
    path = write(tmp_path, table.assign(Class=1))
    out = tmp_path / "model"
    assert tabular.main(["train", "--csv", str(path), "--out", str(out)]) == 2
    assert "only class 1" in capsys.readouterr().err
    assert not out.exists()


def test_a_split_without_both_classes_is_refused(table):
    late_fraud_only = table.assign(Class=(np.arange(len(table)) >= len(table) - 50).astype(int))
    with pytest.raises(TrainingDataError, match="the train split .* only one class"):
        tabular.split(late_fraud_only, "Class", "Time", 0.2, 0.2, seed=1)


def test_time_split_is_ordered_and_stratified_split_keeps_the_rate(table):
    parts, report = tabular.split(table, "Class", "Time", 0.2, 0.2, seed=1)
    assert report["kind"] == "time"
    assert parts["train"]["Time"].max() <= parts["validation"]["Time"].min()
    assert parts["validation"]["Time"].max() <= parts["test"]["Time"].min()
    parts, report = tabular.split(table.drop(columns=["Time"]), "Class", None, 0.2, 0.2, seed=1)
    assert report["kind"] == "stratified"
    rates = [p["Class"].mean() for p in parts.values()]
    assert max(rates) - min(rates) < 0.005


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 1), st.integers(0, 50)), min_size=5, max_size=300),
    st.floats(0.0, 500.0),
    st.floats(0.1, 100.0),
)
def test_the_threshold_never_flags_more_than_the_budget(rows, budget, cost_fn):
    y = np.array([r[0] for r in rows])
    scores = np.array([r[1] / 50 for r in rows])
    threshold = tabular.budget_threshold(y, scores, 1.0, cost_fn, budget)
    assert np.sum(scores >= threshold) <= budget * len(y) / 1000 + 1e-9
    if np.sum(scores >= cost_threshold(y, scores, 1.0, cost_fn)) <= budget * len(y) / 1000:
        assert threshold == cost_threshold(y, scores, 1.0, cost_fn)  # the budget doesn't bind


def test_alerts_per_day_become_a_budget_per_1000(table):
    validation = table.iloc[:1000]
    days = (validation["Time"].max() - validation["Time"].min()) / 86_400
    args = argparse.Namespace(
        alerts_per_day=5.0,
        alerts_per_1000=None,
        time_unit="s",
        cost_false_positive=1.0,
        cost_false_negative=25.0,
    )
    rule = tabular.alert_budget(args, validation, "Time")
    assert rule["kind"] == "alert_budget"
    assert rule["max_alerts_per_1000"] == pytest.approx(1000 * 5.0 / (1000 / days))
    with pytest.raises(TrainingDataError, match="needs a time column"):
        tabular.alert_budget(args, validation, None)


def test_the_generated_signal_is_not_one_column(table):
    from sklearn.metrics import roc_auc_score

    y = table["Class"].to_numpy()
    single = max(max(roc_auc_score(y, table[c]), 1 - roc_auc_score(y, table[c])) for c in FEATURES)
    assert 0.6 < single < 0.85
    assert 0.02 < y.mean() < 0.04


def test_file_features_input_accepts_null_and_empty_cells_and_names_bad_fields():
    features = ("V1", "V2", "Amount")
    rows = input_fn(
        json.dumps({"instances": [{"V1": 1, "V2": None, "Amount": 3.5}]}), "application/json", features
    )
    assert rows.shape == (1, 3) and math.isnan(rows[0, 1])
    rows = input_fn("1,,3\n4,5,6\n", "text/csv", features)
    assert rows.shape == (2, 3) and math.isnan(rows[0, 1])
    for instance, field in (
        ({"V1": 1, "V2": 2}, "Amount"),
        ({"V1": 1, "V2": 2, "Amount": 3, "Class": 0}, "Class"),
        ({"V1": "1", "V2": 2, "Amount": 3}, "V1"),
    ):
        with pytest.raises(InferenceError) as error:
            input_fn(json.dumps({"instances": [instance]}), "application/json", features)
        assert (error.value.status, error.value.field) == (422, field)
    with pytest.raises(InferenceError, match="not finite"):
        input_fn("1,nan,3", "text/csv", features)


def test_generated_file_round_trips_through_csv(tmp_path):
    path = tmp_path / "g.csv"
    assert tabular.main(["generate", "--rows", "500", "--seed", "2", "--out", str(path)]) == 0
    frame = pd.read_csv(path)
    assert list(frame.columns) == ["Time", *FEATURES, "Class"]
    assert frame["Time"].is_monotonic_increasing
