"""The drift job locally: the decisions the demo made against the demo model's training window.

    .venv/bin/python -m local.drift --work build/demo

The demo (step 7) saves the feature vector and score of every model-scored decision it made to
`<work>/decisions.jsonl` (read from the local audit table with the same code the AWS job uses on a
serverless stage); this command compares them with `<work>/model/drift_baseline.json` and writes the
report where the AWS job writes it, `<work>/lake/processed/drift/dt=<day>/report-<model version>.json`.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from returnguard.aws import drift_job
from returnguard.drift import BASELINE_FILE, DRIFTED, DriftBaseline, DriftError, DriftReport, drift_report

DECISIONS_FILE = "decisions.jsonl"


def export_decisions(aws: Any, work: Path) -> int:
    """The local audit table's model-scored decisions of the last day -> `<work>/decisions.jsonl`."""
    now = datetime.now(timezone.utc)
    rows = drift_job.audit_rows(
        aws.client("dynamodb"), aws.table_names["audit"], now - timedelta(days=1), now
    )
    (work / DECISIONS_FILE).write_text("".join(json.dumps(row) + "\n" for row in rows))
    return len(rows)


def run(work: Path, drifted: float = DRIFTED) -> tuple[DriftReport, Path]:
    baseline_path = work / "model" / BASELINE_FILE
    decisions_path = work / DECISIONS_FILE
    for path, what in (
        (baseline_path, "the model's drift baseline"),
        (decisions_path, "the demo's decisions"),
    ):
        if not path.is_file():
            raise DriftError(f"{path} ({what}) is missing: run `make demo` first")
    baseline = DriftBaseline.from_dict(json.loads(baseline_path.read_text()))
    rows = [json.loads(line) for line in decisions_path.read_text().splitlines() if line.strip()]
    now = datetime.now(timezone.utc)
    report = drift_report(
        baseline, rows, window={"source": str(decisions_path), "to": now.isoformat()}, drifted=drifted
    )
    target = work / "lake" / drift_job.report_key(report, now)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(report.as_dict(), indent=2) + "\n")
    return report, target


def summary(report: DriftReport, top: int = 5) -> list[str]:
    score = "n/a" if report.score_psi is None else f"{report.score_psi:.3f}"
    lines = [
        f"drift of {report.live_rows} decisions against model {report.model_version}'s training window: "
        f"{report.status} (score PSI {score}, worst feature PSI {report.max_feature_psi:.3f}, "
        f"drifted at {report.drifted_threshold:g})"
    ]
    ranked = sorted(report.features.items(), key=lambda item: -item[1])[:top]
    lines += [f"  {name:<40} PSI {value:.3f}" for name, value in ranked]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.drift", description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default="build/demo", help="the demo's folder (default: build/demo)")
    parser.add_argument("--threshold", type=float, default=DRIFTED, help="PSI counted as drifted (0.25)")
    parser.add_argument("--fail-on-drift", action="store_true", help="exit 2 when the report says drifted")
    args = parser.parse_args(argv)
    try:
        report, path = run(Path(args.work), args.threshold)
    except DriftError as error:
        print(f"drift: {error}", file=sys.stderr)
        return 1
    print("\n".join(summary(report)))
    print(f"report: {path}")
    return 2 if args.fail_on_drift and report.status == "drifted" else 0


if __name__ == "__main__":
    sys.exit(main())
