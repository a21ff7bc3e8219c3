"""`make model`'s packaging carries the payment lane in the one archive, and its config beside it."""

from __future__ import annotations

import json
import tarfile

from training import bootstrap


def test_the_payment_lane_rides_in_the_archive(tmp_path) -> None:
    model = tmp_path / "model"
    (model / "payment").mkdir(parents=True)
    for name in (
        "xgboost-model.ubj",
        "config.json",
        "metrics.json",
        bootstrap.FALLBACK_FILE,
        bootstrap.BASELINE_FILE,
    ):
        (model / name).write_text("{}")
    lane = {"model_version": "p1", "thresholds": {"medium": 0.2, "high": 0.4, "critical": 0.7}}
    (model / "payment" / "config.json").write_text(json.dumps(lane))
    (model / "payment" / "xgboost-model.ubj").write_text("{}")
    (model / "payment" / "report.html").write_text("<html>")  # not a model file: stays out
    model_tar, _ = bootstrap.package(model, tmp_path / "out")
    with tarfile.open(model_tar) as archive:
        names = set(archive.getnames())
    assert {
        "payment/config.json",
        "payment/xgboost-model.ubj",
    } <= names and "payment/report.html" not in names
    assert json.loads((tmp_path / "out" / "payment" / "config.json").read_text()) == lane
