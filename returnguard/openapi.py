"""The OpenAPI 3.1 description of the risk-score API, built from the pydantic models it validates with.

`docs/openapi.yaml` is this function's output (`make openapi` rewrites it; a test fails when the file
and the models disagree), so the published contract cannot drift from the handler.
"""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from returnguard.payment_scoring import PaymentRiskRequest, PaymentRiskResponse
from returnguard.schemas import ReturnScoreRequest, ReturnScoreResponse, RiskScoreRequest, RiskScoreResponse

VERSION = "1.0.0"
REF = "#/components/schemas/{model}"
ERROR_CODES = {
    400: ("malformed_json", "The body cannot be parsed: not JSON, not UTF-8, or nested too deep."),
    403: ("forbidden", "Missing or unknown x-api-key, or the key's client lacks the scope for this call."),
    404: ("not_found", "No decision with this id that the calling key may read, or no such route."),
    409: ("conflict", "This order (or return) was already scored with a different request body."),
    413: ("body_too_large", "The body is over 64 KB."),
    415: ("unsupported_media_type", "Content-Type is not application/json."),
    422: (
        "invalid_request",
        "The body breaks the schema, or `order_time` (a return's `return_date`) is outside the "
        "deployment's window around now; `details` names every bad field.",
    ),
    429: (
        "throttled",
        "Over the stage's rate or the key's quota, or the store throttled: retry with backoff.",
    ),
    503: (
        "unavailable",
        "The feature or decision store cannot be reached or does not answer within the request's "
        "time budget: nothing can decide. Retry.",
    ),
}

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "field"],
            "properties": {
                "code": {"type": "string", "description": "Machine-readable; one per status below."},
                "message": {"type": "string"},
                "field": {"type": ["string", "null"], "description": "The (first) request field at fault."},
                "details": {
                    "type": "array",
                    "description": "422 only: every bad field with its own message.",
                    "items": {
                        "type": "object",
                        "required": ["field", "message"],
                        "properties": {"field": {"type": ["string", "null"]}, "message": {"type": "string"}},
                    },
                },
            },
        }
    },
}


def _errors(*statuses: int) -> dict[str, Any]:
    return {
        str(status): {
            "description": f"`{ERROR_CODES[status][0]}`: {ERROR_CODES[status][1]}",
            "content": {"application/json": {"schema": {"$ref": REF.format(model="Error")}}},
        }
        for status in statuses
    }


def _decision(description: str) -> dict[str, Any]:
    lanes = [
        {"$ref": REF.format(model=name)}
        for name in ("RiskScoreResponse", "ReturnScoreResponse", "PaymentRiskResponse")
    ]
    return {
        "description": description,
        "content": {"application/json": {"schema": {"oneOf": lanes}}},
    }


def spec() -> dict[str, Any]:
    _, schemas = models_json_schema(
        [
            (RiskScoreRequest, "validation"),
            (ReturnScoreRequest, "validation"),
            (RiskScoreResponse, "serialization"),
            (ReturnScoreResponse, "serialization"),
            (PaymentRiskRequest, "validation"),
            (PaymentRiskResponse, "serialization"),
        ],
        ref_template=REF,
    )
    components = dict(schemas["$defs"])
    components["Error"] = ERROR_SCHEMA
    components["Health"] = {
        "type": "object",
        "required": ["status", "model_version", "dependencies"],
        "properties": {
            "status": {
                "enum": ["ok", "degraded", "down"],
                "description": "ok: everything answers; degraded: the model does not, decisions come "
                "from the fallback model (degraded: true); down: the store does not, nothing can decide.",
            },
            "model_version": {"type": "string"},
            "dependencies": {
                "type": "object",
                "required": ["model", "store"],
                "properties": {
                    "model": {
                        "enum": ["ok", "degraded", "down"],
                        "description": "degraded: the endpoint does not answer and the fallback "
                        "model scores instead; down: neither (rules only).",
                    },
                    "store": {"enum": ["ok", "down"]},
                },
            },
        },
    }
    api_key: list[dict[str, list[str]]] = [{"ApiKey": []}]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ReturnGuard risk-score API",
            "version": VERSION,
            "summary": "Score an order, or a return request, for fraud and return abuse, with the reasons "
            "in business language.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "servers": [
            {
                "url": "http://127.0.0.1:8000",
                "description": "`make demo SERVE=1` / `python -m local.api_server`",
            },
            {
                "url": "https://{api_id}.execute-api.{region}.amazonaws.com/{stage}",
                "description": "Deployed by `cdk deploy` (stack output ApiUrl)",
                "variables": {
                    "api_id": {"default": "abc123"},
                    "region": {"default": "us-east-1"},
                    "stage": {"default": "dev"},
                },
            },
        ],
        "components": {
            "schemas": components,
            "securitySchemes": {
                "ApiKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "x-api-key",
                    "description": "API Gateway usage-plan key (stack output ApiKeyValueCommand). "
                    "The local API does not check it.",
                }
            },
        },
        "paths": {
            "/v1/risk-score": {
                "post": {
                    "operationId": "scoreOrder",
                    "summary": "Score one order, one return request or one card payment",
                    "description": "`event_type` says which: an `order` gets a risk level and an order "
                    "action; a `return` gets a refund action from the deployment's ladder, and "
                    "`deny_refund` only from a hard rule, with `review_required`; a `payment` gets "
                    "approve, step_up_authentication, review or decline. Idempotent on (event_type, "
                    "order.order_id, return.return_id or payment.transaction_id): the same body again "
                    "returns the stored decision; a different body with the same id is 409.",
                    "security": api_key,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        {"$ref": REF.format(model="RiskScoreRequest")},
                                        {"$ref": REF.format(model="ReturnScoreRequest")},
                                        {"$ref": REF.format(model="PaymentRiskRequest")},
                                    ],
                                    "discriminator": {
                                        "propertyName": "event_type",
                                        "mapping": {
                                            "order": REF.format(model="RiskScoreRequest"),
                                            "return": REF.format(model="ReturnScoreRequest"),
                                            "payment": REF.format(model="PaymentRiskRequest"),
                                        },
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": {
                            **_decision("The decision (also when the model was unavailable: `degraded`)."),
                            "links": {
                                "GetDecision": {
                                    "operationId": "getDecision",
                                    "parameters": {"decision_id": "$response.body#/decision_id"},
                                }
                            },
                        },
                        **_errors(400, 403, 409, 413, 415, 422, 429, 503),
                    },
                }
            },
            "/v1/decisions/{decision_id}": {
                "get": {
                    "operationId": "getDecision",
                    "summary": "A stored decision (kept 90 days)",
                    "security": api_key,
                    "parameters": [
                        {
                            "name": "decision_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "minLength": 1},
                        }
                    ],
                    "responses": {"200": _decision("The stored decision."), **_errors(403, 404, 429, 503)},
                }
            },
            "/v1/health": {
                "get": {
                    "operationId": "health",
                    "summary": "Can the API decide, and is each dependency answering",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "Up: status ok, or degraded (the fallback model is scoring).",
                            "content": {"application/json": {"schema": {"$ref": REF.format(model="Health")}}},
                        },
                        "503": {
                            "description": "Down: the store does not answer, nothing can decide.",
                            "content": {"application/json": {"schema": {"$ref": REF.format(model="Health")}}},
                        },
                        **_errors(429),
                    },
                }
            },
        },
    }


def render() -> str:
    import yaml

    header = (
        "# Generated by `make openapi` (returnguard/openapi.py) from returnguard/schemas.py. Do not edit.\n"
    )
    return header + yaml.safe_dump(spec(), sort_keys=False, allow_unicode=True, width=110)


if __name__ == "__main__":
    import sys
    from pathlib import Path

    target = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/openapi.yaml")
    target.write_text(render(), encoding="utf-8")
    print(f"wrote {target}")
