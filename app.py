"""CDK app: parse the stage configuration once, build every ReturnGuard stack, synthesize (offline)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from local.prerequisites import node_notice

_NODE = node_notice()  # before the CDK starts jsii: one line instead of its raw end-of-life banner
if _NODE:
    print(_NODE, file=sys.stderr)

from aws_cdk import App  # noqa: E402

from stacks import config as stage_config  # noqa: E402
from stacks.wiring import build  # noqa: E402


def main() -> None:
    # `python app.py` (make synth) gets cdk.json's context and cdk.out/ like the CDK CLI would.
    cdk_json = json.loads((Path(__file__).parent / "cdk.json").read_text())
    app = App(context=cdk_json.get("context", {}), outdir=os.environ.get("CDK_OUTDIR") or "cdk.out")
    try:
        config = stage_config.load(_NodeContext(app), dict(os.environ))
    except stage_config.ConfigError as error:
        sys.exit(f"returnguard: invalid configuration: {error}")
    build(app, config)
    app.synth()


class _NodeContext:
    """The app's context (cdk.json, `-c`) read key by key, as `stacks.config.load` asks for it."""

    def __init__(self, app: App) -> None:
        self.app = app

    def get(self, key: str) -> Any:
        return self.app.node.try_get_context(key)


if __name__ == "__main__":
    main()
