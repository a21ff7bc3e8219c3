"""The SageMaker inference contract: input parsing, exact SHAP, and a typed error for every bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from returnguard.features import FEATURE_NAMES
from training.inference import MAX_ROWS, InferenceError, input_fn, model_fn, output_fn, predict_fn


@pytest.fixture(scope="module")
def model(trained_model):
    model_dir, _, _ = trained_model
    return model_fn(str(model_dir))


@pytest.fixture(scope="module")
def instances(small_table):
    return small_table[list(FEATURE_NAMES)].tail(5).to_dict("records")


def test_json_and_csv_give_the_same_predictions(model, instances):
    from_json = predict_fn(input_fn(json.dumps({"instances": instances}), "application/json"), model)
    csv_body = "\n".join(",".join(repr(float(i[n])) for n in FEATURE_NAMES) for i in instances)
    from_csv = predict_fn(input_fn(csv_body.encode(), "text/csv; charset=utf-8"), model)
    assert from_json == from_csv
    assert from_json["model_version"] == model.version
    assert len(from_json["predictions"]) == 5


def test_contributions_are_exact_shap_that_sum_to_the_score(model, instances):
    prediction = predict_fn(input_fn(json.dumps({"instances": instances}), "application/json"), model)
    import xgboost as xgb

    matrix = xgb.DMatrix(
        np.array([[i[n] for n in FEATURE_NAMES] for i in instances]), feature_names=list(FEATURE_NAMES)
    )
    probabilities = model.booster.predict(matrix)
    for row, probability in zip(prediction["predictions"], probabilities, strict=True):
        assert list(row["contributions"]) == list(FEATURE_NAMES)
        margin = row["base_value"] + sum(row["contributions"].values())
        assert row["score"] == pytest.approx(1 / (1 + math.exp(-margin)), abs=1e-6)  # float32 contributions
        assert row["score"] == pytest.approx(float(probability), abs=1e-6)


def test_shap_package_agrees_with_pred_contribs(model, instances):
    import shap

    prediction = predict_fn(input_fn(json.dumps({"instances": instances}), "application/json"), model)
    values = shap.TreeExplainer(model.booster).shap_values(
        np.array([[i[n] for n in FEATURE_NAMES] for i in instances])
    )
    ours = np.array([[p["contributions"][n] for n in FEATURE_NAMES] for p in prediction["predictions"]])
    assert np.allclose(values, ours, atol=1e-4)


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        ("", "application/json", 400, "empty_body"),
        ("{not json", "application/json", 400, "malformed_json"),
        ('{"rows": []}', "application/json", 422, "invalid_instances"),
        ('{"instances": []}', "application/json", 422, "invalid_instances"),
        ('{"instances": [5]}', "application/json", 422, "invalid_instance"),
        ("1,2,3", "text/csv", 422, "invalid_row"),
        ("a=1", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    ],
)
def test_bad_input_gets_a_typed_error(body, content_type, status, code):
    with pytest.raises(InferenceError) as error:
        input_fn(body, content_type)
    assert (error.value.status, error.value.code) == (status, code)
    assert "Traceback" not in json.dumps(error.value.body())


def test_bad_feature_is_named(instances):
    for broken, field in (
        ({k: v for k, v in instances[0].items() if k != "payment_is_cod"}, "payment_is_cod"),
        ({**instances[0], "shoe_size": 9}, "shoe_size"),
        ({**instances[0], "order_amount": "12"}, "order_amount"),
    ):
        with pytest.raises(InferenceError) as error:
            input_fn(json.dumps({"instances": [broken]}), "application/json")
        assert error.value.status == 422
        assert error.value.field == field
        assert error.value.body()["error"]["field"] == field


def test_a_10k_row_batch_is_refused_not_computed(instances):
    body = json.dumps({"instances": [instances[0]] * 10_000})
    with pytest.raises(InferenceError) as error:
        input_fn(body, "application/json")
    assert error.value.status == 413
    csv_row = ",".join("0" for _ in FEATURE_NAMES)
    with pytest.raises(InferenceError):
        input_fn("\n".join([csv_row] * (MAX_ROWS + 1)), "text/csv")
    assert input_fn("\n".join([csv_row] * MAX_ROWS), "text/csv").shape == (MAX_ROWS, len(FEATURE_NAMES))


def test_csv_rejects_non_finite_values():
    row = ",".join(["nan"] + ["0"] * (len(FEATURE_NAMES) - 1))
    with pytest.raises(InferenceError) as error:
        input_fn(row, "text/csv")
    assert error.value.code == "invalid_row"


def test_output_is_json_only():
    assert output_fn({"predictions": []})[1] == "application/json"
    with pytest.raises(InferenceError) as error:
        output_fn({"predictions": []}, "text/csv")
    assert error.value.status == 406


def test_model_trained_on_other_features_is_refused(trained_model, tmp_path):
    model_dir, _, _ = trained_model
    config = json.loads((model_dir / "config.json").read_text())
    config["feature_names"] = config["feature_names"][:-1]
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "xgboost-model.ubj").write_bytes((model_dir / "xgboost-model.ubj").read_bytes())
    with pytest.raises(RuntimeError, match="different feature list"):
        model_fn(str(tmp_path))
