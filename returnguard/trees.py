"""An XGBoost tree ensemble in pure Python: its score and exact TreeSHAP contributions without numpy or
xgboost, so a small Lambda can score and explain with the model file alone.

Reads the model as XGBoost saves it (`xgboost-model.ubj`, UBJSON, or the `.json` form) for
`binary:logistic` models with numeric splits. `contributions` follows XGBoost's `pred_contribs`: one
value per feature plus the bias (base margin + each tree's cover-weighted mean) last; their sum is the
margin and the score is its sigmoid. Features and split values compare as 32-bit floats, as in XGBoost;
a missing value (NaN or None) takes the node's default branch.
"""

from __future__ import annotations

import json
import math
import struct
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


class ModelFormatError(ValueError):
    """A model file this module cannot evaluate (another objective, categorical splits, bad bytes)."""


def float32(values: Sequence[float | None]) -> list[float]:
    """Each value rounded to a 32-bit float (None → NaN), as XGBoost stores features and splits."""
    return list(array("f", [math.nan if v is None else float(v) for v in values]))


@dataclass(frozen=True)
class Tree:
    left: list[int]
    right: list[int]
    feature: list[int]
    split: list[float]  # the split value; a leaf's value on leaves
    default_left: list[bool]
    cover: list[float]  # sum of hessians: what TreeSHAP weighs unreached branches by
    mean: list[float]  # each node's cover-weighted mean leaf value

    @classmethod
    def from_xgboost(cls, tree: dict[str, Any]) -> Tree:
        if any(tree.get("split_type", [])) or tree.get("categories"):
            raise ModelFormatError("categorical splits are not supported")
        left, right = list(tree["left_children"]), list(tree["right_children"])
        split = float32(tree["split_conditions"])
        cover = [float(c) for c in tree["sum_hessian"]]
        mean = [0.0] * len(left)
        for node in reversed(range(len(left))):  # children always have larger ids than their parent
            if left[node] == -1:
                mean[node] = split[node]
            else:
                a, b = left[node], right[node]
                mean[node] = (mean[a] * cover[a] + mean[b] * cover[b]) / cover[node]
        return cls(
            left=left,
            right=right,
            feature=list(tree["split_indices"]),
            split=split,
            default_left=[bool(d) for d in tree["default_left"]],
            cover=cover,
            mean=mean,
        )

    def _next(self, node: int, row: Sequence[float]) -> int:
        value = row[self.feature[node]]
        if value != value:  # NaN: missing
            return self.left[node] if self.default_left[node] else self.right[node]
        return self.left[node] if value < self.split[node] else self.right[node]

    def leaf_value(self, row: Sequence[float]) -> float:
        node = 0
        while self.left[node] != -1:
            node = self._next(node, row)
        return self.split[node]

    def shap(self, row: Sequence[float], phi: list[float]) -> None:
        """Adds this tree's exact TreeSHAP values (Lundberg et al., algorithm 2) for `row` into `phi`."""
        # The path of unique features from the root: feature, zero fraction, one fraction, weight.
        features: list[int] = []
        zeros: list[float] = []
        ones: list[float] = []
        weights: list[float] = []

        def extend(depth: int, zero: float, one: float, feature: int) -> None:
            features.append(feature)
            zeros.append(zero)
            ones.append(one)
            weights.append(1.0 if depth == 0 else 0.0)
            for i in range(depth - 1, -1, -1):
                weights[i + 1] += one * weights[i] * (i + 1) / (depth + 1)
                weights[i] = zero * weights[i] * (depth - i) / (depth + 1)

        def unwind(depth: int, index: int) -> None:
            one, zero = ones[index], zeros[index]
            next_one = weights[depth]
            for i in range(depth - 1, -1, -1):
                if one != 0:
                    previous = weights[i]
                    weights[i] = next_one * (depth + 1) / ((i + 1) * one)
                    next_one = previous - weights[i] * zero * (depth - i) / (depth + 1)
                else:
                    weights[i] = weights[i] * (depth + 1) / (zero * (depth - i))
            for column in (features, zeros, ones):
                del column[index]
            del weights[depth]

        def unwound_sum(depth: int, index: int) -> float:
            one, zero = ones[index], zeros[index]
            next_one = weights[depth]
            total = 0.0
            for i in range(depth - 1, -1, -1):
                if one != 0:
                    portion = next_one * (depth + 1) / ((i + 1) * one)
                    total += portion
                    next_one = weights[i] - portion * zero * (depth - i) / (depth + 1)
                elif zero != 0:
                    total += weights[i] / zero / ((depth - i) / (depth + 1))
            return total

        def recurse(node: int, depth: int, zero: float, one: float, feature: int) -> None:
            saved = (features[:], zeros[:], ones[:], weights[:])
            extend(depth, zero, one, feature)
            if self.left[node] == -1:
                value = self.split[node]
                for i in range(1, depth + 1):
                    phi[features[i]] += unwound_sum(depth, i) * (ones[i] - zeros[i]) * value
            else:
                split_feature = self.feature[node]
                hot = self._next(node, row)
                cold = self.right[node] if hot == self.left[node] else self.left[node]
                incoming_zero, incoming_one = 1.0, 1.0
                if split_feature in features[1:]:
                    index = features.index(split_feature, 1)
                    incoming_zero, incoming_one = zeros[index], ones[index]
                    unwind(depth, index)
                    depth -= 1
                cover = self.cover[node]
                recurse(hot, depth + 1, self.cover[hot] / cover * incoming_zero, incoming_one, split_feature)
                recurse(cold, depth + 1, self.cover[cold] / cover * incoming_zero, 0.0, split_feature)
            features[:], zeros[:], ones[:], weights[:] = saved

        recurse(0, 0, 1.0, 1.0, -1)


@dataclass(frozen=True)
class TreeEnsemble:
    trees: tuple[Tree, ...]
    base_margin: float
    feature_names: tuple[str, ...]

    @classmethod
    def from_document(cls, document: dict[str, Any], feature_names: Sequence[str]) -> TreeEnsemble:
        learner = document["learner"]
        objective = learner["objective"]["name"]
        if objective != "binary:logistic":
            raise ModelFormatError(f"objective {objective!r}: only binary:logistic models are supported")
        booster = learner["gradient_booster"]
        if booster.get("name") != "gbtree":
            raise ModelFormatError(f"booster {booster.get('name')!r}: only gbtree is supported")
        base_score = float(learner["learner_model_param"]["base_score"])
        trees = tuple(Tree.from_xgboost(t) for t in booster["model"]["trees"])
        count = int(learner["learner_model_param"]["num_feature"])
        if count != len(feature_names):
            raise ModelFormatError(f"the model has {count} features, its config names {len(feature_names)}")
        return cls(trees, math.log(base_score / (1 - base_score)), tuple(feature_names))

    @classmethod
    def load(cls, model: bytes, feature_names: Sequence[str]) -> TreeEnsemble:
        """From the bytes of `xgboost-model.ubj` (UBJSON) or an XGBoost `.json` model."""
        text = model.lstrip()[:1]
        document = json.loads(model) if text == b"{" and model[1:2] in (b'"', b" ", b"\n") else ubjson(model)
        return cls.from_document(document, feature_names)

    def margin(self, row: Sequence[float]) -> float:
        return self.base_margin + sum(tree.leaf_value(row) for tree in self.trees)

    def score(self, row: Sequence[float]) -> float:
        """The probability for one row already in model order and rounded (`float32`)."""
        return 1.0 / (1.0 + math.exp(-self.margin(row)))

    def contributions(self, row: Sequence[float]) -> list[float]:
        """One exact TreeSHAP value per feature, then the bias; they sum to the margin."""
        phi = [0.0] * (len(self.feature_names) + 1)
        for tree in self.trees:
            tree.shap(row, phi)
            phi[-1] += tree.mean[0]
        phi[-1] += self.base_margin
        return phi


# --- UBJSON, as XGBoost writes it (https://ubjson.org: typed, counted containers) ------------------------

_NUMBERS = {b"i": ">b", b"U": ">B", b"I": ">h", b"l": ">i", b"L": ">q", b"d": ">f", b"D": ">d"}


def ubjson(data: bytes) -> Any:
    """Decode one UBJSON value (the subset XGBoost writes: objects, typed arrays, numbers, strings)."""
    value, end = _value(data, 0, None)
    if data[end:].strip(b"N"):
        raise ModelFormatError("trailing bytes after the UBJSON value")
    return value


def _length(data: bytes, at: int) -> tuple[int, int]:
    number, at = _value(data, at, None)
    if not isinstance(number, int) or number < 0:
        raise ModelFormatError("bad UBJSON length")
    return number, at


def _value(data: bytes, at: int, marker: bytes | None) -> tuple[Any, int]:
    try:
        if marker is None:
            marker = data[at : at + 1]
            at += 1
            while marker == b"N":  # no-op padding
                marker, at = data[at : at + 1], at + 1
        if marker in _NUMBERS:
            code = _NUMBERS[marker]
            size = struct.calcsize(code)
            return struct.unpack(code, data[at : at + size])[0], at + size
        if marker in (b"S", b"H"):
            size, at = _length(data, at)
            text = data[at : at + size].decode("utf-8")
            return (text if marker == b"S" else float(text)), at + size
        if marker == b"C":
            return data[at : at + 1].decode("ascii"), at + 1
        if marker in (b"T", b"F"):
            return marker == b"T", at
        if marker == b"Z":
            return None, at
        if marker in (b"[", b"{"):
            return _container(data, at, marker == b"{")
    except (struct.error, UnicodeDecodeError, IndexError) as error:
        raise ModelFormatError(f"bad UBJSON at byte {at}: {error}") from None
    raise ModelFormatError(f"unknown UBJSON marker {marker!r} at byte {at - 1}")


def _container(data: bytes, at: int, is_object: bool) -> tuple[Any, int]:
    typed: bytes | None = None
    count: int | None = None
    if data[at : at + 1] == b"$":
        typed, at = data[at + 1 : at + 2], at + 2
    if data[at : at + 1] == b"#":
        count, at = _length(data, at + 1)
    if typed is not None and count is None:
        raise ModelFormatError("UBJSON typed container without a count")
    if not is_object and typed in _NUMBERS and count is not None:  # the bulk of a model: one unpack
        code = _NUMBERS[typed]
        size = struct.calcsize(code)
        values = list(struct.unpack(f">{count}{code[1]}", data[at : at + size * count]))
        return values, at + size * count
    items: list[Any] = []
    document: dict[str, Any] = {}
    index = 0
    while True:
        if count is None:
            if data[at : at + 1] == (b"}" if is_object else b"]"):
                at += 1
                break
        elif index == count:
            break
        if is_object:
            size, at = _length(data, at)
            key, at = data[at : at + size].decode("utf-8"), at + size
            document[key], at = _value(data, at, typed)
        else:
            value, at = _value(data, at, typed)
            items.append(value)
        index += 1
    return (document if is_object else items), at
