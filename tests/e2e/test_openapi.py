"""docs/openapi.yaml is the contract: generated from the pydantic models, valid OpenAPI 3.1, and a
bounded schemathesis run against the local API finds no server error and no response off the spec."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from openapi_spec_validator import validate

from local import stack as local_stack
from local.api_server import seed_features, serve
from local.inference_server import serve as serve_model
from returnguard import openapi
from returnguard.schemas import RiskScoreRequest, RiskScoreResponse
from tests.unit.api.fakes import DAY, T0, customer_with_history

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "docs" / "openapi.yaml"
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,"
    "negative_data_rejection,unsupported_method"
)
# Of the POSTs schemathesis generates, at least this share must reach scoring (200, or 409 for an order
# id it already used): a run whose orders all die at validation tests the validator, not the API.
MIN_SCORED_SHARE = 0.15  # measured 96 of 522 (18%) at this seed; 0 before the spec listed currencies
FUZZ_KEY = "fuzz-api-key-value"


def test_the_published_spec_is_the_generated_one() -> None:
    assert SPEC.read_text(encoding="utf-8") == openapi.render(), (
        "run `make openapi` and commit docs/openapi.yaml"
    )


def test_spec_is_valid_openapi_31_and_carries_the_models() -> None:
    document = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
    validate(document)
    schemas = document["components"]["schemas"]
    assert set(schemas["RiskScoreResponse"]["required"]) == {
        name for name, field in RiskScoreResponse.model_fields.items() if field.is_required()
    }
    assert set(schemas["RiskScoreRequest"]["properties"]) == set(RiskScoreRequest.model_fields)
    assert schemas["Order"]["additionalProperties"] is False  # unknown fields are refused (422)
    documented = set(document["paths"]["/v1/risk-score"]["post"]["responses"])
    assert {"200", "400", "409", "413", "415", "422", "429", "503"} <= documented
    assert set(schemas["ReturnScoreRequest"]["properties"]) == {"event_type", "return", "locale", "explain"}
    assert schemas["ReturnRequest"]["properties"]["reason"]["anyOf"][0]["maxLength"] == 1000
    assert "deny_refund" in schemas["ReturnScoreResponse"]["properties"]["recommended_action"]["enum"]


@pytest.mark.slow
def test_schemathesis_finds_no_server_error_and_no_off_spec_answer(trained_model, tmp_path) -> None:
    config = json.loads((Path(trained_model[0]) / "config.json").read_text())
    stack = local_stack.start(prefix="returnguard-fuzz")
    model = serve_model(str(trained_model[0]))
    api = serve(
        stack,
        config,
        model.url,
        log_path=tmp_path / "api.log",
        api_keys={FUZZ_KEY: ("fuzz", ["score", "read_own"])},
    )
    try:
        seed_features(
            stack, [("customer#0", customer_with_history(orders=8, returned=3, last_order_ms=T0 - DAY))]
        )
        run = subprocess.run(
            [
                str(SCHEMATHESIS),
                "--config-file",
                str(Path(__file__).with_name("schemathesis.toml")),
                "--no-color",
                "run",
                str(SPEC),
                "--url",
                api.url,
                "--checks",
                CHECKS,
                "--max-examples",
                "60",
                "--seed",
                "20261125",
                "--generation-database",
                "none",
                "--workers",
                "1",
                "--request-timeout",
                "10",
                "--report",
                "har",
                "--report-har-path",
                str(tmp_path / "run.har"),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
            env={**os.environ, "RG_FUZZ_API_KEY": FUZZ_KEY},
        )
    finally:
        api.stop()
        model.stop()
        stack.stop()
    summary = run.stdout[-3000:]
    assert run.returncode == 0, summary
    generated = int(summary.split(" generated")[0].rsplit("\n", 1)[-1].strip().split()[0])
    assert generated >= 300, summary  # a few hundred cases, not a token run
    assert "Traceback" not in (tmp_path / "api.log").read_text()
    posts = scored_posts(tmp_path / "run.har")
    print(f"POST /v1/risk-score: {posts}")
    assert posts["total"] >= 100, posts
    assert posts["scored"] / posts["total"] >= MIN_SCORED_SHARE, posts


def scored_posts(har: Path) -> dict[str, int]:
    """How many POSTs to /v1/risk-score the run sent, and how many were scored (200 or 409)."""
    entries = json.loads(har.read_text())["log"]["entries"]
    statuses = [
        e["response"]["status"]
        for e in entries
        if e["request"]["method"] == "POST" and e["request"]["url"].split("?")[0].endswith("/v1/risk-score")
    ]
    return {"total": len(statuses), "scored": sum(1 for s in statuses if s in (200, 409))}
