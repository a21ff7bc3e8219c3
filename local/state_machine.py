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


# --- tokens ---------------------------------------------------------------------------------------------

PSEUDO = {"AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"}


class Resolver:
    """Evaluates the intrinsic functions CDK leaves in a definition (Ref, Fn::ImportValue, Fn::GetAtt,
    Fn::FindInMap, Fn::Sub, Fn::Select, Fn::Split, Fn::Join) for one account and region.

    `values` answers what only a deployment knows: each key is matched as a substring of an export name
    (Fn::ImportValue) or of `<logical id>.<attribute>` (Fn::GetAtt). A token nothing matches raises, so a
    new cross-stack reference is a deliberate addition, never a silent placeholder.
    """

    def __init__(
        self, template: Mapping[str, Any], values: Mapping[str, str], account: str, region: str
    ) -> None:
        self.mappings = template.get("Mappings", {})
        self.values = values
        self.pseudo = {**PSEUDO, "AWS::AccountId": account, "AWS::Region": region}

    def __call__(self, token: Any) -> str:
        value = self.evaluate(token)
        if not isinstance(value, str):
            raise ValueError(f"token {json.dumps(token)} is not text: {value!r}")
        return json.dumps(value)[1:-1]  # inside a JSON string literal

    def _lookup(self, name: str) -> str:
        found = [value for key, value in self.values.items() if key in name]
        if len(found) != 1:
            raise KeyError(f"{len(found)} substitutions match {name!r}: add one to the resolver's values")
        return found[0]

    def evaluate(self, token: Any) -> Any:
        if isinstance(token, list):
            return [self.evaluate(item) for item in token]
        if not isinstance(token, dict):
            return token
        if len(token) != 1 or not next(iter(token)).startswith(("Ref", "Fn::")):
            return {key: self.evaluate(value) for key, value in token.items()}  # a plain object
        ((function, argument),) = token.items()
        if function == "Ref":
            return self.pseudo[argument] if argument in self.pseudo else self._lookup(argument)
        if function == "Fn::ImportValue":
            return self._lookup(self.evaluate(argument))
        if function == "Fn::GetAtt":
            return self._lookup(".".join(argument))
        if function == "Fn::FindInMap":
            name, first, second = (self.evaluate(a) for a in argument)
            return self.mappings[name][first][second]
        if function == "Fn::Sub":
            text = argument if isinstance(argument, str) else argument[0]
            for name, value in self.pseudo.items():
                text = text.replace("${" + name + "}", value)
            if "${" in text:
                raise KeyError(f"unresolved variable in Fn::Sub {text!r}")
            return text
        if function == "Fn::Select":
            index, items = argument
            return self.evaluate(items)[int(index)]
        if function == "Fn::Split":
            separator, text = argument
            return self.evaluate(text).split(separator)
        if function == "Fn::Join":
            separator, items = argument
            return separator.join(self.evaluate(items))
        raise ValueError(f"unsupported intrinsic function {function}")
