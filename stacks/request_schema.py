"""The JSON schema API Gateway validates POST /v1/risk-score against, derived from the pydantic model.

`returnguard.schemas.RiskScoreRequest` (orders) and `ReturnScoreRequest` (returns) are the one
definition of the request, one of the two by `event_type`; this module converts their JSON schemas (draft 2020-12) into draft-04, the dialect API Gateway request models speak: `$ref`s are
inlined, optional fields become nullable types, numeric `exclusiveMinimum` becomes draft-04's boolean
form, and annotations API Gateway has no use for (title, default, format) are dropped. The gateway
thus rejects exactly the bodies the Lambda's own validation would reject, only earlier and cheaper.
"""

from __future__ import annotations

from typing import Any

from returnguard.payment_scoring import PaymentRiskRequest
from returnguard.schemas import ReturnScoreRequest, RiskScoreRequest

# one request model per event type; the gateway accepts a body exactly one of them accepts
LANE_REQUESTS = (RiskScoreRequest, ReturnScoreRequest, PaymentRiskRequest)

_DROPPED = {"title", "default", "format", "description"}


def _draft4(node: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        return _draft4(definitions[node["$ref"].rsplit("/", 1)[1]], definitions)
    if "anyOf" in node:
        options = [option for option in node["anyOf"] if option.get("type") != "null"]
        if len(options) != 1 or len(options) == len(node["anyOf"]):
            raise ValueError(f"only Optional[X] unions convert to draft-04, got {node['anyOf']}")
        inner = _draft4(options[0], definitions)
        return {**inner, "type": [inner["type"], "null"]}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED or key == "$defs":
            continue
        if key == "properties":
            out[key] = {name: _draft4(sub, definitions) for name, sub in value.items()}
        elif key == "items":
            out[key] = _draft4(value, definitions)
        elif key == "exclusiveMinimum":
            out["minimum"], out["exclusiveMinimum"] = value, True
        elif key == "const":
            out["enum"] = [value]
        else:
            out[key] = value
    return out


def risk_score_request_schema() -> dict[str, Any]:
    lanes = []
    for model in LANE_REQUESTS:
        source = model.model_json_schema()
        lanes.append(_draft4(source, source.get("$defs", {})))
    return {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "title": "RiskScoreRequest",
        "type": "object",
        "oneOf": lanes,
    }


RISK_SCORE_REQUEST: dict[str, Any] = risk_score_request_schema()
