"""`app.py` run outside make (as `npx aws-cdk@2` runs it): Node is checked in one line, before jsii
prints its raw multi-line end-of-life banner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from local.prerequisites import check_node

ROOT = Path(__file__).resolve().parents[2]


def test_app_says_one_line_about_node_and_no_jsii_banner(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"}
    env.update(CDK_CONTEXT_JSON=json.dumps({"stage": "qa"}), CDK_OUTDIR=str(tmp_path))  # fails fast
    done = subprocess.run(
        [sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    lines = done.stderr.strip().splitlines()
    assert "!!!" not in done.stderr and "b'" not in done.stderr, done.stderr
    node = check_node()
    expected = [] if node.ok else [node.line]
    assert lines == [
        *expected,
        "returnguard: invalid configuration: context 'stage' must be one of dev, prod, got 'qa'",
    ]
