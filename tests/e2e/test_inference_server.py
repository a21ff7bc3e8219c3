"""The local inference server over real HTTP: the SageMaker /ping and /invocations contract."""

from __future__ import annotations

import json

import pytest
import requests

from local.inference_server import serve
from returnguard.features import FEATURE_NAMES


@pytest.fixture(scope="module")
def server(trained_model):
    model_dir, _, _ = trained_model
    handle = serve(str(model_dir))
    yield handle
    handle.stop()


def test_ping_reports_the_model_version(server):
    response = requests.get(f"{server.url}/ping", timeout=5)
    assert response.status_code == 200
    assert response.json()["model_version"] == server.model_version


def test_invocations_score_orders_with_contributions(server, small_table):
    instances = small_table[list(FEATURE_NAMES)].sample(20, random_state=3).to_dict("records")
    response = requests.post(f"{server.url}/invocations", json={"instances": instances}, timeout=5)
    assert response.status_code == 200
    body = response.json()
    assert body["model_version"] == server.model_version
    assert len(body["predictions"]) == 20
    assert all(
        0 < p["score"] < 1 and len(p["contributions"]) == len(FEATURE_NAMES) for p in body["predictions"]
    )


def test_abusive_orders_score_higher_on_average(server, small_table):
    late = small_table.tail(4000)
    sample = {label: late[late.label == label].sample(40, random_state=4) for label in (0, 1)}
    means = {}
    for label, rows in sample.items():
        response = requests.post(
            f"{server.url}/invocations",
            json={"instances": rows[list(FEATURE_NAMES)].to_dict("records")},
            timeout=5,
        )
        means[label] = sum(p["score"] for p in response.json()["predictions"]) / 40
    assert means[1] > 2 * means[0]


@pytest.mark.parametrize(
    ("data", "headers", "status", "code"),
    [
        ("{oops", {"Content-Type": "application/json"}, 400, "malformed_json"),
        ("x", {"Content-Type": "application/xml"}, 415, "unsupported_media_type"),
        (
            json.dumps({"instances": [{"order_amount": 1}]}),
            {"Content-Type": "application/json"},
            422,
            "invalid_feature",
        ),
        ("", {"Content-Type": "application/json"}, 400, "empty_body"),
    ],
)
def test_errors_are_json_with_status_and_code(server, data, headers, status, code):
    response = requests.post(f"{server.url}/invocations", data=data, headers=headers, timeout=5)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert "Traceback" not in response.text


def test_unknown_route_is_404(server):
    assert requests.get(f"{server.url}/models", timeout=5).status_code == 404
