"""Context parsing: defaults per stage, and errors that name the offending key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stacks.config import ConfigError, load

ROOT = Path(__file__).resolve().parents[2]


def with_return_model(fake_model_dir: Path, folder: Path) -> None:
    """The fake model folder copied into `folder` with a return lane (thresholds 0.2 / 0.4 / 0.7)."""
    for name in ("model.tar.gz", "sourcedir.tar.gz", "config.json", "fallback_model.json"):
        (folder / name).write_bytes((fake_model_dir / name).read_bytes())
    (folder / "return").mkdir()
    (folder / "return" / "config.json").write_text(
        json.dumps({"model_version": "r1", "thresholds": {"medium": 0.2, "high": 0.4, "critical": 0.7}})
    )


def test_dev_defaults_to_a_serverless_endpoint(fake_model_dir):
    config = load({"model_dir": str(fake_model_dir)}, {})
    assert config.stage == "dev"
    assert config.endpoint.mode == "serverless"
    assert config.account is None and config.region is None
    assert not config.retain_data


def test_prod_defaults_to_realtime_and_reads_region_from_environment(fake_model_dir):
    config = load({"stage": "prod", "model_dir": str(fake_model_dir)}, {"CDK_DEFAULT_REGION": "ap-south-1"})
    assert config.endpoint.mode == "realtime"
    assert config.region == "ap-south-1"
    assert config.retain_data and config.point_in_time_recovery


@pytest.mark.parametrize(
    ("context", "key"),
    [
        ({"stage": "qa"}, "stage"),
        ({"endpoint_mode": "batch"}, "endpoint_mode"),
        ({"serverless_memory_mb": 1000}, "serverless_memory_mb"),
        ({"api_rate_limit": "fast"}, "api_rate_limit"),
        ({"api_burst_limit": 0}, "api_burst_limit"),
        ({"alert_email": "not-an-email"}, "alert_email"),
        ({"instance_type": "m5.large"}, "instance_type"),
        ({"bedrock_guardrail_id": "gr-1"}, "bedrock_guardrail_version"),
        ({"blocklist_db_secret_arn": "secret"}, "blocklist_db_secret_arn"),
        ({"waf": "maybe"}, "waf"),
        ({"policy": '{"velocity_orders": 1}'}, "policy"),
        ({"policy": '{"decision": 0.2}'}, "policy"),
        ({"policy": "velocity_orders=3"}, "policy"),
        ({"policy": {"high": "0.5"}}, "policy"),
        ({"bedrock_model_id": "us.amazon.nova-lite-v1:0"}, "bedrock_model_id"),
        ({"bedrock_inference_profile": "global"}, "bedrock_inference_profile"),
        ({"bedrock_profile_regions": '{"apac": "ap-south-1"}'}, "bedrock_profile_regions"),
        ({"bedrock_profile_regions": {"mars": ["mars-north-1"]}}, "bedrock_profile_regions"),
        ({"order_time_past_days": -1}, "order_time_past_days"),
        ({"order_time_future_seconds": "soon"}, "order_time_future_seconds"),
        ({"api_clients": '{"shop": ["admin"]}'}, "api_clients"),
        ({"api_clients": "{}"}, "api_clients"),
        ({"api_clients": '{"Shop A": ["score"]}'}, "api_clients"),
        ({"gate": '{"max_auc_drop": 0.1}'}, "gate"),
        ({"gate": {"max_level_psi": -1}}, "gate"),
    ],
)
def test_invalid_context_names_the_key(fake_model_dir, context, key):
    with pytest.raises(ConfigError, match=f"'{key}'"):
        load({**context, "model_dir": str(fake_model_dir)}, {})


def test_the_default_model_is_current_and_called_through_the_region_s_profile(fake_model_dir):
    # Claude 3 Haiku (the old default) reached end of life on Bedrock on 2026-09-10.
    cdk_json = json.loads((ROOT / "cdk.json").read_text())["context"]
    bedrock = load({**cdk_json, "model_dir": str(fake_model_dir)}, {}).bedrock
    assert bedrock.model_id == "amazon.nova-lite-v1:0" and bedrock.uses_profile
    assert bedrock.invoked_id("us-east-1") == "us.amazon.nova-lite-v1:0"
    assert bedrock.invoked_id("ap-south-1") == "apac.amazon.nova-lite-v1:0"
    assert bedrock.invoked_id("eu-west-1") == "eu.amazon.nova-lite-v1:0"
    with pytest.raises(ConfigError, match="sa-east-1.*bedrock_inference_profile"):
        bedrock.invoked_id("sa-east-1")


def test_profile_regions_can_be_replaced_per_geography(fake_model_dir):
    context = {
        "model_dir": str(fake_model_dir),
        "bedrock_profile_regions": '{"apac": ["ap-south-1", "ap-south-2"]}',
    }
    regions = load(context, {}).bedrock.profile_regions
    assert regions["apac"] == ("ap-south-1", "ap-south-2")
    assert regions["us"] == ("us-east-1", "us-east-2", "us-west-2")


def test_missing_model_tells_the_user_to_run_make_model(tmp_path):
    with pytest.raises(ConfigError, match="make model"):
        load({"model_dir": str(tmp_path)}, {})


def test_a_model_config_the_score_function_could_not_read_fails_the_synth(fake_model_dir, tmp_path):
    for name in ("model.tar.gz", "sourcedir.tar.gz", "fallback_model.json"):
        (tmp_path / name).write_bytes((fake_model_dir / name).read_bytes())
    (tmp_path / "config.json").write_text(json.dumps({"model_version": "v1", "thresholds": {"medium": 0.3}}))
    with pytest.raises(ConfigError, match="'model_dir'.*critical"):
        load({"model_dir": str(tmp_path)}, {})


def test_a_missing_or_unusable_fallback_model_fails_the_synth(fake_model_dir, tmp_path):
    for name in ("model.tar.gz", "sourcedir.tar.gz", "config.json"):
        (tmp_path / name).write_bytes((fake_model_dir / name).read_bytes())
    with pytest.raises(ConfigError, match="lacks fallback_model.json.*make model"):
        load({"model_dir": str(tmp_path)}, {})
    (tmp_path / "fallback_model.json").write_text(json.dumps({"kind": "logistic_regression"}))
    with pytest.raises(ConfigError, match="'model_dir'.*fallback_model.json.*malformed"):
        load({"model_dir": str(tmp_path)}, {})


def test_the_promotion_gate_bounds_are_a_deployment_setting(fake_model_dir):
    assert load({"model_dir": str(fake_model_dir)}, {}).gate.max_roc_auc_drop == 0.01
    config = load({"model_dir": str(fake_model_dir), "gate": '{"max_roc_auc_drop": 0.005}'}, {})
    assert config.gate.max_roc_auc_drop == 0.005


def test_the_degraded_policy_is_a_deployment_setting(fake_model_dir):
    config = load({"model_dir": str(fake_model_dir), "policy": '{"degraded_floor": "medium"}'}, {})
    assert config.policy == {"degraded_floor": "medium"}
    with pytest.raises(ConfigError, match="'policy'.*degraded_ceiling must be one of"):
        load({"model_dir": str(fake_model_dir), "policy": {"degraded_ceiling": "block"}}, {})


def test_app_exits_with_the_key_name_on_invalid_context(fake_model_dir, tmp_path):
    env = dict(
        os.environ,
        CDK_CONTEXT_JSON=json.dumps({"stage": "qa", "model_dir": str(fake_model_dir)}),
        CDK_OUTDIR=str(tmp_path),
    )
    result = subprocess.run(
        [sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "context 'stage'" in result.stderr


def test_the_refund_ladder_is_a_deployment_setting_checked_at_synth(fake_model_dir, tmp_path):
    ladder = '{"ladder": {"high": "open_box_pickup"}, "return_window_days": 14}'
    config = load({"model_dir": str(fake_model_dir), "return_policy": ladder}, {})
    assert json.loads(config.return_policy_json) == {
        "ladder": {"high": "open_box_pickup"},
        "return_window_days": 14,
    }
    with pytest.raises(ConfigError, match="'return_policy'.*more lenient"):
        load(
            {
                "model_dir": str(fake_model_dir),
                "return_policy": {"ladder": {"medium": "instant_refund", "low": "manual_review"}},
            },
            {},
        )
    with pytest.raises(ConfigError, match="'return_policy'.*deny_refund comes from hard rules only"):
        load({"model_dir": str(fake_model_dir), "return_policy": {"ladder": {"high": "deny_refund"}}}, {})
    # the return model the archive carries: its thresholds are what the overrides are checked against
    with_return_model(fake_model_dir, tmp_path)
    config = load({"model_dir": str(tmp_path)}, {})
    assert json.loads(config.model.serving_config_json)["return"] == {
        "model_version": "r1",
        "thresholds": {"medium": 0.2, "high": 0.4, "critical": 0.7},
    }
    with pytest.raises(ConfigError, match="'return_policy'.*medium <= high <= critical"):
        load({"model_dir": str(tmp_path), "return_policy": {"high": 0.8}}, {})
    (tmp_path / "return" / "config.json").write_text(json.dumps({"model_version": "r1"}))
    with pytest.raises(ConfigError, match="'model_dir'.*return/config.json"):
        load({"model_dir": str(tmp_path)}, {})


def test_the_payment_model_in_the_archive_reaches_rg_model_config(fake_model_dir, tmp_path):
    for name in ("model.tar.gz", "sourcedir.tar.gz", "config.json", "fallback_model.json"):
        (tmp_path / name).write_bytes((fake_model_dir / name).read_bytes())
    assert "payment" not in json.loads(load({"model_dir": str(tmp_path)}, {}).model.serving_config_json)
    (tmp_path / "payment").mkdir()
    lane = {
        "model_version": "p1",
        "thresholds": {"decision": 0.4, "medium": 0.2, "high": 0.4, "critical": 0.7},
    }
    (tmp_path / "payment" / "config.json").write_text(json.dumps(lane))
    config = load({"model_dir": str(tmp_path)}, {})
    assert json.loads(config.model.serving_config_json)["payment"] == lane
    (tmp_path / "payment" / "config.json").write_text(
        json.dumps({"model_version": "p1", "thresholds": {"medium": 0.5, "high": 0.4, "critical": 0.7}})
    )
    with pytest.raises(ConfigError, match="'model_dir'.*payment/config.json"):
        load({"model_dir": str(tmp_path)}, {})


def test_variant_settings_reach_the_score_function_and_bad_ones_name_their_key(fake_model_dir):
    config = load({"model_dir": str(fake_model_dir)}, {})
    assert config.variant_environment == {
        "RG_VARIANT_MODE": "off",
        "RG_CHALLENGER_SHARE": "0.0",
        "RG_VARIANT_SALT": "returnguard-dev",  # the prefix: each deployment splits its customers its own way
    }
    ab = load({"model_dir": str(fake_model_dir), "variant_mode": "ab", "challenger_share": "0.1"}, {})
    assert ab.variant_environment["RG_VARIANT_MODE"] == "ab"
    assert ab.variant_environment["RG_CHALLENGER_SHARE"] == "0.1"
    for bad in (
        {"variant_mode": "canary"},
        {"variant_mode": "ab"},  # no share
        {"variant_mode": "ab", "challenger_share": "0.8"},
        {"variant_mode": "ab", "challenger_share": "a tenth"},
    ):
        with pytest.raises(ConfigError, match="variant_mode"):
            load({"model_dir": str(fake_model_dir), **bad}, {})


def test_the_return_fallback_in_the_archive_ships_inside_the_score_function(fake_model_dir, tmp_path):
    with_return_model(fake_model_dir, tmp_path)
    # no return fallback: the function carries the order lane's only
    config = load({"model_dir": str(tmp_path)}, {})
    assert set(config.model.fallback_files) == {"fallback_model.json"}
    # `make model` packed one: the function carries it under the name the handler looks for
    from tests.unit.returns.requests import return_fallback

    (tmp_path / "return" / "fallback_model.json").write_text(json.dumps(return_fallback()))
    config = load({"model_dir": str(tmp_path)}, {})
    assert config.model.fallback_files["return_fallback_model.json"] == (
        tmp_path / "return" / "fallback_model.json"
    )
    # one whose thresholds do not order fails the synth, not the first degraded return
    broken = return_fallback() | {"thresholds": {"medium": 0.9, "high": 0.4, "critical": 0.7}}
    (tmp_path / "return" / "fallback_model.json").write_text(json.dumps(broken))
    with pytest.raises(ConfigError, match="'model_dir'.*medium <= high <= critical"):
        load({"model_dir": str(tmp_path)}, {})
