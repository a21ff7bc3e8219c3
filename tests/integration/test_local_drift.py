"""`python -m local.drift`: the drift job on the demo's saved decisions, without any server."""

from __future__ import annotations

import json
import random
from pathlib import Path

from local import drift
from returnguard.drift import BASELINE_FILE, build_baseline


def work_dir(tmp_path: Path, shift: float) -> Path:
    rng = random.Random(4)
    reference = [rng.gauss(100, 10) for _ in range(2000)]
    scores = [rng.betavariate(2, 8) for _ in range(2000)]
    baseline = build_baseline("v-demo", {"order_amount": reference}, scores, window={})
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / BASELINE_FILE).write_text(json.dumps(baseline.as_dict()))
    live = [{"order_amount": rng.gauss(100 + shift, 10), "score": rng.betavariate(2, 8)} for _ in range(400)]
    (tmp_path / drift.DECISIONS_FILE).write_text("".join(json.dumps(r) + "\n" for r in live))
    return tmp_path


def test_command_reports_into_the_local_lake_and_exits_2_on_drift_if_asked(tmp_path: Path, capsys) -> None:
    work = str(work_dir(tmp_path, shift=15))
    assert drift.main(["--work", work]) == 0
    assert drift.main(["--work", work, "--fail-on-drift"]) == 2
    out = capsys.readouterr().out
    assert "drift of 400 decisions against model v-demo's training window: drifted" in out
    (report,) = (tmp_path / "lake" / "processed" / "drift").glob("dt=*/report-v-demo.json")
    assert json.loads(report.read_text())["drifted_features"] == ["order_amount"]


def test_command_on_undrifted_decisions_exits_0(tmp_path: Path, capsys) -> None:
    assert drift.main(["--work", str(work_dir(tmp_path, shift=0)), "--fail-on-drift"]) == 0
    assert ": stable" in capsys.readouterr().out


def test_command_without_a_demo_says_what_to_run(tmp_path: Path, capsys) -> None:
    assert drift.main(["--work", str(tmp_path)]) == 1
    assert "run `make demo` first" in capsys.readouterr().err
