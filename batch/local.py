"""`returnguard batch score FILE`: the batch pipeline's steps, in the state machine's order, against local
AWS (a moto server: the local stack's lake and tables, plus an alerts topic with a queue subscribed).

upload under incoming/batch/ → claim (content digest; a file seen before stops here) → route by size →
validate and convert, then score (the Lambda's two steps), or both in one pass (the Glue job's) → one
alert published to the topic → the claim marked done. The state machine CDK synthesizes runs the same
step functions; tests/integration/test_batch_state_machine.py executes that definition.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batch import steps
from batch.engine import CONFIG_FILE, MODEL_FILE, Model
from batch.publish import checked_files, publish
from returnguard.aws.batch import BatchStore
from returnguard.batch import BATCH_FAILED, FAILURE_SUBJECT, INCOMING_PREFIX, MODEL_PREFIX

REGION = "us-east-1"
SMALL_FILE_BYTES = (
    16 * 1024 * 1024
)  # the deployed default (stacks/batch.py): larger files take the Glue route
CLAIM_LEASE_S = 3 * 3600


@dataclass
class LocalBatch:
    """The pieces of local AWS the batch steps use."""

    aws: Any  # local.stack.LocalStack
    topic_arn: str
    queue_url: str

    @classmethod
    def attach(cls, aws: Any) -> LocalBatch:
        sns, sqs = aws.client("sns"), aws.client("sqs")
        topic = sns.create_topic(Name="returnguard-local-batch-alerts")["TopicArn"]  # idempotent
        queue = sqs.create_queue(QueueName="returnguard-local-batch-alerts")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        if not any(
            s["Endpoint"] == queue_arn
            for s in sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
        ):
            sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
        return cls(aws, topic, queue)

    @property
    def store(self) -> BatchStore:
        return BatchStore(
            self.aws.client("s3"),
            self.aws.client("dynamodb"),
            bucket=self.aws.bucket,
            flagged_table=self.aws.table_names["flagged"],
            claims_table=self.aws.table_names["idempotency"],
        )

    def publish_model(self, model_dir: Path) -> None:
        """As `returnguard batch publish-model` does in AWS: checked, then written (batch/publish.py)."""
        files, _ = checked_files(model_dir)
        publish(self.aws.client("s3"), self.aws.bucket, files)

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts delivered to the subscribed queue since the last call (the SQS body per protocol)."""
        sqs = self.aws.client("sqs")
        found = []
        while True:
            messages = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not messages:
                return found
            for message in messages:
                body = json.loads(message["Body"])
                found.append({"subject": body.get("Subject"), "message": json.loads(body["Message"])})
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])


def score_file(
    local: LocalBatch,
    path: Path,
    *,
    small_file_bytes: int = SMALL_FILE_BYTES,
    explain: str = "flagged",
) -> dict[str, Any]:
    """Upload `path` and run the steps; returns {claim, outcome} (outcome None for a file seen before)."""
    store = local.store
    key = f"{INCOMING_PREFIX}{path.name}"
    store.put(key, path.read_bytes(), "application/octet-stream")
    try:
        file = steps.claim(store, key=key, small_file_bytes=small_file_bytes, lease_s=CLAIM_LEASE_S)
    except Exception as error:  # nothing claimed (no model published): the state machine's ClaimFailureAlert
        _publish_failure(local, {"kind": BATCH_FAILED, "key": key, **_error(error)})
        raise
    if file["duplicate"]:
        return {"claim": file, "outcome": None}
    try:
        model = Model.load(store.model_files(MODEL_PREFIX, (CONFIG_FILE, MODEL_FILE)))
        if file["route"] == "lambda":
            outcome = steps.convert(store, file, model, REGION)
            if outcome["status"] == "valid":
                outcome = steps.score_converted(store, file, model, REGION, explain)
        else:
            outcome = steps.process(store, file, model, REGION, explain)
        local.aws.client("sns").publish(
            TopicArn=local.topic_arn,
            Subject=outcome["alert"]["subject"],
            Message=outcome["alert"]["message"],
            MessageStructure="json",
        )
        store.finish(file["digest"], outcome["status"])
    except Exception as error:  # as the state machine: give the claim back, say so on the topic, fail
        store.release(file["digest"])
        _publish_failure(
            local, {"kind": BATCH_FAILED, "key": key, "file_digest": file["digest"], **_error(error)}
        )
        raise
    return {"claim": file, "outcome": outcome}


def _error(error: Exception) -> dict[str, str]:
    return {"error": type(error).__name__, "cause": str(error)}


def _publish_failure(local: LocalBatch, failure: dict[str, Any]) -> None:
    local.aws.client("sns").publish(
        TopicArn=local.topic_arn, Subject=FAILURE_SUBJECT, Message=json.dumps(failure)
    )


def demo_inputs(work: Path, rows: int = 5_000, force: bool = False) -> tuple[Path, Path]:
    """A small payments model (trained once, reused) and a file of new transactions, for `make demo`."""
    import contextlib

    from training import tabular

    model_dir, new = work / "model", work / "incoming" / "transactions-demo.csv"
    if force or not (model_dir / "config.json").is_file():
        work.mkdir(parents=True, exist_ok=True)
        history = work / "history.csv"
        tabular.generate(10_000, fraud_rate=0.02, seed=7).to_csv(history, index=False)
        argv = ["train", "--csv", str(history), "--out", str(model_dir), "--alerts-per-1000", "15"]
        with open(work / "train.log", "w") as log, contextlib.redirect_stdout(log):
            code = tabular.main([*argv, "--forest-trees", "20", "--no-report"])
        if code != 0:
            raise RuntimeError(f"training the demo's payments model failed: see {work / 'train.log'}")
    if force or not new.is_file():
        table = tabular.generate(rows, fraud_rate=0.02, seed=8).drop(columns=["Class"])
        table.insert(0, "transaction_id", [f"TX-{i:06d}" for i in range(rows)])
        new.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(new, index=False)
    return model_dir, new
