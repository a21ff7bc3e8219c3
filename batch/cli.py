"""`returnguard batch score FILE` (returnguard/cli.py parses the arguments)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from batch.local import LocalBatch, score_file
from batch.publish import NotAModel, checked_files


def local_aws(endpoint_url: str | None, prefix: str) -> Any:
    """A moto server started for this run, or the local stack already serving at `endpoint_url`."""
    from local import stack as local_stack
    from returnguard.tables import ALL_TABLES

    if not endpoint_url:
        return local_stack.start(prefix=prefix)
    return local_stack.LocalStack(
        endpoint_url=endpoint_url,
        table_names={t.logical_name: f"{prefix}-{t.logical_name}" for t in ALL_TABLES},
        stream_name=f"{prefix}-events",
        bucket=f"{prefix}-lake",
    )


def batch_score(args: argparse.Namespace, out: TextIO) -> int:
    if not args.file.is_file():
        print(f"error: {args.file}: no such file", file=sys.stderr)
        return 2
    if not (args.model_dir / "config.json").is_file():
        print(
            f"error: no payments model in {args.model_dir}: train one with "
            "`.venv/bin/python -m training.tabular train --csv FILE --out DIR`",
            file=sys.stderr,
        )
        return 2
    try:
        checked_files(args.model_dir)  # before starting anything: the model the steps will load
    except NotAModel as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    aws = local_aws(args.endpoint_url, args.prefix)
    try:
        local = LocalBatch.attach(aws)
        local.publish_model(args.model_dir)
        run = score_file(local, args.file, explain=args.explain)
        file, outcome = run["claim"], run["outcome"]
        if outcome is None:
            print(
                f"{args.file.name}: already processed (sha256 {file['digest'][:12]}…): no new rows, no alert",
                file=out,
            )
            return 0
        delivered = local.alerts()
        message = json.loads(outcome["alert"]["message"])
        if args.json:
            print(
                json.dumps({"claim": file, "alerts": [a["message"] for a in delivered]}, indent=2), file=out
            )
        else:
            print(f"Subject: {outcome['alert']['subject']}\n{message['email']}", file=out)
            print(f"({len(delivered)} alert published to {local.topic_arn})", file=out)
        return 0 if outcome["status"] == "scored" else 1
    finally:
        aws.stop()
