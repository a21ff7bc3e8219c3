"""The cdk-nag gate: AwsSolutions, Serverless and NIST 800-53 R5 on every stack of both stages, zero
unsuppressed findings (cdk-nag 2.x: Aspects, findings in the assembly's metadata)."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Template

PACKS = ("AwsSolutions", "Serverless", "NIST.800.53.R5")


def nag_findings(synth, pack: str = "AwsSolutions") -> list[str]:
    """Errors and warnings one cdk-nag pack attached, read from the cloud assembly's metadata."""
    findings = []
    for path in sorted(synth.assembly_dir.glob("*.metadata.json")) or [synth.assembly_dir / "manifest.json"]:
        document = json.loads(path.read_text())
        entries = (
            document.get("artifacts", {}) if path.name == "manifest.json" else {"": {"metadata": document}}
        )
        for artifact in entries.values():
            for construct_path, items in (artifact.get("metadata") or {}).items():
                for item in items:
                    if item["type"] in ("aws:cdk:error", "aws:cdk:warning") and str(item["data"]).startswith(
                        f"{pack}-"
                    ):
                        findings.append(f"{construct_path}: {str(item['data'])[:200]}")
    return findings


@pytest.mark.parametrize("pack", PACKS)
@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_no_unsuppressed_findings(request, stage, pack):
    synth = request.getfixturevalue(stage)
    assert nag_findings(synth, pack) == []


@pytest.mark.parametrize("pack", PACKS)
def test_every_pack_ran(dev, pack):
    # cdk-nag writes one report per pack and stack: a pack that is not wired in has none.
    reports = list(dev.assembly_dir.glob(f"{pack}-*-NagReport.csv"))
    assert len(reports) == len(list(dev.assembly_dir.glob("*.template.json")))


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_every_suppression_gives_a_specific_reason(request, stage):
    synth = request.getfixturevalue(stage)
    for stack in synth.stacks.all():
        for logical_id, resource in Template.from_stack(stack).to_json()["Resources"].items():
            for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", []):
                assert len(rule["reason"]) >= 40, (stack.stack_name, logical_id, rule["id"])
                assert "tested on 3.12" not in rule["reason"], (stack.stack_name, logical_id)


def test_nag_ran_and_recorded_the_accepted_suppressions(dev):
    # cdk-nag records a suppression in the resource metadata; DDB3 is suppressed in dev only, with a reason.
    table = next(iter(Template.from_stack(dev.stacks.data).find_resources("AWS::DynamoDB::Table").values()))
    rules = table["Metadata"]["cdk_nag"]["rules_to_suppress"]
    assert any(rule["id"] == "AwsSolutions-DDB3" and "prod" in rule["reason"] for rule in rules)
