"""The one small `make demo` of the session: test_demo reads what it printed, and the docs tests run their
commands on what it left behind, as a user's build/demo after `make demo`."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO_ORDERS = 4000


@dataclass(frozen=True)
class DemoRun:
    process: subprocess.CompletedProcess[str]
    work: Path  # the demo's --work folder: lake, model, report, decisions


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """`python -m local.demo` (what `make demo` runs) at 4,000 orders with no AWS credentials at all."""
    work = tmp_path_factory.mktemp("demo")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    process = subprocess.run(
        [
            sys.executable,
            "-m",
            "local.demo",
            "--work",
            str(work),
            "--orders",
            str(DEMO_ORDERS),
            "--port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env=env,
    )
    return DemoRun(process, work)
