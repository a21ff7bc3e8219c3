"""SnapStart on the score function as a stage setting, behind a published version and alias."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Template

from stacks import config as stage_config

SNAPSTART_RUNTIMES = ("python3.12", "python3.13")  # Lambda SnapStart supports Python 3.12 and later


def score_resources(synth) -> tuple[str, dict, dict]:
    api = Template.from_stack(synth.stacks.api).to_json()["Resources"]
    ((function_id, function),) = [
        (k, r)
        for k, r in api.items()
        if r["Type"] == "AWS::Lambda::Function" and "RG_ENDPOINT_NAME" in json.dumps(r["Properties"])
    ]
    return function_id, function, api


@pytest.mark.parametrize(("stage", "snapstart"), [("dev", False), ("prod", True)])
def test_snapstart_follows_the_stage_setting(request, stage, snapstart):
    _, function, _ = score_resources(request.getfixturevalue(stage))
    props = function["Properties"]
    assert props["Runtime"] in SNAPSTART_RUNTIMES
    if snapstart:
        assert props["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    else:
        assert "SnapStart" not in props


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_api_gateway_calls_the_live_alias_of_a_published_version(request, stage):
    function_id, _, api = score_resources(request.getfixturevalue(stage))
    (version_id,) = [
        k
        for k, r in api.items()
        if r["Type"] == "AWS::Lambda::Version" and r["Properties"]["FunctionName"] == {"Ref": function_id}
    ]
    # replaced versions are deleted, so no SnapStart cache keeps billing for them
    assert api[version_id]["DeletionPolicy"] == "Delete"
    ((alias_id, alias),) = [(k, r) for k, r in api.items() if r["Type"] == "AWS::Lambda::Alias"]
    assert alias["Properties"]["Name"] == "live"
    assert alias["Properties"]["FunctionVersion"] == {"Fn::GetAtt": [version_id, "Version"]}
    methods = [r["Properties"] for r in api.values() if r["Type"] == "AWS::ApiGateway::Method"]
    uris = [
        json.dumps(m["Integration"]["Uri"])
        for m in methods
        if m.get("Integration", {}).get("Type") == "AWS_PROXY"
    ]
    assert len(uris) == 6  # POST risk-score, GET decision, GET health, and ANY on each (405)
    assert all(f'{{"Ref": "{alias_id}"}}' in uri for uri in uris)
    assert not any(f'"{function_id}"' in uri for uri in uris)  # never $LATEST
    permissions = [r["Properties"] for r in api.values() if r["Type"] == "AWS::Lambda::Permission"]
    assert permissions and all(p["FunctionName"] == {"Ref": alias_id} for p in permissions)


def test_snapstart_setting_is_read_per_stage_and_overridable(fake_model_dir):
    base = {"model_dir": str(fake_model_dir)}
    assert stage_config.load({**base, "stage": "dev"}, {}).score_snapstart is False
    assert stage_config.load({**base, "stage": "prod"}, {}).score_snapstart is True
    assert stage_config.load({**base, "stage": "dev", "score_snapstart": "true"}, {}).score_snapstart is True
    with pytest.raises(stage_config.ConfigError, match="score_snapstart"):
        stage_config.load({**base, "stage": "prod", "score_snapstart": "maybe"}, {})
