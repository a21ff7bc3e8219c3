"""Synthesize dev and prod once per test session, offline, from a small fake bootstrap model.

A plugin of the root conftest (not tests/infra's), so the infra tests and the integration tests that
execute synthesized state machines share one synth of each stage."""

from __future__ import annotations

import io
import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault(
    "JSII_RUNTIME_PACKAGE_CACHE_ROOT", str(Path(__file__).resolve().parents[1] / "build" / "jsii-cache")
)
for variable in ("CDK_DEFAULT_ACCOUNT", "CDK_DEFAULT_REGION"):
    os.environ.pop(variable, None)

MODEL_CONFIG = {"model_version": "v-test-1", "thresholds": {"medium": 0.35, "high": 0.7, "critical": 0.9}}
FALLBACK_MODEL = {
    "kind": "logistic_regression",
    "model_version": "v-test-1-fallback",
    "feature_names": ["customer_return_rate_last_6"],
    "intercept": -2.0,
    "coefficients": [1.5],
    "means": [0.1],
    "scales": [0.2],
    "thresholds": {"medium": 0.2, "high": 0.5, "critical": 0.8},
}
SECRET_ARN = "arn:aws:secretsmanager:ap-south-1:123456789012:secret:returnguard/blocklist-AbCdEf"

DEV_CONTEXT = {"stage": "dev", "bedrock_enabled": False}
PROD_CONTEXT = {
    "api_clients": '{"default": ["score", "read_own"], "console": ["read_all"]}',
    "stage": "prod",
    "alert_email": "alerts@example.com",
    "bedrock_model_id": "amazon.nova-lite-v1:0",
    "bedrock_guardrail_id": "gr-abc123",
    "bedrock_guardrail_version": "1",
    "blocklist_db_endpoint": "blocklist.cluster-x.ap-south-1.rds.amazonaws.com",
    "blocklist_db_secret_arn": SECRET_ARN,
    "vpc_id": "vpc-0123456789abcdef0",
    "subnet_ids": "subnet-aaaa1111,subnet-bbbb2222",
    "security_group_id": "sg-0123456789abcdef0",
    "route_table_ids": "rtb-aaaa1111,rtb-bbbb2222",
    # a throwaway CA certificate (PEM) standing in for the RDS bundle `make rds-ca` downloads
    "blocklist_db_ca_bundle": str(Path(__file__).resolve().parent / "infra" / "fake-ca-bundle.pem"),
    "policy": '{"velocity_orders": 3, "critical": 0.95}',  # as `-c policy=...` passes it: text
}


def _tar(path: Path, name: str, content: bytes) -> None:
    with tarfile.open(path, "w:gz") as archive:
        info = tarfile.TarInfo(name)
        info.size = len(content)
        archive.addfile(info, io.BytesIO(content))


@pytest.fixture(scope="session")
def fake_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model_dir = tmp_path_factory.mktemp("model")
    _tar(model_dir / "model.tar.gz", "xgboost-model.json", b"{}")
    _tar(model_dir / "sourcedir.tar.gz", "inference.py", b"# fake\n")
    (model_dir / "config.json").write_text(json.dumps(MODEL_CONFIG))
    (model_dir / "fallback_model.json").write_text(json.dumps(FALLBACK_MODEL))
    return model_dir


@dataclass
class Synthesized:
    config: object
    stacks: object
    assembly_dir: Path


def _synth(context: dict, model_dir: Path, outdir: Path) -> Synthesized:
    from aws_cdk import App

    from stacks import config as stage_config
    from stacks.wiring import build

    # cdk.json's context (feature flags, defaults) under the test's, as the CDK CLI would merge it.
    cdk_json = json.loads((Path(__file__).resolve().parents[1] / "cdk.json").read_text())["context"]
    full = {**cdk_json, **context, "model_dir": str(model_dir)}
    app = App(context=full, outdir=str(outdir))
    config = stage_config.load(full, {})
    stacks = build(app, config)
    app.synth()
    return Synthesized(config=config, stacks=stacks, assembly_dir=outdir)


@pytest.fixture(scope="session")
def dev(fake_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return _synth(DEV_CONTEXT, fake_model_dir, tmp_path_factory.mktemp("cdk-dev"))


@pytest.fixture(scope="session")
def prod(fake_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return _synth(PROD_CONTEXT, fake_model_dir, tmp_path_factory.mktemp("cdk-prod"))
