"""The figures and sample output the docs quote are one recorded `make demo` run of the current code."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from local import docs_numbers
from local.demo import DEFAULT_ORDERS, DEFAULT_SEED

RECORD = json.loads(docs_numbers.RECORD.read_text())


def test_docs_quote_the_recorded_run() -> None:
    assert docs_numbers.stale(RECORD) == []
    readme, model = (docs_numbers.regions(path.read_text()) for path in docs_numbers.DOCS)
    assert set(readme) == {"demo-sample", "model-table"}
    assert set(model) == {"model-run"}


def test_the_record_is_the_default_demo_of_the_current_code() -> None:
    assert (RECORD["orders"], RECORD["seed"]) == (DEFAULT_ORDERS, DEFAULT_SEED)
    assert RECORD["code"] == docs_numbers.code_key(), (
        "the model or the decisions changed since the docs' run: `make demo && make docs-numbers`"
    )


def test_a_hand_edited_figure_is_found_and_rendering_touches_only_the_regions(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    table = docs_numbers.model_table(RECORD)
    doc.write_text(
        "Intro 0.999 stays.\n"
        f"{docs_numbers.START.format(name='model-table')}\n{table}\n{docs_numbers.END.format(name='model-table')}\n"
        "Outro.\n"
    )
    docs_numbers.ROOT, saved = tmp_path, docs_numbers.ROOT
    try:
        assert docs_numbers.stale(RECORD, [doc]) == []
        xgb = RECORD["metrics"]["models"]["xgboost"]["roc_auc"]
        doc.write_text(doc.read_text().replace(f"| {xgb:.3f} |", "| 0.990 |", 1))
        assert docs_numbers.stale(RECORD, [doc]) == ["doc.md: model-table"]

        other = copy.deepcopy(RECORD)
        other["metrics"]["models"]["xgboost"]["roc_auc"] = 0.5
        rendered = docs_numbers.render(doc.read_text(), other)
        assert "| 0.500 |" in rendered and "| 0.990 |" not in rendered
        assert rendered.startswith("Intro 0.999 stays.\n") and rendered.endswith("Outro.\n")
    finally:
        docs_numbers.ROOT = saved
    with pytest.raises(KeyError, match="unknown generated region 'nope'"):
        docs_numbers.render(
            f"{docs_numbers.START.format(name='nope')}\nx\n{docs_numbers.END.format(name='nope')}", RECORD
        )


def test_the_sample_rows_are_printed_rows_one_per_band() -> None:
    sample = docs_numbers.demo_sample(RECORD)
    header, *picked = [line for line in sample.splitlines() if line in RECORD["scored"]]
    assert header == RECORD["scored"][0]
    levels = [next(w for w in row.split() if w in ("low", "medium", "high", "critical")) for row in picked]
    assert levels[0] in ("high", "critical") and levels[1:] == ["medium", "low"]
    for line in RECORD["stream"]:
        assert line in sample.splitlines()
