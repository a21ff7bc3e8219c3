"""One model archive, both lanes: the request names the model; the contract is the order model's."""

from __future__ import annotations

import json
import math

import pytest

from returnguard.aws.model_client import HttpModel, parse_response
from returnguard.features import FEATURE_NAMES, RETURN_FEATURE_NAMES
from tests.return_model import RETURN_TEST_VERSION
from training.inference import InferenceError, input_fn, model_fn, output_fn, predict_fn


@pytest.fixture(scope="module")
def model(two_lane_model):
    return model_fn(str(two_lane_model))


def _predict(model, body: dict) -> dict:
    text, _ = output_fn(predict_fn(input_fn(json.dumps(body), "application/json"), model))
    return json.loads(text)


def test_the_request_names_the_return_model_and_gets_exact_contributions(model, return_table) -> None:
    instances = return_table[list(RETURN_FEATURE_NAMES)].head(5).to_dict("records")
    answer = _predict(model, {"model": "return", "instances": instances})
    assert answer["model_version"] == RETURN_TEST_VERSION
    for prediction in answer["predictions"]:
        assert list(prediction["contributions"]) == list(RETURN_FEATURE_NAMES)
        margin = prediction["base_value"] + sum(prediction["contributions"].values())
        assert math.isclose(prediction["score"], 1 / (1 + math.exp(-margin)), rel_tol=1e-5)
    # the same archive still answers orders, unchanged, when no model is named
    order = {name: 0.0 for name in FEATURE_NAMES}
    assert _predict(model, {"instances": [order]})["model_version"] == model.version != RETURN_TEST_VERSION
    assert _predict(model, {"model": "order", "instances": [order]}) == _predict(
        model, {"instances": [order]}
    )


def test_a_return_model_learned_something(model, return_table) -> None:
    scores = _predict(
        model, {"model": "return", "instances": return_table[list(RETURN_FEATURE_NAMES)].to_dict("records")}
    )
    by_label = {0: [], 1: []}
    for label, prediction in zip(return_table["label"], scores["predictions"], strict=True):
        by_label[int(label)].append(prediction["score"])
    assert sum(by_label[1]) / len(by_label[1]) > sum(by_label[0]) / len(by_label[0])


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"model": "refund", "instances": [{}]}, 422, "unknown_model"),
        ({"model": 7, "instances": [{}]}, 422, "unknown_model"),
        ({"model": "return", "instances": [{name: 0.0 for name in FEATURE_NAMES}]}, 422, "invalid_feature"),
    ],
)
def test_a_bad_lane_request_is_a_typed_error(model, body, status, code) -> None:
    with pytest.raises(InferenceError) as error:
        predict_fn(input_fn(json.dumps(body), "application/json"), model)
    assert (error.value.status, error.value.code) == (status, code)


def test_an_archive_without_a_return_model_says_so(trained_model) -> None:
    order_only = model_fn(str(trained_model[0]))
    instance = {name: 0.0 for name in RETURN_FEATURE_NAMES}
    with pytest.raises(InferenceError) as error:
        predict_fn(
            input_fn(json.dumps({"model": "return", "instances": [instance]}), "application/json"), order_only
        )
    assert (error.value.status, error.value.code) == (404, "model_not_in_archive")


def test_a_return_model_on_another_feature_list_fails_the_load(two_lane_model, tmp_path) -> None:
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(two_lane_model, copy)
    config = json.loads((copy / "return" / "config.json").read_text())
    config["feature_names"] = config["feature_names"][:-1]
    (copy / "return" / "config.json").write_text(json.dumps(config))
    with pytest.raises(RuntimeError, match="return lane's feature names"):
        model_fn(str(copy))


def test_the_local_server_and_client_serve_both_lanes(two_lane_model, return_table) -> None:
    from local.inference_server import serve

    server = serve(str(two_lane_model))
    try:
        instance = return_table[list(RETURN_FEATURE_NAMES)].iloc[0].to_dict()
        returned = HttpModel(server.url, lane="return").score(instance)
        ordered = HttpModel(server.url).score({name: 0.0 for name in FEATURE_NAMES})
    finally:
        server.stop()
    assert returned.model_version == RETURN_TEST_VERSION and set(returned.contributions) == set(
        RETURN_FEATURE_NAMES
    )
    assert ordered.model_version != RETURN_TEST_VERSION


def test_the_order_lanes_payload_is_unchanged() -> None:
    from returnguard.aws.model_client import _payload

    assert json.loads(_payload({"a": 1.0})) == {"instances": [{"a": 1.0}]}
    assert json.loads(_payload({"a": 1.0}, "return")) == {"instances": [{"a": 1.0}], "model": "return"}
    assert parse_response(json.dumps({"predictions": [{"score": 0.5}], "model_version": "v"})).score == 0.5
