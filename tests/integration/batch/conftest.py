"""A small labelled-CSV model (training/tabular.py) and files of its shape, shared by the batch tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from training import tabular

ROWS = 3_000


@pytest.fixture(scope="session")
def payments_model(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("payments")
    csv = root / "train.csv"
    tabular.generate(6_000, fraud_rate=0.05, seed=3).to_csv(csv, index=False)
    model_dir = root / "model"
    code = tabular.main(
        [
            "train", "--csv", str(csv), "--out", str(model_dir), "--alerts-per-1000", "40",
            "--num-round", "60", "--forest-trees", "10", "--no-report",
        ]
    )  # fmt: skip
    assert code == 0
    return model_dir


@pytest.fixture(scope="session")
def transactions(tmp_path_factory):
    """New transactions of the model's shape: the Class label dropped, an id added."""
    table = tabular.generate(ROWS, fraud_rate=0.05, seed=21).drop(columns=["Class"])
    table.insert(0, "transaction_id", [f"T{i:05d}" for i in range(len(table))])
    return table
