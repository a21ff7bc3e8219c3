"""`make model` trains and packs the payment lane (training/payment_bootstrap.py), so the endpoint cdk
deploy ships serves a payment model and the stage config carries its thresholds."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile

from returnguard import payment_synth
from returnguard.features import PAYMENT_FEATURE_NAMES
from stacks.config import read_model_bootstrap
from tests.payment_model import PAYMENT_TEST_THRESHOLDS
from training import bootstrap, payment_bootstrap
from training.bootstrap import ROOT


def test_make_model_runs_the_payment_lane_after_the_order_model() -> None:
    for target in ("model", "build/model/model.tar.gz"):
        commands = subprocess.run(
            ["make", "-n", "-B", target],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert commands.index("training.bootstrap") < commands.index("training.payment_bootstrap"), target


def test_the_lane_is_packed_into_the_archive_the_stack_reads(tmp_path, payment_lane_model) -> None:
    # Given the order model training.bootstrap left (no payment lane) and a trained payment model
    model = tmp_path / "work" / "model"
    model.mkdir(parents=True)
    for name in (
        "xgboost-model.ubj",
        "config.json",
        "metrics.json",
        bootstrap.FALLBACK_FILE,
        bootstrap.BASELINE_FILE,
    ):
        source = payment_lane_model / name
        (model / name).write_bytes(source.read_bytes() if source.is_file() else b"{}")
    lane = tmp_path / "payment-model"  # what training/payments.py writes (the fixture's, with metrics)
    shutil.copytree(payment_lane_model / "payment", lane)
    (lane / "metrics.json").write_text(json.dumps({"models": {}}))
    # When the payment bootstrap adds it
    model_tar, _ = payment_bootstrap.add_lane(lane, model, tmp_path / "out")
    # Then the archive serves it and the stage config reads its thresholds (RG_MODEL_CONFIG's `payment`)
    with tarfile.open(model_tar) as archive:
        assert {f"payment/{name}" for name in payment_bootstrap.LANE_FILES} <= set(archive.getnames())
        packed = archive.extractfile("payment/xgboost-model.ubj")
        assert packed is not None and packed.read() == (lane / "xgboost-model.ubj").read_bytes()
    assert read_model_bootstrap(tmp_path / "out").payment_model["thresholds"] == PAYMENT_TEST_THRESHOLDS


def test_the_training_table_is_point_in_time_with_the_labels_the_lake_knows() -> None:
    config = payment_synth.PaymentSynthConfig(customers=12, days=20, seed=3)
    rows = payment_bootstrap.history_table(config)
    raw = payment_synth.generate(config)
    assert list(rows.columns) == [*PAYMENT_FEATURE_NAMES, "label", "transaction_time_ms"]
    assert len(rows) == len(raw) and rows["label"].sum() == (raw["label"] == 1).sum()
    assert set(rows["label"].unique()) <= {0, 1}
