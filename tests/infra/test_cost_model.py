"""docs/cost-model.md prices what the stacks deploy: the counts and sizes it multiplies are read from the
synthesized templates, so a stack change that moves a line fails here until the doc follows."""

from __future__ import annotations

import re
from pathlib import Path

from aws_cdk.assertions import Template

COST_MODEL = (Path(__file__).resolve().parents[2] / "docs" / "cost-model.md").read_text()


def _row(section: str, service: str) -> str:
    """The table row of `service` under the heading `section`."""
    text = COST_MODEL.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    (row,) = [line for line in text.splitlines() if line.startswith(f"| {service} |")]
    return row


def _count(synth, type_: str) -> int:
    return sum(len(Template.from_stack(s).find_resources(type_)) for s in synth.stacks.all())


def test_alarm_counts_are_the_deployed_ones(dev, prod):
    # prod here has a blocklist database: its dead-letter queue alarm is the "(N + 1 with ...)" one
    prod_row = _row("Prod (≈ 33 M scores/month)", "CloudWatch")
    base, with_blocklist = map(
        int, re.search(r"(\d+) alarms × \$0\.10 \((\d+) with the blocklist", prod_row).groups()
    )
    assert (base + 1, with_blocklist) == (_count(prod, "AWS::CloudWatch::Alarm"),) * 2
    dev_row = _row("Dev (≈ 330 k scores/month)", "CloudWatch")
    assert int(re.search(r"(\d+) alarms", dev_row).group(1)) == _count(dev, "AWS::CloudWatch::Alarm")
    assert f"alarms (${_count(dev, 'AWS::CloudWatch::Alarm') / 10:.2f})" in COST_MODEL  # idle dev
    assert _count(dev, "AWS::CloudWatch::Dashboard") == _count(prod, "AWS::CloudWatch::Dashboard") == 1


def test_endpoint_stream_and_functions_are_sized_as_priced(dev, prod):
    (variant,) = next(
        iter(Template.from_stack(prod.stacks.ml).find_resources("AWS::SageMaker::EndpointConfig").values())
    )["Properties"]["ProductionVariants"]
    row = _row("Prod (≈ 33 M scores/month)", "SageMaker endpoint")
    assert f"{variant['InitialInstanceCount']} × 730 h" in row
    assert f"{variant['InitialInstanceCount']} × {variant['InstanceType']}" in COST_MODEL
    # the stream consumer: one batch per shard and second, which is what makes batches of ≈ 3 records
    (mapping,) = [
        m["Properties"]
        for m in Template.from_stack(prod.stacks.streaming)
        .find_resources("AWS::Lambda::EventSourceMapping")
        .values()
    ]
    assert (mapping["MaximumBatchingWindowInSeconds"], mapping["ParallelizationFactor"]) == (1, 1)
    assert "batching window 1 s, one batch per shard at a time" in COST_MODEL
    (stream,) = Template.from_stack(prod.stacks.streaming).find_resources("AWS::Kinesis::Stream").values()
    assert stream["Properties"]["StreamModeDetails"] == {"StreamMode": "ON_DEMAND"}
    hours = stream["Properties"]["RetentionPeriodHours"]
    assert f"prod keeps {hours} h" in _row("Prod (≈ 33 M scores/month)", "Kinesis on-demand")
    for stack, words in ((prod.stacks.api, "`score`: 512 MB"), (prod.stacks.streaming, "`stream`: 512 MB")):
        memory = {
            f["Properties"]["MemorySize"]
            for f in Template.from_stack(stack).find_resources("AWS::Lambda::Function").values()
            if f["Properties"].get("Handler") == "handler.lambda_handler"
        }
        assert memory == {int(re.search(r"(\d+) MB", words).group(1))} and words in COST_MODEL
    (serverless,) = next(
        iter(Template.from_stack(dev.stacks.ml).find_resources("AWS::SageMaker::EndpointConfig").values())
    )["Properties"]["ProductionVariants"]
    assert (
        serverless["ServerlessConfig"]["MemorySizeInMB"] == 2048 and "serverless endpoint 2 GB" in COST_MODEL
    )


def test_every_secret_the_stacks_create_is_priced(prod):
    secrets = _count(prod, "AWS::SecretsManager::Secret")
    assert secrets == 1 and "one secret (the decision-id key" in COST_MODEL
    assert "the decision-id secret ($0.40)" in COST_MODEL  # idle dev
