"""The payment lane of the one model archive, and seed 001's plain `{"fraud_probability": p}` shape."""

from __future__ import annotations

import json
import math

import pytest

from local.inference_server import serve
from returnguard.aws.model_client import HttpModel
from returnguard.features import FEATURE_NAMES, PAYMENT_FEATURE_NAMES
from tests.payment_model import PAYMENT_TEST_VERSION, payment_table
from training.inference import InferenceError, input_fn, model_fn, output_fn, predict_fn


@pytest.fixture(scope="module")
def model(payment_lane_model):
    return model_fn(str(payment_lane_model))


@pytest.fixture(scope="module")
def table():
    return payment_table(customers=60, days=40, seed=21)


def _predict(model, body: dict) -> dict:
    text, _ = output_fn(predict_fn(input_fn(json.dumps(body), "application/json"), model))
    return json.loads(text)


def test_the_payment_lane_answers_with_exact_contributions(model, table) -> None:
    instances = table[list(PAYMENT_FEATURE_NAMES)].head(5).to_dict("records")
    answer = _predict(model, {"model": "payment", "instances": instances})
    assert answer["model_version"] == PAYMENT_TEST_VERSION
    for prediction in answer["predictions"]:
        assert list(prediction["contributions"]) == list(PAYMENT_FEATURE_NAMES)
        margin = prediction["base_value"] + sum(prediction["contributions"].values())
        assert math.isclose(prediction["score"], 1 / (1 + math.exp(-margin)), rel_tol=1e-5)


def test_the_payment_model_ranks_fraud_above_genuine(model, table) -> None:
    rows = table.head(1000)  # the inference contract's limit per request
    answer = _predict(
        model, {"model": "payment", "instances": rows[list(PAYMENT_FEATURE_NAMES)].to_dict("records")}
    )
    scores = [p["score"] for p in answer["predictions"]]
    fraud = [s for s, y in zip(scores, rows["label"], strict=True) if y == 1]
    genuine = [s for s, y in zip(scores, rows["label"], strict=True) if y == 0]
    assert fraud and sum(fraud) / len(fraud) > 5 * sum(genuine) / len(genuine)


def test_plain_shape_answers_the_probability_alone(model, table) -> None:
    row = table[list(PAYMENT_FEATURE_NAMES)].iloc[0].to_dict()
    plain = _predict(model, {"model": "payment", **row})
    assert list(plain) == ["fraud_probability"]
    full = _predict(model, {"model": "payment", "instances": [row]})["predictions"][0]["score"]
    assert math.isclose(plain["fraud_probability"], full, rel_tol=1e-5)
    # the root model answers the plain shape too (a labelled-CSV model there is seed 001's case)
    order = {name: 0.0 for name in FEATURE_NAMES}
    assert 0.0 < _predict(model, order)["fraud_probability"] < 1.0


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"model": "payment", "payment_amount": 3.0}, 422, "invalid_feature"),
        ({"model": "payment", "instances": [{name: 0.0 for name in FEATURE_NAMES}]}, 422, "invalid_feature"),
        ({"model": "payment", **{name: "1" for name in PAYMENT_FEATURE_NAMES}}, 422, "invalid_feature"),
    ],
)
def test_bad_payment_requests_are_typed_errors(model, body, status, code) -> None:
    with pytest.raises(InferenceError) as raised:
        predict_fn(input_fn(json.dumps(body), "application/json"), model)
    assert (raised.value.status, raised.value.code) == (status, code)


def test_an_archive_without_a_payment_model_says_so(trained_model) -> None:
    order_only = model_fn(str(trained_model[0]))
    body = {"model": "payment", **{name: 0.0 for name in PAYMENT_FEATURE_NAMES}}
    with pytest.raises(InferenceError) as raised:
        predict_fn(input_fn(json.dumps(body), "application/json"), order_only)
    assert (raised.value.status, raised.value.code) == (404, "model_not_in_archive")


def test_the_payment_client_scores_through_the_local_server(payment_lane_model, table) -> None:
    server = serve(str(payment_lane_model))
    try:
        row = table[list(PAYMENT_FEATURE_NAMES)].iloc[3].to_dict()
        result = HttpModel(server.url, lane="payment").score(row)
        assert result.model_version == PAYMENT_TEST_VERSION and set(result.contributions) == set(
            PAYMENT_FEATURE_NAMES
        )
    finally:
        server.stop()
