"""checkov over the synthesized templates of both stages: every failed check is fixed or skipped in code with
a reason (Metadata.checkov.skip, written by stacks.constructs.checkov_skip or a cdk-nag twin suppression).

checkov pins an old boto3, so it lives in its own virtualenv, build/checkov (`make checkov`; `make test`
builds it first). Without it this test fails, naming the command; it never skips.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECKOV = ROOT / "build" / "checkov" / "bin" / "checkov"


def run_checkov(assembly_dir: Path) -> dict:
    if not CHECKOV.is_file():
        pytest.fail(
            f"checkov is not installed at {CHECKOV}: run `make checkov` "
            "(its own virtualenv; `make test` does it first)",
            pytrace=False,
        )
    completed = subprocess.run(
        [
            str(CHECKOV),
            "--directory",
            str(assembly_dir),
            "--framework",
            "cloudformation",
            "--skip-download",  # offline: no policy download, no platform calls
            "--compact",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode in (0, 1), completed.stderr[-2000:]  # 1: failed checks, reported below
    report = json.loads(completed.stdout)
    reports = report if isinstance(report, list) else [report]
    (cloudformation,) = [r for r in reports if r.get("check_type") == "cloudformation"]
    return cloudformation


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_checkov_finds_nothing_unexplained(request, stage):
    synth = request.getfixturevalue(stage)
    report = run_checkov(synth.assembly_dir)
    summary = report["summary"]
    # It really looked: every template parsed and hundreds of checks passed.
    assert summary["parsing_errors"] == 0
    assert summary["resource_count"] > 50 and summary["passed"] > 100
    failed = [
        f"{f['check_id']} {f['resource']} ({f['file_path']}): {f['check_name']}"
        for f in report["results"]["failed_checks"]
    ]
    assert failed == []
    skipped = report["results"]["skipped_checks"]
    assert len(skipped) == summary["skipped"]
    for check in skipped:
        reason = check["check_result"].get("suppress_comment") or ""
        assert len(reason) >= 40, (check["check_id"], check["resource"])


def test_a_missing_checkov_fails_the_suite_instead_of_skipping(monkeypatch, tmp_path):
    monkeypatch.setattr(sys.modules[__name__], "CHECKOV", tmp_path / "no-such-checkov")
    with pytest.raises(pytest.fail.Exception, match="make checkov"):
        run_checkov(tmp_path)
