"""The champion / challenger comparison report from recorded decisions and matured labels.

    .venv/bin/python -m local.compare --decisions DIR --labels DIR [--as-of ISO] [--out FILE]
    .venv/bin/python -m local.compare --decisions-table NAME [--endpoint-url URL] --labels DIR ...

`--decisions`: the decisions archive (Parquet, the columns of returnguard/archive.py, e.g. a copy of
`s3://<lake>/processed/predictions/decisions/`) or a JSON-lines file of the same columns;
`--decisions-table`: the live decisions table (a Scan), read as the same columns. A label matures after
51 days and the archive only receives a decision at its 90-day TTL, so a report on the archive alone
waits 90 days for its first labelled decision; give both to count every decision (one seen in both, a
removal racing the Scan, counts once). `--labels`: the lake's `raw/labels/` (order_id, is_abuse,
labeled_at). A decision counts with the label training would use at `--as-of`
(returnguard.comparison.matured_label); younger ones count for alert rate and action mix.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from returnguard.comparison import Comparison, compare, matured_label, record_from_archive


def _rows(path: Path) -> list[dict[str, Any]]:
    if path.is_file() and path.suffix in (".jsonl", ".json"):
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    import pandas as pd

    return pd.read_parquet(path).to_dict("records")  # type: ignore[return-value]


def _ms(value: Any) -> int:
    if hasattr(value, "timestamp"):
        return int(value.timestamp() * 1000)
    return int(datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp() * 1000)


def merged(*sources: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The decisions of every source, each decision once (by decision_id; the first source's row wins)."""
    seen: set[str] = set()
    rows = []
    for source in sources:
        for row in source:
            if str(row["decision_id"]) not in seen:
                seen.add(str(row["decision_id"]))
                rows.append(row)
    return rows


def report(
    decisions: Path | None,
    labels: Path,
    as_of: datetime,
    resamples: int = 500,
    seed: int = 0,
    live: Sequence[Mapping[str, Any]] = (),
) -> Comparison:
    """The comparison over the archive at `decisions` (if given) and the `live` decisions' rows."""
    known = {str(r["order_id"]): (int(r["is_abuse"]), _ms(r["labeled_at"])) for r in _rows(labels)}
    as_of_ms = int(as_of.timestamp() * 1000)
    records = [
        record_from_archive(
            row, matured_label(_ms(row["created_at"]), known.get(str(row["order_id"])), as_of_ms)
        )
        for row in merged(_rows(decisions) if decisions else [], live)
    ]
    return compare(records, resamples=resamples, seed=seed)


def live_rows(table: str, endpoint_url: str | None, region: str) -> list[dict[str, Any]]:
    import boto3

    from returnguard.aws.archive import live_decisions

    options = {"region_name": region, **({"endpoint_url": endpoint_url} if endpoint_url else {})}
    return live_decisions(boto3.client("dynamodb", **options), table)


def lines(comparison: Comparison) -> list[str]:
    out = [f"{comparison.design} comparison: recommendation {comparison.recommendation.upper()}"]
    for name, stats in comparison.variants.items():
        auc = stats.roc_auc.as_dict() if stats.roc_auc else None
        pr = stats.pr_auc.as_dict() if stats.pr_auc else None
        out.append(
            f"  {name:<10} decisions {stats.decisions:>6}  labeled {stats.labeled:>6} ({stats.positives} abusive)  "
            f"ROC-AUC {auc['value'] if auc else 'n/a'} [{auc['low'] if auc else ''}, {auc['high'] if auc else ''}]  "
            f"PR-AUC {pr['value'] if pr else 'n/a'} [{pr['low'] if pr else ''}, {pr['high'] if pr else ''}]  "
            f"alert rate {stats.alert_rate.value:.3f}"
        )
    out += [f"  - {reason}" for reason in comparison.reasons]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=Path, help="the decisions archive (Parquet) or a JSON-lines file")
    parser.add_argument("--decisions-table", help="the live decisions table (read with a Scan)")
    parser.add_argument("--endpoint-url", help="DynamoDB's endpoint (the local stack's moto server)")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--labels", required=True, type=Path)
    parser.add_argument("--as-of", default="", help="ISO time the labels are judged at (default: now)")
    parser.add_argument("--resamples", type=int, default=500, help="bootstrap resamples (default 500)")
    parser.add_argument("--out", type=Path, help="also write the report as JSON here")
    args = parser.parse_args(argv)
    if not args.decisions and not args.decisions_table:
        parser.error("give --decisions (the archive), --decisions-table (the live decisions) or both")
    for path in (args.decisions, args.labels):
        if path and not path.exists():
            parser.error(f"{path} does not exist")
    as_of = (
        datetime.fromisoformat(args.as_of.replace("Z", "+00:00"))
        if args.as_of
        else datetime.now(timezone.utc)
    )
    live = live_rows(args.decisions_table, args.endpoint_url, args.region) if args.decisions_table else []
    comparison = report(args.decisions, args.labels, as_of, args.resamples, live=live)
    print("\n".join(lines(comparison)))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(comparison.as_dict(), indent=2) + "\n")
        print(f"report: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
