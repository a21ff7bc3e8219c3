"""returnguard.trees: the pure-Python ensemble the batch Lambda scores with gives XGBoost's own scores and
exact contributions (pred_contribs), missing values and 32-bit split comparisons included."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xgboost as xgb

from returnguard.trees import ModelFormatError, TreeEnsemble, float32, ubjson

FEATURES = [f"f{i}" for i in range(6)]


@pytest.fixture(scope="module")
def booster() -> xgb.Booster:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(3000, len(FEATURES)))
    y = ((x[:, 0] + x[:, 1] * x[:, 2] > 0.5) ^ (rng.random(3000) < 0.1)).astype(int)
    x[rng.random(x.shape) < 0.05] = np.nan  # missing values take each node's default branch
    params = {"objective": "binary:logistic", "max_depth": 5, "eta": 0.2, "nthread": 1, "seed": 1}
    return xgb.train(params, xgb.DMatrix(x, label=y, feature_names=FEATURES), num_boost_round=25)


def rows() -> np.ndarray:
    rng = np.random.default_rng(9)
    x = rng.normal(size=(100, len(FEATURES)))
    x[rng.random(x.shape) < 0.1] = np.nan
    return x


def test_scores_and_contributions_match_xgboost(booster):
    ensemble = TreeEnsemble.load(bytes(booster.save_raw("ubj")), FEATURES)
    x = rows()
    matrix = xgb.DMatrix(x, feature_names=FEATURES)
    expected_scores = booster.predict(matrix)
    expected_contributions = booster.predict(matrix, pred_contribs=True)

    ours = [ensemble.score(float32(row.tolist())) for row in x]
    contributions = np.array([ensemble.contributions(float32(row.tolist())) for row in x])

    assert np.abs(np.array(ours) - expected_scores).max() < 1e-6
    assert np.abs(contributions - expected_contributions).max() < 1e-5
    # They are explanations of this score: the bias plus the contributions is the margin.
    margins = booster.predict(matrix, output_margin=True)
    assert np.abs(contributions.sum(axis=1) - margins).max() < 1e-5


def test_json_and_ubj_model_files_load_the_same_ensemble(booster):
    from_ubj = TreeEnsemble.load(bytes(booster.save_raw("ubj")), FEATURES)
    from_json = TreeEnsemble.load(bytes(booster.save_raw("json")), FEATURES)
    row = float32(rows()[3].tolist())
    # JSON prints 32-bit floats in decimal: the same numbers to float32 precision
    assert from_ubj.contributions(row) == pytest.approx(from_json.contributions(row), abs=1e-6)
    decoded, written = ubjson(bytes(booster.save_raw("ubj"))), json.loads(booster.save_raw("json"))
    assert decoded["learner"]["feature_names"] == written["learner"]["feature_names"] == FEATURES
    tree, expected = (
        decoded["learner"]["gradient_booster"]["model"]["trees"][3],
        written["learner"]["gradient_booster"]["model"]["trees"][3],
    )
    assert tree["left_children"] == expected["left_children"]
    assert tree["split_conditions"] == pytest.approx(expected["split_conditions"], rel=1e-6)


def test_a_model_of_another_objective_or_feature_count_is_refused(booster):
    document = json.loads(booster.save_raw("json"))
    with pytest.raises(ModelFormatError, match="features"):
        TreeEnsemble.from_document(document, FEATURES[:-1])
    document["learner"]["objective"]["name"] = "reg:squarederror"
    with pytest.raises(ModelFormatError, match="binary:logistic"):
        TreeEnsemble.from_document(document, FEATURES)


def test_truncated_model_bytes_are_a_format_error(booster):
    with pytest.raises(ModelFormatError):
        TreeEnsemble.load(bytes(booster.save_raw("ubj"))[:500], FEATURES)
