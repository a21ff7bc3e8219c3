"""`returnguard batch publish-model`: put a trained labelled-CSV model (training/tabular.py `train`) where
the batch pipeline reads it, the lake's models/payments/current/, after checking that it loads the way
the batch function loads it (returnguard.trees, no XGBoost). A folder that would fail every upload's
Convert step is refused, naming what is wrong, and nothing is written.

The lake is `--bucket`, or the `LakeBucket` output of the stage's Data stack (`--stage`). The model
file goes first and config.json last: a run that starts between the two reads the new model with the
old config, which has the same features when only the model was retrained (a new feature list takes
effect for files uploaded after the command returns).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO

from batch.engine import CONFIG_FILE, MODEL_FILE, Model
from returnguard.aws import stage_outputs
from returnguard.batch import MODEL_PREFIX


class NotAModel(ValueError):
    """The folder is not a model the batch pipeline can score with."""


def checked_files(model_dir: Path) -> tuple[dict[str, bytes], str]:
    """(config.json and xgboost-model.ubj, the model's version), once they load as the batch function
    will load them."""
    missing = [name for name in (CONFIG_FILE, MODEL_FILE) if not (model_dir / name).is_file()]
    if missing:
        raise NotAModel(f"{model_dir} lacks {', '.join(missing)} (training/tabular.py train writes both)")
    files = {name: (model_dir / name).read_bytes() for name in (CONFIG_FILE, MODEL_FILE)}
    try:
        model = Model.load(files, scorer="trees")
        model.threshold  # noqa: B018 (every row's `flagged` needs it)
    except (ValueError, KeyError, TypeError) as error:  # JSONDecodeError is a ValueError
        raise NotAModel(f"{model_dir} does not load as a batch model: {error!r}") from None
    return files, model.version


def publish(s3: Any, bucket: str, files: dict[str, bytes]) -> list[str]:
    """Write the checked files under models/payments/current/ (config.json last); the keys written."""
    keys = []
    for name in (MODEL_FILE, CONFIG_FILE):
        key = f"{MODEL_PREFIX}{name}"
        s3.put_object(Bucket=bucket, Key=key, Body=files[name], ContentType="application/octet-stream")
        keys.append(key)
    return keys


def lake_bucket(cloudformation: Any, stage: str) -> str:
    """The `LakeBucket` output of ReturnGuard-<stage>-Data."""
    found = stage_outputs.lake_bucket(cloudformation, stage)
    if found is None:
        stack = stage_outputs.data_stack(stage)
        raise NotAModel(f"{stack} has no LakeBucket output: is it deployed from this version?")
    return found


def publish_model(args: argparse.Namespace, out: TextIO) -> int:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        files, version = checked_files(args.model_dir)
        session = boto3.session.Session(region_name=args.region)
        extra = {"endpoint_url": args.endpoint_url} if args.endpoint_url else {}
        bucket = args.bucket or lake_bucket(session.client("cloudformation", **extra), args.stage)
        keys = publish(session.client("s3", **extra), bucket, files)
    except NotAModel as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (BotoCoreError, ClientError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"model {version} published: {', '.join(f's3://{bucket}/{k}' for k in keys)}", file=out)
    return 0
