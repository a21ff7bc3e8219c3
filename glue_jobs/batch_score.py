"""Glue job: validate, convert and score one large uploaded transactions file (the batch state machine's
route for files over the Lambda's size). The same steps as the Lambda (batch/steps.py `process`): one
pass over the file, XGBoost scoring on the job's cores, the outcome written to the file's summary.json
for the state machine to read. Arguments: --lake_bucket, --flagged_table, --claims_table, --model_prefix,
--region and --file (the claim step's output as JSON, set by the state machine per run).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any

ARGUMENTS = ("lake_bucket", "flagged_table", "claims_table", "model_prefix", "region", "file")


def run_job(arguments: Mapping[str, str]) -> dict[str, Any]:
    from batch import steps
    from batch.engine import CONFIG_FILE, MODEL_FILE, Model
    from returnguard.aws.batch import bounded_store

    store = bounded_store(
        bucket=arguments["--lake_bucket"],
        flagged_table=arguments["--flagged_table"],
        claims_table=arguments["--claims_table"],
        region=arguments["--region"],
    )
    model = Model.load(store.model_files(arguments["--model_prefix"], (CONFIG_FILE, MODEL_FILE)), "auto")
    return steps.process(store, json.loads(arguments["--file"]), model, arguments["--region"])


if __name__ == "__main__":  # in Glue
    from awsglue.utils import getResolvedOptions  # type: ignore[import-not-found]

    options = getResolvedOptions(sys.argv, list(ARGUMENTS))
    outcome = run_job({f"--{name}": options[name] for name in ARGUMENTS})
    print(json.dumps({k: v for k, v in outcome.items() if k != "alert"}))
