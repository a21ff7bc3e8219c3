"""CDK app: parse the stage configuration once, build every ReturnGuard stack, synthesize (offline)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from aws_cdk import App

from stacks import config as stage_config
from stacks.wiring import build


def main() -> None:
    # `python app.py` (make synth) gets cdk.json's context and cdk.out/ like the CDK CLI would.
    cdk_json = json.loads((Path(__file__).parent / "cdk.json").read_text())
    app = App(context=cdk_json.get("context", {}), outdir=os.environ.get("CDK_OUTDIR") or "cdk.out")
    context = {key: app.node.try_get_context(key) for key in _context_keys()}
    try:
        config = stage_config.load(context, dict(os.environ))
    except stage_config.ConfigError as error:
        sys.exit(f"returnguard: invalid configuration: {error}")
    build(app, config)
    app.synth()


def _context_keys() -> list[str]:
    keys = {"stage", "model_dir", "prefix", "alert_email", "bedrock_enabled", "bedrock_model_id"}
    keys |= {"bedrock_guardrail_id", "bedrock_guardrail_version", "endpoint_mode", "serverless_memory_mb"}
    keys |= {"serverless_max_concurrency", "instance_type", "instance_count", "api_rate_limit"}
    keys |= {"api_burst_limit", "api_quota_per_day", "waf", "retraining_schedule", "log_retention_days"}
    keys |= {
        "blocklist_db_endpoint",
        "blocklist_db_secret_arn",
        "blocklist_db_name",
        "blocklist_schedule_minutes",
    }
    keys |= {"vpc_id", "subnet_ids", "security_group_id"}
    return sorted(keys)


if __name__ == "__main__":
    main()
