"""The cdk-nag gate: AwsSolutions on every stack of both stages, zero unsuppressed findings."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Template


def nag_findings(synth) -> list[str]:
    """Errors and warnings cdk-nag attached, read from the cloud assembly's metadata (every stack)."""
    findings = []
    for path in sorted(synth.assembly_dir.glob("*.metadata.json")) or [synth.assembly_dir / "manifest.json"]:
        document = json.loads(path.read_text())
        entries = (
            document.get("artifacts", {}) if path.name == "manifest.json" else {"": {"metadata": document}}
        )
        for artifact in entries.values():
            for construct_path, items in (artifact.get("metadata") or {}).items():
                for item in items:
                    if item["type"] in ("aws:cdk:error", "aws:cdk:warning") and "AwsSolutions-" in str(
                        item["data"]
                    ):
                        findings.append(f"{construct_path}: {str(item['data'])[:200]}")
    return findings


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_no_unsuppressed_aws_solutions_findings(request, stage):
    synth = request.getfixturevalue(stage)
    assert nag_findings(synth) == []


def test_nag_ran_and_recorded_the_accepted_suppressions(dev):
    # cdk-nag records a suppression in the resource metadata; DDB3 is suppressed in dev only, with a reason.
    table = next(iter(Template.from_stack(dev.stacks.data).find_resources("AWS::DynamoDB::Table").values()))
    rules = table["Metadata"]["cdk_nag"]["rules_to_suppress"]
    assert any(rule["id"] == "AwsSolutions-DDB3" and "prod" in rule["reason"] for rule in rules)
