"""The deployment configuration: cdk.json context parsed once into a typed, frozen object."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

from returnguard.access import parse_client_scopes
from returnguard.fallback import FILE_NAME as FALLBACK_FILE
from returnguard.fallback import FallbackModel, FallbackModelError
from returnguard.gate import GateBounds, GateConfigError
from returnguard.payment_scoring import PAYMENT_MODEL_DIR, payment_policy
from returnguard.policy import PolicyConfig
from returnguard.returns_policy import RETURN_FALLBACK_FILE, RETURN_MODEL_DIR, ReturnPolicyConfig
from returnguard.schemas import OrderTimeWindow
from returnguard.variants import MODES as VARIANT_MODES
from returnguard.variants import VariantConfig, VariantConfigError

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("dev", "prod")
ENDPOINT_MODES = ("serverless", "realtime")
SERVERLESS_MEMORY_MB = (1024, 2048, 3072, 4096, 5120, 6144)

# Public SageMaker framework registries (sagemaker-python-sdk image_uri_config/xgboost.json; the same
# account serves every sagemaker-xgboost version in a region). Resolved per region through a CfnMapping.
XGBOOST_VERSION = "3.0-5"
XGBOOST_REGISTRIES: dict[str, str] = {
    "af-south-1": "510948584623",
    "ap-east-1": "651117190479",
    "ap-northeast-1": "354813040037",
    "ap-northeast-2": "366743142698",
    "ap-northeast-3": "867004704886",
    "ap-south-1": "720646828776",
    "ap-south-2": "628508329040",
    "ap-southeast-1": "121021644041",
    "ap-southeast-2": "783357654285",
    "ap-southeast-3": "951798379941",
    "ap-southeast-4": "106583098589",
    "ca-central-1": "341280168497",
    "ca-west-1": "190319476487",
    "eu-central-1": "492215442770",
    "eu-central-2": "680994064768",
    "eu-north-1": "662702820516",
    "eu-south-1": "978288397137",
    "eu-south-2": "104374241257",
    "eu-west-1": "141502667606",
    "eu-west-2": "764974769150",
    "eu-west-3": "659782779980",
    "il-central-1": "898809789911",
    "me-central-1": "272398656194",
    "me-south-1": "801668240914",
    "sa-east-1": "737474898029",
    "us-east-1": "683313688378",
    "us-east-2": "257758044811",
    "us-west-1": "746614075791",
    "us-west-2": "246618743249",
}

# SageMaker names (training jobs, models, endpoint configs, endpoints) are at most 63 characters. The
# retraining state machine names what it creates `<prefix>-<execution name>`, and a Step Functions execution
# started without a name gets a 36-character UUID, so the prefix has 63 - 1 - 36 = 26 characters at most.
SAGEMAKER_NAME_MAX = 63
EXECUTION_NAME_LENGTH = 36
PREFIX_MAX = SAGEMAKER_NAME_MAX - 1 - EXECUTION_NAME_LENGTH

# AWS-managed Powertools for AWS Lambda (Python) v3 layer; includes pydantic. Pinned.
POWERTOOLS_LAYER_ACCOUNT = "017000801446"
POWERTOOLS_LAYER_VERSION = 27


# One merchant back end that scores and reads its own decisions, until `api_clients` names more.
DEFAULT_API_CLIENTS: dict[str, list[str]] = {"default": ["score", "read_own"]}


class ConfigError(ValueError):
    """Invalid cdk.json context: the message names the key."""


@dataclass(frozen=True)
class EndpointConfig:
    mode: str  # serverless | realtime
    serverless_memory_mb: int
    serverless_max_concurrency: int
    instance_type: str
    instance_count: int


@dataclass(frozen=True)
class ApiThrottle:
    rate_limit: float
    burst_limit: int
    quota_per_day: int


# Where each geography's cross-Region inference profile may send a request, as published for Amazon
# Nova Lite (`aws bedrock get-inference-profile --inference-profile-identifier apac.amazon.nova-lite-v1:0
# --query 'models[].modelArn'` lists them). The function needs InvokeModel on the foundation model in
# each, or a request routed there is denied. AWS adds Regions to profiles: `bedrock_profile_regions`
# replaces a list without a code change.
PROFILE_REGIONS: dict[str, tuple[str, ...]] = {
    "us": ("us-east-1", "us-east-2", "us-west-2"),
    "eu": ("eu-central-1", "eu-north-1", "eu-west-1", "eu-west-3"),
    "apac": ("ap-northeast-1", "ap-northeast-2", "ap-south-1", "ap-southeast-1", "ap-southeast-2"),
}
# a Region's geography from its first part: us-east-1 -> us, ap-south-1 -> apac
REGION_GEOGRAPHY = {"us": "us", "eu": "eu", "ap": "apac"}


@dataclass(frozen=True)
class BedrockConfig:
    model_id: str  # a foundation model id; empty: off
    guardrail_id: str
    guardrail_version: str
    # "auto": call the model through the cross-Region inference profile of the stack's geography
    # (`us.` in us-east-1, `apac.` in ap-south-1); "none": call the foundation model in the stack's Region
    inference_profile: str = "auto"
    profile_regions: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(PROFILE_REGIONS))

    @property
    def enabled(self) -> bool:
        return bool(self.model_id)

    @property
    def uses_profile(self) -> bool:
        return self.inference_profile == "auto"

    def geography(self, region: str) -> str:
        geography = REGION_GEOGRAPHY.get(region.split("-", 1)[0], "")
        if geography not in self.profile_regions:
            raise ConfigError(
                f"no cross-Region inference profile for region {region!r} (known: "
                f"{', '.join(self.profile_regions)}); set 'bedrock_inference_profile' to none"
            )
        return geography

    def invoked_id(self, region: str) -> str:
        """What the function passes as modelId in `region`."""
        return f"{self.geography(region)}.{self.model_id}" if self.uses_profile else self.model_id


@dataclass(frozen=True)
class BlocklistConfig:
    """The MySQL-compatible source of the blocklist; the function exists only with both set."""

    db_endpoint: str
    db_secret_arn: str
    db_name: str
    schedule_minutes: int
    vpc_id: str
    subnet_ids: tuple[str, ...]
    security_group_id: str
    reserved_concurrency: int  # 0: reserve nothing (new accounts have a concurrency quota of 10)
    # The CA bundle (PEM) the sync verifies the database's TLS certificate with; default: RDS's global bundle.
    ca_bundle: Path = ROOT / "build" / "rds-ca" / "global-bundle.pem"
    # In a VPC: create the endpoints the sync needs (Secrets Manager interface; S3 and DynamoDB gateway on
    # these route tables). False: the subnets already reach those APIs (NAT gateway or existing endpoints).
    vpc_endpoints: bool = True
    route_table_ids: tuple[str, ...] = ()

    @property
    def enabled(self) -> bool:
        return bool(self.db_endpoint and self.db_secret_arn)


@dataclass(frozen=True)
class ModelBootstrap:
    model_dir: Path
    model_version: str
    thresholds: dict[str, Any]
    # the return model the same archive carries (its `return/config.json`): version and thresholds
    return_model: dict[str, Any] | None = None
    # the card-payment model under `payment/`, the same way (returnguard.payment_scoring)
    payment_model: dict[str, Any] | None = None

    @property
    def model_tarball(self) -> Path:
        return self.model_dir / "model.tar.gz"

    @property
    def sourcedir_tarball(self) -> Path:
        return self.model_dir / "sourcedir.tar.gz"

    @property
    def fallback_model(self) -> Path:
        """The same training run's fallback model, shipped inside the score function."""
        return self.model_dir / FALLBACK_FILE

    @property
    def fallback_files(self) -> dict[str, Path]:
        """The fallback models the score function carries (file name in its folder → source): the order
        lane's, and the return lane's (`return/fallback_model.json`) when the archive has one."""
        files = {FALLBACK_FILE: self.fallback_model}
        returns = self.model_dir / RETURN_MODEL_DIR / FALLBACK_FILE
        if returns.is_file():
            files[RETURN_FALLBACK_FILE] = returns
        return files

    @property
    def serving_config_json(self) -> str:
        """RG_MODEL_CONFIG: the model's version and thresholds (and the return model's under `return`),
        compact JSON."""
        config: dict[str, Any] = {"model_version": self.model_version, "thresholds": self.thresholds}
        if self.return_model is not None:
            config[RETURN_MODEL_DIR] = self.return_model
        if self.payment_model is not None:
            config[PAYMENT_MODEL_DIR] = self.payment_model
        return json.dumps(config, separators=(",", ":"))


@dataclass(frozen=True)
class StageConfig:
    stage: str
    account: str | None
    region: str | None
    prefix: str
    endpoint: EndpointConfig
    bedrock: BedrockConfig
    alert_email: str
    api_throttle: ApiThrottle
    model: ModelBootstrap
    policy: dict[str, float | str]  # the deployment's policy overrides (RG_POLICY); {} = the model's
    return_policy: dict[str, Any]  # the refund ladder's overrides (RG_RETURN_POLICY); {} = the defaults
    velocity_orders: int  # the velocity rule's order count with those overrides, for the Glue rules job
    order_time_window: OrderTimeWindow  # how far before/after now the API accepts an order_time
    api_clients: dict[str, tuple[str, ...]]  # API client -> scopes; each gets its own key and usage plan
    blocklist: BlocklistConfig
    waf: bool
    waf_rate_limit_per_key: int  # requests per API key per 5 minutes
    waf_rate_limit_per_ip: int  # requests per IP per 5 minutes, for requests without an API key only
    api_execution_log_level: str  # API Gateway execution logs: INFO logs request data, ERROR only failures
    # deploy the ReturnGuard-ApiGatewayAccount stack (the account's API Gateway CloudWatch role)
    api_gateway_account: bool
    retraining_schedule_enabled: bool
    gate: GateBounds  # the promotion gate's bounds (context `gate`, a JSON object; returnguard/gate.py)
    etl_schedule_enabled: bool  # the nightly rules job and crawlers (Glue triggers, created but not started)
    score_snapstart: bool  # Lambda SnapStart on the score function's published versions
    log_retention_days: int
    log_level: str
    stream_retention_hours: int
    glue_workers: int
    # files up to this size are validated and scored by the batch Lambda; larger ones by the Glue job
    batch_small_file_mb: int = 16
    variants: VariantConfig = VariantConfig()  # champion / challenger: shadow or A-B (returnguard.variants)

    @property
    def is_prod(self) -> bool:
        return self.stage == "prod"

    @property
    def retain_data(self) -> bool:
        return self.is_prod

    @property
    def point_in_time_recovery(self) -> bool:
        return self.is_prod

    @property
    def variant_environment(self) -> dict[str, str]:
        """RG_VARIANT_MODE / RG_CHALLENGER_SHARE / RG_VARIANT_SALT for the score function."""
        return {
            "RG_VARIANT_MODE": self.variants.mode,
            "RG_CHALLENGER_SHARE": str(self.variants.challenger_share),
            "RG_VARIANT_SALT": self.variants.salt,
        }

    @property
    def order_time_environment(self) -> dict[str, str]:
        """RG_ORDER_TIME_PAST_S / RG_ORDER_TIME_FUTURE_S for the score function."""
        return {
            "RG_ORDER_TIME_PAST_S": str(int(self.order_time_window.past.total_seconds())),
            "RG_ORDER_TIME_FUTURE_S": str(int(self.order_time_window.future.total_seconds())),
        }

    @property
    def policy_json(self) -> str:
        """RG_POLICY: the policy overrides, compact JSON (`{}`: the model's thresholds as they are)."""
        return json.dumps(self.policy, sort_keys=True, separators=(",", ":"))

    @property
    def return_policy_json(self) -> str:
        """RG_RETURN_POLICY: the refund ladder's overrides, compact JSON."""
        return json.dumps(self.return_policy, sort_keys=True, separators=(",", ":"))


# Defaults per stage; any key may be overridden with `-c key=value` or in cdk.json.
STAGE_DEFAULTS: dict[str, dict[str, Any]] = {
    "dev": {
        "endpoint_mode": "serverless",
        "serverless_memory_mb": 2048,
        "serverless_max_concurrency": 5,
        "instance_type": "ml.m5.large",
        "instance_count": 1,
        "api_rate_limit": 50,
        "api_burst_limit": 100,
        "api_quota_per_day": 100_000,
        "waf": False,
        "api_execution_log_level": "INFO",
        "retraining_schedule": False,
        "etl_schedule": False,
        "score_snapstart": False,
        "log_retention_days": 7,
        "log_level": "DEBUG",
        "stream_retention_hours": 24,
        "glue_workers": 2,
    },
    "prod": {
        "endpoint_mode": "realtime",
        "serverless_memory_mb": 2048,
        "serverless_max_concurrency": 20,
        "instance_type": "ml.c5.large",
        "instance_count": 2,
        "api_rate_limit": 500,
        "api_burst_limit": 1000,
        "api_quota_per_day": 5_000_000,
        "waf": True,
        "api_execution_log_level": "ERROR",
        "retraining_schedule": True,
        "etl_schedule": True,
        "score_snapstart": True,
        "log_retention_days": 90,
        "log_level": "INFO",
        "stream_retention_hours": 168,
        "glue_workers": 10,
    },
}

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_SECRET_ARN = re.compile(r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+$")
_INSTANCE = re.compile(r"^ml\.[a-z0-9]+\.[a-z0-9]+$")
_MODEL_ID = re.compile(r"^[A-Za-z0-9.:_-]*$")


def _profile_regions(read: _Context) -> dict[str, tuple[str, ...]]:
    """`bedrock_profile_regions`: {"apac": ["ap-south-1", ...]}, as an object or its JSON text."""
    value = read.raw.get("bedrock_profile_regions") or {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = None
    region = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
    if not isinstance(value, dict) or not all(
        geography in PROFILE_REGIONS
        and isinstance(regions, list)
        and regions
        and all(isinstance(r, str) and region.match(r) for r in regions)
        for geography, regions in value.items()
    ):
        raise ConfigError(
            "context 'bedrock_profile_regions' must be a JSON object from geography "
            f"({', '.join(PROFILE_REGIONS)}) to a list of regions, got {value!r}"
        )
    return {geography: tuple(regions) for geography, regions in value.items()}


class ContextSource(Protocol):
    def get(self, key: str) -> Any: ...


class _Context:
    """Typed reads of the context with errors that name the key."""

    def __init__(self, raw: ContextSource, defaults: dict[str, Any]) -> None:
        self.raw = raw
        self.defaults = defaults

    def _get(self, key: str, default: Any) -> Any:
        value = self.raw.get(key)
        if value is None or value == "":
            return self.defaults.get(key, default)
        return value

    def string(self, key: str, default: str = "") -> str:
        value = self._get(key, default)
        if not isinstance(value, (str, int, float)):
            raise ConfigError(f"context '{key}' must be a string, got {value!r}")
        return str(value).strip()

    def integer(
        self, key: str, default: int = 0, minimum: int | None = None, maximum: int | None = None
    ) -> int:
        value = self._get(key, default)
        try:
            number = int(str(value))
        except ValueError:
            raise ConfigError(f"context '{key}' must be an integer, got {value!r}") from None
        if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
            raise ConfigError(f"context '{key}' must be between {minimum} and {maximum}, got {number}")
        return number

    def number(self, key: str, default: float = 0.0, minimum: float = 0.0) -> float:
        value = self._get(key, default)
        try:
            number = float(str(value))
        except ValueError:
            raise ConfigError(f"context '{key}' must be a number, got {value!r}") from None
        if number <= minimum:
            raise ConfigError(f"context '{key}' must be greater than {minimum}, got {number}")
        return number

    def boolean(self, key: str, default: bool = False) -> bool:
        value = self._get(key, default)
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1", "yes", "on"):
            return True
        if text in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"context '{key}' must be true or false, got {value!r}")

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        value = self.string(key, default)
        if value not in choices:
            raise ConfigError(f"context '{key}' must be one of {', '.join(choices)}, got {value!r}")
        return value

    def mapping(self, key: str) -> dict[str, float | str]:
        """A JSON object of numbers or strings: in cdk.json as an object, with `-c key='{...}'` as its text."""
        value = self._get(key, {})
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                raise ConfigError(f"context '{key}' must be a JSON object, got {value!r}") from None
        if not isinstance(value, dict) or not all(
            isinstance(v, (int, float, str)) and not isinstance(v, bool) for v in value.values()
        ):
            raise ConfigError(f"context '{key}' must be a JSON object of numbers or strings, got {value!r}")
        return {str(k): v for k, v in value.items()}

    def json_object(self, key: str) -> dict[str, Any]:
        """A JSON object of any values: in cdk.json as an object, with `-c key='{...}'` as its text."""
        value = self._get(key, {})
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                raise ConfigError(f"context '{key}' must be a JSON object, got {value!r}") from None
        if not isinstance(value, dict):
            raise ConfigError(f"context '{key}' must be a JSON object, got {value!r}")
        return {str(k): v for k, v in value.items()}

    def string_list(self, key: str) -> tuple[str, ...]:
        value = self._get(key, "")
        if isinstance(value, list):
            return tuple(str(v).strip() for v in value if str(v).strip())
        return tuple(part.strip() for part in str(value).split(",") if part.strip())


def _read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def read_model_bootstrap(model_dir: Path) -> ModelBootstrap:
    """The bootstrap model's artifacts and serving config; fails with what to run when absent."""
    missing = [
        name
        for name in ("model.tar.gz", "sourcedir.tar.gz", "config.json", FALLBACK_FILE)
        if not (model_dir / name).is_file()
    ]
    if missing:
        raise ConfigError(
            f"context 'model_dir': {model_dir} lacks {', '.join(missing)}; run `make model` first "
            "(it trains the bootstrap model the first deploy ships)"
        )
    try:
        config = json.loads((model_dir / "config.json").read_text())
        version = str(config["model_version"])
        thresholds = dict(config["thresholds"])
        PolicyConfig.from_model_config({"thresholds": thresholds})  # what the score Lambda will read
    except (ValueError, KeyError, TypeError) as error:
        raise ConfigError(
            f"context 'model_dir': {model_dir / 'config.json'} needs 'model_version' and 'thresholds' "
            f"(medium, high, critical) ({error!r})"
        ) from None
    try:
        FallbackModel.load(model_dir / FALLBACK_FILE)  # what the score Lambda falls back to
    except FallbackModelError as error:
        raise ConfigError(f"context 'model_dir': {error}; run `make model` again") from None
    return ModelBootstrap(
        model_dir=model_dir,
        model_version=version,
        thresholds=thresholds,
        return_model=_read_return_model(model_dir),
        payment_model=_read_payment_model(model_dir),
    )


def _read_payment_model(model_dir: Path) -> dict[str, Any] | None:
    """The payment model's version and thresholds when the archive carries one (`payment/config.json`)."""
    path = model_dir / PAYMENT_MODEL_DIR / "config.json"
    if not path.is_file():
        return None
    try:
        config = json.loads(path.read_text())
        lane = {"model_version": str(config["model_version"]), "thresholds": dict(config["thresholds"])}
        payment_policy({PAYMENT_MODEL_DIR: lane})
    except (ValueError, KeyError, TypeError) as error:
        raise ConfigError(
            f"context 'model_dir': {path} needs 'model_version' and 'thresholds' (medium, high, critical) "
            f"({error!r})"
        ) from None
    return lane


def _read_return_model(model_dir: Path) -> dict[str, Any] | None:
    """The return model's version and thresholds when the archive carries one (`return/config.json`)."""
    path = model_dir / RETURN_MODEL_DIR / "config.json"
    if not path.is_file():
        return None
    try:
        config = json.loads(path.read_text())
        return_model = {
            "model_version": str(config["model_version"]),
            "thresholds": dict(config["thresholds"]),
        }
        ReturnPolicyConfig.from_settings(return_model["thresholds"])
    except (ValueError, KeyError, TypeError) as error:
        raise ConfigError(
            f"context 'model_dir': {path} needs 'model_version' and 'thresholds' (medium, high, critical) "
            f"({error!r})"
        ) from None
    fallback = model_dir / RETURN_MODEL_DIR / FALLBACK_FILE
    if fallback.is_file():  # what the score Lambda falls back to for returns
        try:
            ReturnPolicyConfig().with_thresholds(FallbackModel.load(fallback).thresholds)
        except ValueError as error:  # FallbackModelError is one
            raise ConfigError(f"context 'model_dir': {error}; run `make model` again") from None
    return return_model


def load(context: ContextSource, environment: dict[str, str]) -> StageConfig:
    """Parse the context (cdk.json + `-c`) and CDK_DEFAULT_* environment once."""
    stage = _Context(context, {}).choice("stage", STAGES, "dev")
    read = _Context(context, STAGE_DEFAULTS[stage])

    endpoint = EndpointConfig(
        mode=read.choice("endpoint_mode", ENDPOINT_MODES, "serverless"),
        serverless_memory_mb=read.integer("serverless_memory_mb", 2048),
        serverless_max_concurrency=read.integer("serverless_max_concurrency", 5, minimum=1, maximum=200),
        instance_type=read.string("instance_type", "ml.m5.large"),
        instance_count=read.integer("instance_count", 1, minimum=1, maximum=20),
    )
    if endpoint.serverless_memory_mb not in SERVERLESS_MEMORY_MB:
        raise ConfigError(
            f"context 'serverless_memory_mb' must be one of {SERVERLESS_MEMORY_MB}, got {endpoint.serverless_memory_mb}"
        )
    if not _INSTANCE.match(endpoint.instance_type):
        raise ConfigError(
            f"context 'instance_type' must look like ml.c5.large, got {endpoint.instance_type!r}"
        )

    bedrock = BedrockConfig(
        model_id=read.string("bedrock_model_id") if read.boolean("bedrock_enabled", True) else "",
        guardrail_id=read.string("bedrock_guardrail_id"),
        guardrail_version=read.string("bedrock_guardrail_version"),
        inference_profile=read.choice("bedrock_inference_profile", ("auto", "none"), "auto"),
        profile_regions={**PROFILE_REGIONS, **_profile_regions(read)},
    )
    if not _MODEL_ID.match(bedrock.model_id):
        raise ConfigError(f"context 'bedrock_model_id' is not a model id: {bedrock.model_id!r}")
    if bedrock.model_id.split(".", 1)[0] in (*PROFILE_REGIONS, "global"):
        raise ConfigError(
            f"context 'bedrock_model_id' names an inference profile ({bedrock.model_id!r}): give the "
            "foundation model id; the profile follows the region ('bedrock_inference_profile')"
        )
    if bedrock.guardrail_id and not bedrock.guardrail_version:
        raise ConfigError("context 'bedrock_guardrail_version' is required with 'bedrock_guardrail_id'")

    alert_email = read.string("alert_email")
    if alert_email and not _EMAIL.match(alert_email):
        raise ConfigError(f"context 'alert_email' is not an email address: {alert_email!r}")

    throttle = ApiThrottle(
        rate_limit=read.number("api_rate_limit", 50),
        burst_limit=read.integer("api_burst_limit", 100, minimum=1, maximum=100_000),
        quota_per_day=read.integer("api_quota_per_day", 100_000, minimum=1),
    )

    blocklist = BlocklistConfig(
        db_endpoint=read.string("blocklist_db_endpoint"),
        db_secret_arn=read.string("blocklist_db_secret_arn"),
        db_name=read.string("blocklist_db_name", "returns"),
        schedule_minutes=read.integer("blocklist_schedule_minutes", 5, minimum=1, maximum=1440),
        vpc_id=read.string("vpc_id"),
        subnet_ids=read.string_list("subnet_ids"),
        security_group_id=read.string("security_group_id"),
        reserved_concurrency=read.integer("blocklist_reserved_concurrency", 0, minimum=0, maximum=1000),
        ca_bundle=ROOT / read.string("blocklist_db_ca_bundle", "build/rds-ca/global-bundle.pem"),
        vpc_endpoints=read.boolean("blocklist_vpc_endpoints", True),
        route_table_ids=read.string_list("route_table_ids"),
    )
    if blocklist.db_secret_arn and not _SECRET_ARN.match(blocklist.db_secret_arn):
        raise ConfigError(
            f"context 'blocklist_db_secret_arn' is not a Secrets Manager ARN: {blocklist.db_secret_arn!r}"
        )
    if bool(blocklist.db_endpoint) != bool(blocklist.db_secret_arn):
        raise ConfigError("context 'blocklist_db_endpoint' and 'blocklist_db_secret_arn' go together")
    if blocklist.vpc_id and not (blocklist.subnet_ids and blocklist.security_group_id):
        raise ConfigError("context 'vpc_id' needs 'subnet_ids' and 'security_group_id'")
    if blocklist.enabled and blocklist.vpc_id and blocklist.vpc_endpoints and not blocklist.route_table_ids:
        raise ConfigError(
            "context 'route_table_ids' (the subnets' route tables) is needed for the S3 and DynamoDB gateway "
            "endpoints the sync uses in 'vpc_id'; or set 'blocklist_vpc_endpoints' false when the subnets "
            "already reach AWS APIs (NAT gateway or existing endpoints)"
        )
    if blocklist.enabled and "-----BEGIN CERTIFICATE-----" not in _read_text(blocklist.ca_bundle):
        raise ConfigError(
            f"context 'blocklist_db_ca_bundle': {blocklist.ca_bundle} is not a PEM CA bundle; the sync "
            "connects with TLS only: run `make rds-ca` (downloads the RDS CA bundle) or name your "
            "database's CA bundle"
        )

    model_dir = Path(read.string("model_dir", "build/model"))
    if not model_dir.is_absolute():
        model_dir = ROOT / model_dir

    model = read_model_bootstrap(model_dir)
    policy = read.mapping("policy")
    try:
        velocity_orders = PolicyConfig.from_model_config(
            {"thresholds": model.thresholds}, policy
        ).velocity_orders
    except (ValueError, TypeError) as error:
        raise ConfigError(f"context 'policy': {error}") from None
    return_policy = read.json_object("return_policy")
    try:
        ReturnPolicyConfig.from_settings((model.return_model or {}).get("thresholds"), return_policy)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"context 'return_policy': {error}") from None

    try:
        gate = GateBounds.from_mapping(read.mapping("gate"))
    except GateConfigError as error:
        raise ConfigError(f"context 'gate': {error}") from None

    order_time_window = OrderTimeWindow(
        past=timedelta(days=read.integer("order_time_past_days", 7, minimum=0, maximum=3660)),
        future=timedelta(seconds=read.integer("order_time_future_seconds", 300, minimum=0, maximum=86_400)),
    )

    clients_value = read._get("api_clients", DEFAULT_API_CLIENTS)
    try:
        api_clients = parse_client_scopes(
            json.loads(clients_value) if isinstance(clients_value, str) else clients_value
        )
    except ValueError as error:
        raise ConfigError(f"context 'api_clients': {error}") from None

    prefix = read.string("prefix", f"returnguard-{stage}")
    if not re.match(r"^[a-z][a-z0-9-]*[a-z0-9]$", prefix) or len(prefix) < 3:
        raise ConfigError(
            f"context 'prefix' must be lowercase letters, digits or dashes, starting with a letter and "
            f"ending with a letter or digit, got {prefix!r}"
        )
    if len(prefix) > PREFIX_MAX:
        raise ConfigError(
            f"context 'prefix' is {len(prefix)} characters, at most {PREFIX_MAX} fit: SageMaker names are at "
            f"most {SAGEMAKER_NAME_MAX} characters and retraining names its training jobs, models and "
            f"endpoint configs '<prefix>-<execution name>' ({EXECUTION_NAME_LENGTH} characters), got {prefix!r}"
        )

    try:
        variants = VariantConfig(
            mode=read.choice("variant_mode", VARIANT_MODES, "off"),  # type: ignore[arg-type]
            challenger_share=float(read.string("challenger_share", "0") or 0),
            salt=read.string("variant_salt", prefix),
        )
    except (VariantConfigError, ValueError) as error:
        raise ConfigError(f"context 'variant_mode' / 'challenger_share' / 'variant_salt': {error}") from None

    return StageConfig(
        stage=stage,
        account=environment.get("CDK_DEFAULT_ACCOUNT") or None,
        region=environment.get("CDK_DEFAULT_REGION") or None,
        prefix=prefix,
        endpoint=endpoint,
        bedrock=bedrock,
        alert_email=alert_email,
        api_throttle=throttle,
        model=model,
        policy=policy,
        return_policy=return_policy,
        velocity_orders=velocity_orders,
        order_time_window=order_time_window,
        api_clients=api_clients,
        blocklist=blocklist,
        waf=read.boolean("waf", False),
        # Default: the usage plan's steady rate over WAF's 5-minute window, so WAF only stops a key
        # that the usage plan would already be throttling.
        waf_rate_limit_per_key=read.integer(
            "waf_rate_limit_per_key",
            max(100, int(throttle.rate_limit * 300)),
            minimum=100,
            maximum=2_000_000_000,
        ),
        waf_rate_limit_per_ip=read.integer("waf_rate_limit_per_ip", 2000, minimum=100, maximum=2_000_000_000),
        api_execution_log_level=read.choice("api_execution_log_level", ("OFF", "ERROR", "INFO"), "ERROR"),
        api_gateway_account=read.boolean("api_gateway_account", True),
        retraining_schedule_enabled=read.boolean("retraining_schedule", False),
        gate=gate,
        etl_schedule_enabled=read.boolean("etl_schedule", False),
        score_snapstart=read.boolean("score_snapstart", False),
        log_retention_days=read.integer("log_retention_days", 7, minimum=1, maximum=3653),
        log_level=read.choice("log_level", ("DEBUG", "INFO", "WARNING", "ERROR"), "INFO"),
        stream_retention_hours=read.integer("stream_retention_hours", 24, minimum=24, maximum=8760),
        glue_workers=read.integer("glue_workers", 2, minimum=2, maximum=100),
        batch_small_file_mb=read.integer("batch_small_file_mb", 16, minimum=1, maximum=1024),
        variants=variants,
    )
