"""The retraining state machine as CloudFormation will run it: its definition read from a synthesized
template, with the template's tokens (Ref, Fn::ImportValue, ...) replaced by values the caller chooses."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

Token = Mapping[str, Any]


def definition_string(template: Mapping[str, Any], logical_id_prefix: str = "Retraining") -> Any:
    """The `DefinitionString` of the one state machine whose logical id starts with the prefix."""
    machines = [
        resource["Properties"]["DefinitionString"]
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::StepFunctions::StateMachine" and logical_id.startswith(logical_id_prefix)
    ]
    if len(machines) != 1:
        raise ValueError(f"expected one state machine named {logical_id_prefix}*, found {len(machines)}")
    return machines[0]


def render(definition: Any, resolve: Callable[[Token], str]) -> dict[str, Any]:
    """The ASL document: a plain string, or an `Fn::Join` of strings and tokens each `resolve`d to text."""
    if isinstance(definition, str):
        return json.loads(definition)
    if not (isinstance(definition, Mapping) and set(definition) == {"Fn::Join"}):
        raise ValueError(f"expected a string or Fn::Join, got {json.dumps(definition)[:200]}")
    separator, parts = definition["Fn::Join"]
    return json.loads(separator.join(part if isinstance(part, str) else resolve(part) for part in parts))


def placeholder(token: Token) -> str:
    """A readable stand-in for a token, for assertions on the definition's shape: pseudo parameters get
    their usual values, anything else `<the token as JSON>` (JSON-escaped so the document stays valid)."""
    pseudo = {"AWS::Partition": "aws", "AWS::Region": "us-east-1", "AWS::URLSuffix": "amazonaws.com"}
    if set(token) == {"Ref"} and token["Ref"] in pseudo:
        return pseudo[token["Ref"]]
    return json.dumps(f"<{json.dumps(token, sort_keys=True)}>")[1:-1]


def states(template: Mapping[str, Any], resolve: Callable[[Token], str] = placeholder) -> dict[str, Any]:
    """Every state of the definition by name, including those nested in Parallel and Map states."""
    found: dict[str, Any] = {}

    def walk(document: Mapping[str, Any]) -> None:
        for name, state in document["States"].items():
            found[name] = state
            for branch in state.get("Branches", []):
                walk(branch)
            for key in ("Iterator", "ItemProcessor"):
                if key in state:
                    walk(state[key])

    walk(render(definition_string(template), resolve))
    return found
