"""score Lambda: POST /v1/risk-score, GET /v1/decisions/{decision_id}, GET /v1/health.

Thin: parse and validate, call `returnguard.scoring.decide`, store idempotently, shape the answer.
Every error is {"error": {"code", "message", "field"}}; never a traceback.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import re
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, Field, ValidationError, ValidationInfo, field_validator, model_validator

from returnguard import access, narrative
from returnguard.aws import serving_profile, snapstart
from returnguard.aws.clients import DECISION_BUDGET_S, DYNAMODB, HEALTH_BUDGET_S, CallBounds, RequestBudget
from returnguard.aws.decisions import Conflict, DecisionStore, body_hash
from returnguard.aws.feature_store import DynamoFeatureStore
from returnguard.aws.model_client import HttpModel, Model, SageMakerModel, sagemaker_config
from returnguard.aws.order_records import OrderRecords
from returnguard.aws.recent_orders import RecentOrders
from returnguard.circuit import CircuitBreaker, GuardedModel
from returnguard.currency import UnknownCurrency
from returnguard.fallback import FILE_NAME as FALLBACK_FILE
from returnguard.fallback import FallbackModel
from returnguard.features import FEATURES, amount_to_minor
from returnguard.narrative import (
    ExplanationCache,
    NarrativeConfig,
    NarrativeFacts,
    Narrator,
    bedrock_config,
    wanted,
)
from returnguard.payment_scoring import PAYMENT_MODEL_DIR, PaymentRiskRequest, decide_payment, payment_policy
from returnguard.payment_scoring import request_hash as payment_request_hash
from returnguard.payments import card_velocity_key, customer_velocity_key
from returnguard.policy import PolicyConfig
from returnguard.ports import ModelUnavailable
from returnguard.returns_policy import RETURN_FALLBACK_FILE, RETURN_MODEL_DIR, return_policy
from returnguard.returns_scoring import decide_return
from returnguard.schemas import OrderTimeOutOfWindow, OrderTimeWindow, ReturnScoreRequest, RiskScoreRequest
from returnguard.scoring import decide
from returnguard.variants import Challenger, VariantConfig, VariantConfigError

MAX_BODY_BYTES = 64 * 1024


class Settings(BaseModel):
    features_table: str = Field(alias="RG_FEATURES_TABLE", min_length=1)
    decisions_table: str = Field(alias="RG_DECISIONS_TABLE", min_length=1)
    audit_table: str = Field(alias="RG_AUDIT_TABLE", min_length=1)
    endpoint_name: str = Field(default="", alias="RG_ENDPOINT_NAME")
    inference_url: str = Field(default="", alias="RG_INFERENCE_URL")
    model_config_json: str = Field(alias="RG_MODEL_CONFIG", min_length=2)
    # champion and challenger (returnguard.variants): off | shadow | ab, the A-B share, the assignment's salt;
    # the challenger is the endpoint's production variant RG_CHALLENGER_VARIANT (locally RG_CHALLENGER_URL)
    variant_mode: str = Field(default="off", alias="RG_VARIANT_MODE")
    challenger_share: float = Field(default=0.0, alias="RG_CHALLENGER_SHARE")
    variant_salt: str = Field(default="returnguard", alias="RG_VARIANT_SALT")
    challenger_variant: str = Field(default="challenger", alias="RG_CHALLENGER_VARIANT", min_length=1)
    challenger_url: str = Field(default="", alias="RG_CHALLENGER_URL")
    policy_json: str = Field(default="{}", alias="RG_POLICY")  # overrides of the model's policy
    # the payment lane's policy overrides (the order policy's settings; thresholds from the model's `payment`)
    payment_policy_json: str = Field(default="{}", alias="RG_PAYMENT_POLICY")
    return_policy_json: str = Field(default="{}", alias="RG_RETURN_POLICY")  # the refund ladder's overrides
    explanations_table: str = Field(default="", alias="RG_EXPLANATIONS_TABLE")
    bedrock_model_id: str = Field(default="", alias="RG_BEDROCK_MODEL_ID")
    bedrock_guardrail_id: str = Field(default="", alias="RG_BEDROCK_GUARDRAIL_ID")
    bedrock_guardrail_version: str = Field(default="", alias="RG_BEDROCK_GUARDRAIL_VERSION")
    bedrock_budget_ms: int = Field(default=1500, alias="RG_BEDROCK_BUDGET_MS", ge=100, le=10_000)
    stage: str = Field(default="dev", alias="RG_STAGE")
    # the fallback model's JSON; empty: fallback_model.json next to this file (the function's asset
    # always has it), else none and degraded decisions come from the rules alone
    fallback_model_file: str = Field(default="", alias="RG_FALLBACK_MODEL")
    # the return lane's, the same way (return_fallback_model.json next to this file when the asset has it)
    return_fallback_model_file: str = Field(default="", alias="RG_RETURN_FALLBACK_MODEL")
    # the lake, where a promotion publishes each model's serving profile (returnguard.aws.serving_profile);
    # empty: the deployed model's thresholds and fallback whatever the endpoint serves
    lake_bucket: str = Field(default="", alias="RG_LAKE_BUCKET")

    @field_validator("fallback_model_file", "return_fallback_model_file")
    @classmethod
    def _valid_fallback(cls, value: str) -> str:
        if value:
            FallbackModel.load(value)  # missing or unusable: the cold start fails naming the variable
        return value

    # how far before and after now an order_time may lie (returnguard.schemas.OrderTimeWindow)
    order_time_past_s: int = Field(
        default=7 * 86_400, alias="RG_ORDER_TIME_PAST_S", ge=0, le=10 * 366 * 86_400
    )
    order_time_future_s: int = Field(default=300, alias="RG_ORDER_TIME_FUTURE_S", ge=0, le=86_400)
    # API key id -> client and scopes (returnguard.access); unset: one client with every scope, as the
    # local API without keys (the api stack always sets it)
    api_clients_json: str = Field(default="", alias="RG_API_CLIENTS")
    # the key of decision ids: a Secrets Manager secret in AWS, a value locally (exactly one)
    decision_id_secret_arn: str = Field(default="", alias="RG_DECISION_ID_SECRET_ARN")
    decision_id_secret: str = Field(default="", alias="RG_DECISION_ID_SECRET", repr=False)

    @field_validator("api_clients_json")
    @classmethod
    def _valid_clients(cls, value: str) -> str:
        if value:
            access.parse_key_clients(value)
        return value

    @model_validator(mode="after")
    def _valid_variants(self) -> Settings:
        try:
            self.variants()
        except VariantConfigError as error:
            raise ValueError(f"RG_VARIANT_MODE / RG_CHALLENGER_SHARE / RG_VARIANT_SALT: {error}") from None
        if self.variant_mode != "off" and self.inference_url and not self.challenger_url:
            raise ValueError(
                "RG_CHALLENGER_URL (the challenger's inference server) is needed with RG_INFERENCE_URL"
            )
        return self

    def variants(self) -> VariantConfig:
        return VariantConfig(self.variant_mode, self.challenger_share, self.variant_salt)  # type: ignore[arg-type]

    @model_validator(mode="after")
    def _one_secret(self) -> Settings:
        if bool(self.decision_id_secret_arn) == bool(self.decision_id_secret):
            raise ValueError("set exactly one of RG_DECISION_ID_SECRET_ARN and RG_DECISION_ID_SECRET")
        if self.decision_id_secret and len(self.decision_id_secret) < access.MIN_SECRET_BYTES:
            raise ValueError(f"RG_DECISION_ID_SECRET needs at least {access.MIN_SECRET_BYTES} characters")
        return self

    @field_validator("model_config_json")
    @classmethod
    def _valid_config(cls, value: str) -> str:
        PolicyConfig.from_model_config(json.loads(value))
        return value

    @field_validator("policy_json")
    @classmethod
    def _valid_policy(cls, value: str, info: ValidationInfo) -> str:
        overrides = json.loads(value)
        if not isinstance(overrides, dict):
            raise ValueError('must be a JSON object, e.g. {"velocity_orders": 3}')
        if "model_config_json" in info.data:  # else that variable's own error says what is wrong
            PolicyConfig.from_model_config(json.loads(info.data["model_config_json"]), overrides)
        return value

    @field_validator("return_policy_json")
    @classmethod
    def _valid_return_policy(cls, value: str, info: ValidationInfo) -> str:
        if "model_config_json" in info.data:
            return_policy(json.loads(info.data["model_config_json"]), json.loads(value))
        return value

    @field_validator("payment_policy_json")
    @classmethod
    def _valid_payment_policy(cls, value: str, info: ValidationInfo) -> str:
        overrides = json.loads(value)
        if not isinstance(overrides, dict):
            raise ValueError('must be a JSON object, e.g. {"medium": 0.2}')
        if "model_config_json" in info.data:
            payment_policy(json.loads(info.data["model_config_json"]), overrides)
        return value


settings = Settings.model_validate(dict(os.environ))  # fails fast, naming the missing variable
MODEL_CONFIG = json.loads(settings.model_config_json)
POLICY = PolicyConfig.from_model_config(MODEL_CONFIG, json.loads(settings.policy_json))
RETURN_POLICY = return_policy(MODEL_CONFIG, json.loads(settings.return_policy_json))
PAYMENT_POLICY = payment_policy(MODEL_CONFIG, json.loads(settings.payment_policy_json))
SECRETS = CallBounds(connect_timeout_s=1.0, read_timeout_s=2.0, max_attempts=3)  # once, at cold start
KEY_CLIENTS = access.parse_key_clients(settings.api_clients_json) if settings.api_clients_json else None
LOCAL_CLIENT = access.Client("local", frozenset(access.SCOPES))


def _decision_id_secret() -> str:
    """Read once, at cold start. The client's connection is closed after the read, so no socket to
    Secrets Manager goes into a SnapStart snapshot (the before-snapshot hook closes only `budget`'s)."""
    if not settings.decision_id_secret_arn:
        return settings.decision_id_secret
    secrets = boto3.client("secretsmanager", config=SECRETS.config())
    try:
        return secrets.get_secret_value(SecretId=settings.decision_id_secret_arn)["SecretString"]
    finally:
        snapstart.close_connections([secrets])


DECISION_ID_SECRET = _decision_id_secret().encode("utf-8")
ORDER_TIMES = OrderTimeWindow(
    past=timedelta(seconds=settings.order_time_past_s), future=timedelta(seconds=settings.order_time_future_s)
)
logger = Logger()
tracer = Tracer()
metrics = Metrics()
budget = RequestBudget()  # every AWS call of a request fits in DECISION_BUDGET_S (clients.py)
_dynamodb = budget.attach(boto3.client("dynamodb", config=DYNAMODB.config()))
features = DynamoFeatureStore(_dynamodb, settings.features_table)
decisions = DecisionStore(_dynamodb, settings.decisions_table, settings.audit_table)
recent_orders = RecentOrders(_dynamodb, settings.features_table)
# a payment is recorded by customer and by card, for the payment velocity features
recent_payments = (
    RecentOrders(_dynamodb, settings.features_table, key=customer_velocity_key),
    RecentOrders(_dynamodb, settings.features_table, key=card_velocity_key),
)
_sagemaker = (
    None
    if settings.inference_url
    else budget.attach(boto3.client("sagemaker-runtime", config=sagemaker_config()))
)


def _endpoint(lane: str) -> Model:
    """The one endpoint (or local server); the request names the lane's model in its archive."""
    if settings.inference_url:
        return HttpModel(settings.inference_url, lane=lane)
    return SageMakerModel(_sagemaker, settings.endpoint_name, lane=lane)


endpoint = _endpoint("order")
model = GuardedModel(endpoint, CircuitBreaker())  # per execution environment
# the return model rides in the same archive; without one (no `return` in RG_MODEL_CONFIG) return
# decisions are degraded: rules and the ladder's floor, no score
return_model = GuardedModel(_endpoint("return"), CircuitBreaker()) if "return" in MODEL_CONFIG else None
payment_model = GuardedModel(_endpoint("payment"), CircuitBreaker())  # no payment model: degraded, step-up
order_records = OrderRecords(_dynamodb, settings.features_table, RETURN_POLICY.return_window_days)
VARIANTS = settings.variants()
CHALLENGER: Challenger | None = (
    None
    if VARIANTS.mode == "off"
    else Challenger(  # its own breaker: a failing challenger never slows the champion's decisions
        GuardedModel(
            HttpModel(settings.challenger_url)
            if settings.challenger_url
            else SageMakerModel(
                _sagemaker, settings.endpoint_name, target_variant=settings.challenger_variant
            ),
            CircuitBreaker(),
        ),
        VARIANTS,
    )
)


def _fallback(named: str, bundled_name: str) -> FallbackModel | None:
    """A lane's fallback model: the file its setting names, else the one bundled next to this file
    (the function's asset carries it when `make model` packed one), else none (rules alone)."""
    bundled = Path(__file__).with_name(bundled_name)
    if named or bundled.is_file():
        return FallbackModel.load(named or bundled)
    return None


FALLBACK = _fallback(settings.fallback_model_file, FALLBACK_FILE)
RETURN_FALLBACK = _fallback(settings.return_fallback_model_file, RETURN_FALLBACK_FILE)
if RETURN_FALLBACK is not None:
    RETURN_POLICY.with_thresholds(RETURN_FALLBACK.thresholds)  # its thresholds must order: fail at start
# Each lane's thresholds (and fallback) follow the model version its answer reports: a promotion
# publishes the new version's profile, read once per execution environment when it first answers.
_s3 = budget.attach(boto3.client("s3", config=DYNAMODB.config())) if settings.lake_bucket else None
PROFILES = serving_profile.ServingProfiles(
    serving_profile.Profile(
        str(MODEL_CONFIG.get("model_version", "unknown")), MODEL_CONFIG, POLICY, FALLBACK, RETURN_FALLBACK
    ),
    (lambda version: serving_profile.read(_s3, settings.lake_bucket, version)) if _s3 else None,
    json.loads(settings.policy_json),
    load_lane=(lambda lane, version: serving_profile.read(_s3, settings.lake_bucket, version, lane))
    if _s3
    else None,
    on_error=lambda version, error: logger.warning(
        "no serving profile", extra={"model_version": version, "kind": type(error).__name__}
    ),
)
_LANES = {PROFILES.current.version: (RETURN_POLICY, PAYMENT_POLICY, RETURN_FALLBACK)}


def _lanes(profile: serving_profile.Profile) -> tuple[Any, Any, FallbackModel | None]:
    """The return and payment policies and the return fallback of a profile's archive, built once per
    version; unusable: the deployed ones."""
    if profile.version not in _LANES:
        try:
            returns = return_policy(profile.config, json.loads(settings.return_policy_json))
            if profile.return_fallback is not None:
                returns.with_thresholds(profile.return_fallback.thresholds)  # they must order
            payments = payment_policy(profile.config, json.loads(settings.payment_policy_json))
            _LANES[profile.version] = (returns, payments, profile.return_fallback)
        except ValueError as error:
            logger.warning(
                "lane thresholds unusable", extra={"model_version": profile.version, "kind": str(error)}
            )
            _LANES[profile.version] = _LANES[str(MODEL_CONFIG.get("model_version", "unknown"))]
    return _LANES[profile.version]


PROBE_VECTOR = {feature.name: feature.default for feature in FEATURES}  # /v1/health's model probe
NARRATIVE = NarrativeConfig(
    model_id=settings.bedrock_model_id,
    budget_s=settings.bedrock_budget_ms / 1000,
    guardrail_id=settings.bedrock_guardrail_id,
    guardrail_version=settings.bedrock_guardrail_version,
)
narrator: Narrator | None = (
    Narrator(
        budget.attach(boto3.client("bedrock-runtime", config=bedrock_config(NARRATIVE.budget_s))),
        NARRATIVE,
        ExplanationCache(_dynamodb, settings.explanations_table) if settings.explanations_table else None,
    )
    if NARRATIVE.enabled
    else None
)
app = APIGatewayRestResolver()
snapstart.register(lambda: budget.clients)  # SnapStart hooks; a no-op outside Lambda's runtime


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


def _error(
    status: int, code: str, message: str, field: str | None = None, details: list[dict] | None = None
) -> Response:
    error: dict[str, Any] = {"code": code, "message": message, "field": field}
    if details:
        error["details"] = details
    return Response(status_code=status, content_type="application/json", body=json.dumps({"error": error}))


def _read_body() -> dict[str, Any]:
    """The body as a JSON object, or ApiError. Whatever cannot be read as JSON text is a 400: bytes
    that are not UTF-8, nesting deeper than the parser goes, escapes that are not Unicode (\\ud800)."""
    event = app.current_event
    content_type = (event.headers.get("content-type") or "").split(";")[0].strip()
    if content_type.lower() != "application/json":
        raise ApiError(415, "unsupported_media_type", "Content-Type must be application/json")
    raw = event.body or ""
    try:
        data = base64.b64decode(raw, validate=True) if event.is_base64_encoded else raw.encode("utf-8")
    except (ValueError, UnicodeEncodeError):
        raise ApiError(400, "malformed_json", "body is not valid JSON") from None
    if len(data) > MAX_BODY_BYTES:
        raise ApiError(413, "body_too_large", f"body over {MAX_BODY_BYTES} bytes")
    try:
        body = json.loads(data.decode("utf-8"))
        json.dumps(body, ensure_ascii=False).encode("utf-8")  # refuses strings with lone surrogates
    except (ValueError, RecursionError):  # UnicodeError is a ValueError
        raise ApiError(400, "malformed_json", "body is not valid JSON in UTF-8") from None
    if not isinstance(body, dict):
        raise ApiError(422, "invalid_request", "body must be a JSON object")
    return body


def _caller() -> access.Client:
    """The client whose API key made this call (API Gateway passes the key's id)."""
    if KEY_CLIENTS is None:
        return LOCAL_CLIENT
    identity = (app.current_event.get("requestContext") or {}).get("identity") or {}
    client = KEY_CLIENTS.get(identity.get("apiKeyId") or "")
    if client is None:
        raise access.Forbidden("this API key belongs to no client")
    return client


@app.post("/v1/risk-score")
def risk_score() -> Any:
    started = time.perf_counter()
    budget.start(DECISION_BUDGET_S)
    caller = _caller()
    if not caller.may_score():
        raise access.Forbidden("this API key may not score orders")
    body = _read_body()
    if body.get("event_type") == "return":
        return _score_return(ReturnScoreRequest.model_validate(body), caller, started)
    if body.get("event_type") == "payment":
        return _score_payment(PaymentRiskRequest.model_validate(body), caller, started)
    request = RiskScoreRequest.model_validate(body)
    now = datetime.now(timezone.utc)
    ORDER_TIMES.check(request.order.order_time, now)
    scored = _as_of(request, "order", "order_time", now)
    request_hash = body_hash(request)
    named = access.decision_id(DECISION_ID_SECRET, caller.name, request.event_type, request.order.order_id)
    decision = decide(
        scored,
        features,
        model,
        PROFILES.current.policy,
        started=started,
        fallback=PROFILES.current.fallback,
        keyed_id=named,
        challenger=CHALLENGER,
        policy_for=PROFILES.policy_for,
    )
    if decision.variant == "champion" and not decision.response.degraded:
        PROFILES.served(decision.response.model_version)
    response = _narrate(decision.response, request.explain, request.locale, started)
    saved, replayed = decisions.save(
        response,
        customer_id=request.order.customer_id,
        request_hash=request_hash,
        api_client=caller.name,
        features=decision.vector,
        request=request.model_dump(mode="json"),
        contributions=decision.contributions,
        variant=decision.variant,
        shadow=decision.shadow,
    )
    # velocity before the stream catches up; a replay records again (idempotent) in case the first
    # answer was lost to a failure right here
    recent_orders.record(
        request.order.customer_id,
        request.order.order_id,
        int(scored.order.order_time.timestamp() * 1000),
        decision.recent_orders,
        now_ms=int(time.time() * 1000),
    )
    order_records.record_order(  # what a later return of this order is checked against
        order_id=request.order.order_id,
        customer_id=request.order.customer_id,
        product_id=request.order.product_id,
        amount_minor=amount_to_minor(request.order.amount),
        currency=request.order.currency,
        order_time_ms=int(request.order.order_time.timestamp() * 1000),
    )
    if replayed:
        logger.info("idempotent replay", extra={"decision_id": response.decision_id})
        return saved
    _count(response)
    return saved


Request = TypeVar("Request", RiskScoreRequest, PaymentRiskRequest, ReturnScoreRequest)


def _as_of(request: Request, part: str, field: str, now: datetime) -> Request:
    """The order (payment, return) as scored and recorded for velocity: a time ahead of now (the window
    allows for clock skew) counts as now, so no future time puts the customer's history, its last
    minute included, behind it, or a return past its window. The stored request keeps the time sent."""
    event = getattr(request, part)
    if getattr(event, field) <= now:
        return request
    return request.model_copy(update={part: event.model_copy(update={field: now})})


def _narrate(response: Any, explain: str, locale: str, started: float, untrusted: Any = None) -> Any:
    """Bedrock's narrative on top of the template when asked for or high/critical (and a model is
    configured). `untrusted`: customer-written text by label, sent only in guardContent blocks."""
    if narrator is None or not wanted(explain, response.risk_level, NARRATIVE):
        return response
    facts = NarrativeFacts.of(response, locale)
    if untrusted:
        facts = dataclasses.replace(facts, untrusted=untrusted)
    told = narrator.narrate(facts)
    response = narrative.apply(response, told)
    response.processing_time_ms = round((time.perf_counter() - started) * 1000, 2)
    if told.fallback_reason:
        logger.warning("narrative fallback", extra={"reason": told.fallback_reason})
        # two dimension sets: the dashboard keeps its per-service total, and each reason (timeout,
        # guardrail, a failed output check, ...) can be graphed on its own
        service = metrics.service or "returnguard"
        fallback = AmazonCloudWatchEMFProvider(namespace=metrics.namespace, service=service)
        fallback.add_metric(name="ExplanationFallback", unit=MetricUnit.Count, value=1)
        fallback.add_dimension("service", service)
        fallback.add_dimensions(service=service, reason=told.fallback_reason)
        fallback.flush_metrics()
    return response


def _score_return(request: ReturnScoreRequest, caller: access.Client, started: float) -> Any:
    """A return request: the same store, decisions, audit, metrics and narratives as an order. The
    reason text is never logged; it reaches Bedrock only inside guardContent."""
    ret, now = request.return_, datetime.now(timezone.utc)
    try:
        ORDER_TIMES.check(ret.return_date, now)
    except OrderTimeOutOfWindow as error:
        error.field = "return.return_date"
        raise
    named = access.decision_id(DECISION_ID_SECRET, caller.name, "return", ret.return_id)
    returns, _, return_fallback = _lanes(PROFILES.lane_current(RETURN_MODEL_DIR))
    decision = decide_return(
        _as_of(request, "return_", "return_date", now),
        features,
        return_model,
        returns,
        started=started,
        keyed_id=named,
        fallback=return_fallback,
        policy_for=lambda version: _lanes(PROFILES.for_lane(RETURN_MODEL_DIR, version))[0],
    )
    if not decision.response.degraded:
        PROFILES.lane_served(RETURN_MODEL_DIR, decision.response.model_version)
    untrusted = {"Return reason": ret.reason} if ret.reason else None
    response = _narrate(decision.response, request.explain, request.locale, started, untrusted)
    try:
        saved, replayed = decisions.save(
            response,
            customer_id=ret.customer_id,
            request_hash=body_hash(request),
            api_client=caller.name,
            features=decision.vector,
            request=request.model_dump(mode="json", by_alias=True),
            contributions=decision.contributions,
        )
    except Conflict:
        raise ApiError(
            409, "conflict", "this return was already scored with a different request", "return.return_id"
        ) from None
    order_records.record_return(order_id=ret.order_id, return_id=ret.return_id, product_id=ret.product_id)
    if replayed:
        logger.info("idempotent replay", extra={"decision_id": response.decision_id})
        return saved
    _count(response)
    return saved


def _score_payment(request: PaymentRiskRequest, caller: access.Client, started: float) -> Any:
    """A card payment: the same path as an order (window, keyed id, decision + audit, idempotency)."""
    now = datetime.now(timezone.utc)
    try:
        ORDER_TIMES.check(request.payment.transaction_time, now)
    except OrderTimeOutOfWindow as error:
        error.field = "payment.transaction_time"
        raise
    scored = _as_of(request, "payment", "transaction_time", now)
    named = access.decision_id(DECISION_ID_SECRET, caller.name, "payment", request.payment.transaction_id)
    decision = decide_payment(
        scored,
        features,
        payment_model,
        _lanes(PROFILES.lane_current(PAYMENT_MODEL_DIR))[1],
        decision_id=named,
        started=started,
        policy_for=lambda version: _lanes(PROFILES.for_lane(PAYMENT_MODEL_DIR, version))[1],
    )
    if not decision.response.degraded:
        PROFILES.lane_served(PAYMENT_MODEL_DIR, decision.response.model_version)
    saved, replayed = decisions.save(
        decision.response,  # type: ignore[arg-type]  # the store reads the fields all responses share
        customer_id=request.payment.customer_id,
        request_hash=payment_request_hash(request),
        api_client=caller.name,
        features=decision.vector,
        request=request.model_dump(mode="json"),
        contributions=decision.contributions,
    )
    # velocity before the stream catches up (idempotent per transaction id, so a replay records again)
    p, now_ms = scored.payment, int(time.time() * 1000)
    time_ms = int(p.transaction_time.timestamp() * 1000)
    for recorder, entity_id, seen in zip(
        recent_payments, (p.customer_id, p.card_fingerprint), decision.recorded, strict=True
    ):
        recorder.record(entity_id, p.transaction_id, time_ms, seen, now_ms=now_ms)
    if not replayed:
        _count(decision.response)
    return saved


def _count(response: Any) -> None:
    """One decision's metrics and log line (ids, level, action: never request text)."""
    metrics.add_dimension("risk_level", response.risk_level)
    metrics.add_metric(name="Decisions", unit=MetricUnit.Count, value=1)
    metrics.add_metric(
        name="DecisionLatency", unit=MetricUnit.Milliseconds, value=response.processing_time_ms
    )
    with single_metric(
        name="DecisionsByAction", unit=MetricUnit.Count, value=1, namespace=metrics.namespace
    ) as metric:
        metric.add_dimension("service", metrics.service or "returnguard")
        metric.add_dimension("action", response.recommended_action)
    if response.degraded:
        with single_metric(
            name="ModelFallback", unit=MetricUnit.Count, value=1, namespace=metrics.namespace
        ) as metric:
            metric.add_dimension("service", metrics.service or "returnguard")
    logger.info(
        "decided",
        extra={
            "decision_id": response.decision_id,
            "risk_level": response.risk_level,
            "action": response.recommended_action,
            "degraded": response.degraded,
            "degraded_reason": response.degraded_reason,
        },
    )


@app.get("/v1/decisions/<decision_id>")
def get_decision(decision_id: str) -> Any:
    budget.start(DECISION_BUDGET_S)
    caller = _caller()
    stored = decisions.get(decision_id)
    # one the caller may not read is answered as one that does not exist
    if stored is None or not caller.may_read(stored["client"]):
        raise ApiError(404, "not_found", "no decision with this id", "decision_id")
    return stored["response"]


@app.get("/v1/health")
def health() -> Response:
    """Each dependency probed within HEALTH_BUDGET_S: the model through its circuit breaker (an open
    circuit is not called), the store with one read. States only, never names or error text."""
    budget.start(HEALTH_BUDGET_S)
    try:
        model.score(PROBE_VECTOR)
        model_state = "ok"
    except ModelUnavailable:
        model_state = "degraded" if PROFILES.current.fallback is not None else "down"
    try:
        features.get_many(["health#probe"])
        store_state = "ok"
    except (BotoCoreError, ClientError):
        store_state = "down"
    status = "down" if store_state == "down" else "ok" if model_state == "ok" else "degraded"
    body = {
        "status": status,
        "model_version": PROFILES.current.version,
        "dependencies": {"model": model_state, "store": store_state},
    }
    return Response(
        status_code=503 if status == "down" else 200, content_type="application/json", body=json.dumps(body)
    )


# The routes above, by path: a known path asked with another method (TRACE, PUT, ...) is a 405.
ROUTE_METHODS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^/v1/risk-score/?$"), "POST"),
    (re.compile(r"^/v1/decisions/[^/]+/?$"), "GET"),
    (re.compile(r"^/v1/health/?$"), "GET"),
)


@app.not_found
def _not_found(_: Exception) -> Response:
    path = app.current_event.path
    allowed = [method for pattern, method in ROUTE_METHODS if pattern.match(path)]
    if allowed:
        response = _error(405, "method_not_allowed", f"{path} answers {', '.join(allowed)} only")
        response.headers["Allow"] = ", ".join(allowed)
        return response
    return _error(404, "not_found", "no such route")


@app.exception_handler(access.Forbidden)
def _forbidden(error: access.Forbidden) -> Response:
    return _error(403, "forbidden", str(error))


@app.exception_handler(ApiError)
def _api_error(error: ApiError) -> Response:
    return _error(error.status, error.code, error.message, error.field)


@app.exception_handler(ValidationError)
def _validation(error: ValidationError) -> Response:
    problems = [
        {"field": ".".join(str(p) for p in e["loc"]) or None, "message": e["msg"]} for e in error.errors()
    ]
    first = problems[0]
    summary = f"{first['field']}: {first['message']}"
    if len(problems) > 1:
        summary += f" (and {len(problems) - 1} more, see details)"
    return _error(422, "invalid_request", summary, first["field"], problems)


@app.exception_handler(OrderTimeOutOfWindow)
def _order_time(error: OrderTimeOutOfWindow) -> Response:
    message = str(error)
    return _error(
        422,
        error.code,
        f"{error.field}: {message}",
        error.field,
        [{"field": error.field, "message": message}],
    )


@app.exception_handler(UnknownCurrency)
def _currency(error: UnknownCurrency) -> Response:
    return _error(422, "invalid_request", f"order.currency: {error}", "order.currency")


@app.exception_handler(Conflict)
def _conflict(error: Conflict) -> Response:
    return _error(409, "conflict", "this order was already scored with a different request", "order.order_id")


THROTTLE_CODES = frozenset(
    {"ThrottlingException", "ProvisionedThroughputExceededException", "RequestLimitExceeded"}
)


@app.exception_handler(Exception)
def _unexpected(error: Exception) -> Response:
    if isinstance(error, ClientError) and error.response.get("Error", {}).get("Code") in THROTTLE_CODES:
        logger.warning("storage throttled", extra={"kind": error.response["Error"]["Code"]})
        return _error(429, "throttled", "too many requests right now, retry with backoff")
    if isinstance(error, (ClientError, BotoCoreError)):
        logger.error("storage unavailable", extra={"kind": type(error).__name__})
        return _error(503, "unavailable", "the decision store is unavailable, retry later")
    logger.exception("unexpected error")
    return _error(500, "internal_error", "internal error")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
