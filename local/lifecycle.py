"""The model lifecycle on the local stack: a registry, an endpoint and an archive in local AWS (the moto
server), one retrain-and-gate cycle, and the local model server following the endpoint.

- `LocalRegistry.create`: the serving model (the demo's) uploaded to the lake under models/artifacts/,
  a SageMaker model, endpoint config and endpoint named as the Ml stack names them, and a model package
  group holding the serving model as version 1 (Approved: what `cdk deploy` ships is served unjudged);
- `retrain_and_gate`: train a candidate with the serving model as its champion (training/train.py
  --champion: both scored on the same mature window), judge and record it with the gate step's code
  (returnguard.aws.gate_record), register it as the pipeline's RegisterModel does, and promote it as
  `returnguard models promote` does if the gate approved it. The candidate learns from newer orders
  than the serving model did, as a weekly retrain would: on the serving model's own table it keeps
  only the latest half of that model's test window for testing (CANDIDATE_TRAINING), so its training
  reaches into orders the serving model never saw, and the gate judges both on the rest, which
  neither trained on;
- `EndpointFollower`: what the local model server's POST /reload loads: the model the endpoint serves
  (and its challenger variant's during an experiment), fetched from the local lake.

Writes `<work>/local-aws.json` (endpoint URL, names, model server) for `returnguard models --local`.
"""

from __future__ import annotations

import json
import shutil
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from returnguard import gate
from returnguard.aws.gate_record import gate_candidate
from returnguard.aws.models import ModelRegistry
from returnguard.features import FEATURE_NAMES

IMAGE = "local/sagemaker-xgboost:3.0-5"  # a name only: the local model server runs the model
ROLE = "arn:aws:iam::123456789012:role/returnguard-local-serving"
LOCAL_AWS_FILE = "local-aws.json"
# The candidate's training: fewer rounds, no baselines or controls, and half the serving model's test
# share (train.py's default 0.2), so its training, validation and test windows each end later.
CANDIDATE_TRAINING = (
    "--num_round",
    "120",
    "--baselines",
    "0",
    "--controls",
    "0",
    "--test_fraction",
    "0.1",
)


def pack(model_dir: Path, archive: Path) -> Path:
    """model.tar.gz as SageMaker ships it: the model folder's files (and lane folders such as return/)
    at the archive root."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(model_dir.iterdir()):
            if not path.name.startswith("."):  # no staging leftovers
                tar.add(path, arcname=path.name)
    return archive


def register(
    sagemaker: Any,
    *,
    group: str,
    model_data_url: str,
    status: str,
    metadata: dict[str, str],
    record_url: str | None,
) -> str:
    """CreateModelPackage as the retraining state machine's RegisterModel state calls it."""
    request: dict[str, Any] = {
        "ModelPackageGroupName": group,
        "ModelApprovalStatus": status,
        "CustomerMetadataProperties": metadata,
        "InferenceSpecification": {
            "Containers": [{"Image": IMAGE, "ModelDataUrl": model_data_url}],
            "SupportedContentTypes": ["application/json", "text/csv"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
    }
    if record_url:
        request["ModelMetrics"] = {
            "ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": record_url}}
        }
    return str(sagemaker.create_model_package(**request)["ModelPackageArn"])


@dataclass
class EndpointFollower:
    """The folder of the model the local endpoint serves, downloaded from the local lake once per artifact."""

    stack: Any  # local.stack.LocalStack
    cache: Path

    def model_dir(self) -> Path:
        return self._fetch(LocalRegistry(self.stack, self.cache).registry().serving()["model_data_url"])

    def challenger_dir(self) -> Path | None:
        """The challenger variant's model (an experiment runs), or None."""
        url = LocalRegistry(self.stack, self.cache).registry().serving()["challenger_model_data_url"]
        return self._fetch(url) if url else None

    def _fetch(self, url: str) -> Path:
        bucket, _, key = url.removeprefix("s3://").partition("/")
        target = self.cache / "serving" / key.replace("/", "_").removesuffix(".tar.gz")
        if not (target / "config.json").is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            archive = self.cache / "download.tar.gz"
            self.stack.client("s3").download_file(bucket, key, str(archive))
            staging = target.with_name(target.name + ".staging")
            shutil.rmtree(staging, ignore_errors=True)
            with tarfile.open(archive) as tar:
                tar.extractall(staging, filter="data")
            staging.replace(target)
        return target


@dataclass
class LocalRegistry:
    """Named after the stack's prefix as the Ml stack names them: <prefix>-scoring, <prefix>-return-abuse-*."""

    stack: Any  # local.stack.LocalStack
    work: Path

    @property
    def prefix(self) -> str:
        return str(self.stack.bucket).removesuffix("-lake")

    @property
    def group(self) -> str:
        return f"{self.prefix}-return-abuse-local"

    @property
    def endpoint(self) -> str:
        return f"{self.prefix}-scoring"

    def registry(self) -> ModelRegistry:
        return ModelRegistry(
            self.stack.client("sagemaker"),
            self.stack.client("s3"),
            group=self.group,
            endpoint=self.endpoint,
            prefix=self.prefix,
            lake_bucket=self.stack.bucket,
        )

    def create(self, model_dir: Path) -> ModelRegistry:
        """Serve `model_dir` from the local endpoint and register it as version 1."""
        sagemaker, s3 = self.stack.client("sagemaker"), self.stack.client("s3")
        key = "models/artifacts/bootstrap/model.tar.gz"
        s3.upload_file(str(pack(model_dir, self.work / "bootstrap.tar.gz")), self.stack.bucket, key)
        url = f"s3://{self.stack.bucket}/{key}"
        sagemaker.create_model(
            ModelName=f"{self.prefix}-bootstrap",
            ExecutionRoleArn=ROLE,
            PrimaryContainer={"Image": IMAGE, "ModelDataUrl": url},
        )
        sagemaker.create_endpoint_config(
            EndpointConfigName=f"{self.prefix}-bootstrap",
            ProductionVariants=[
                {
                    "VariantName": "primary",
                    "ModelName": f"{self.prefix}-bootstrap",
                    "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5},
                }
            ],
        )
        sagemaker.create_endpoint(EndpointName=self.endpoint, EndpointConfigName=f"{self.prefix}-bootstrap")
        sagemaker.create_model_package_group(ModelPackageGroupName=self.group)
        config = json.loads((model_dir / "config.json").read_text())
        metrics = json.loads((model_dir / "metrics.json").read_text())["models"]["xgboost"]
        register(
            sagemaker,
            group=self.group,
            model_data_url=url,
            status="Approved",
            metadata={
                "gate_decision": "bootstrap",
                "model_version": str(config["model_version"]),
                "candidate_roc_auc": f"{metrics['roc_auc']:.6g}",
                "candidate_pr_auc": f"{metrics['pr_auc']:.6g}",
                "candidate_alert_rate": f"{metrics['alerts_per_1000_orders'] / 1000:.6g}",
            },
            record_url=None,
        )
        return self.registry()

    def write_settings(self, model_server: str | None) -> Path:
        path = self.work / LOCAL_AWS_FILE
        path.write_text(
            json.dumps(
                {
                    "endpoint_url": self.stack.endpoint_url,
                    "region": "us-east-1",
                    "prefix": self.prefix,
                    "group": self.group,
                    "endpoint": self.endpoint,
                    "bucket": self.stack.bucket,
                    "model_server": model_server,
                },
                indent=2,
            )
        )
        return path

    def remove_settings(self) -> None:
        (self.work / LOCAL_AWS_FILE).unlink(missing_ok=True)


def learned_until(config_file: Path) -> str | None:
    """The time of the last order a model learned from (its training or validation window's end)."""
    window = json.loads(config_file.read_text()).get("data_window") or {}
    ends = [str(window[part]["to"]) for part in ("train", "validation") if window.get(part, {}).get("to")]
    return max(ends) if ends else None


def retrain_and_gate(
    local: LocalRegistry,
    *,
    table: Path,
    champion_dir: Path,
    run: str,
    training_args: Sequence[str] = CANDIDATE_TRAINING,
    bounds: gate.GateBounds | None = None,
) -> dict[str, Any]:
    """One cycle: train a candidate against the serving model, gate, record, register, promote if approved.

    Returns the gate's answer (approved, reasons, metadata, record_url) plus `version` (the registered
    package), `promotion` (the endpoint configs, when it was promoted) and `learned_until` (the last
    order each model learned from, training or validation: {"serving": iso, "candidate": iso})."""
    from training import train

    candidate = local.work / "candidate" / run
    shutil.rmtree(candidate, ignore_errors=True)
    code = train.main(
        [
            "--train",
            str(table),
            "--model-dir",
            str(candidate / "model"),
            "--output-data-dir",
            str(candidate / "output"),
            "--champion",
            str(champion_dir),
            "--model_version",
            f"v-{run}",
            *training_args,
        ]
    )
    if code:
        raise RuntimeError(f"training the candidate failed (exit status {code})")
    learned = {
        "serving": learned_until(champion_dir / "config.json"),
        "candidate": learned_until(candidate / "model" / "config.json"),
    }
    # This cycle retrains the order model only (no --return_train): training kept the serving archive's
    # other lanes (return/, payment/) in the candidate (train.resolve_lanes), so promoting it keeps them.
    s3, sagemaker = local.stack.client("s3"), local.stack.client("sagemaker")
    key = f"models/artifacts/{local.prefix}-{run}/output/model.tar.gz"
    s3.upload_file(str(pack(candidate / "model", candidate / "model.tar.gz")), local.stack.bucket, key)
    url = f"s3://{local.stack.bucket}/{key}"
    answer = gate_candidate(
        s3,
        lake_bucket=local.stack.bucket,
        artifact_url=url,
        execution=run,
        serving_features=FEATURE_NAMES,
        bounds=bounds or gate.GateBounds(),
    )
    arn = register(
        sagemaker,
        group=local.group,
        model_data_url=url,
        status=answer["approval_status"],
        metadata=answer["metadata"],
        record_url=answer["record_url"],
    )
    answer["learned_until"] = learned
    registry = local.registry()
    version = next(v for v in registry.versions() if v.arn == arn)
    answer["version"] = version.version
    if answer["approved"]:
        answer["promotion"] = registry.promote(version.version)
        registry.wait_in_service(answer["promotion"]["EndpointConfigName"], poll_s=0)
    return answer


def demo_cycle(work: Path, stack: Any, model_server: Any, *, table: Path, model_dir: Path) -> list[str]:
    """`make demo`'s retrain-and-gate step: the demo model serves as version 1, one candidate is trained
    against it on newer orders of the same table (CANDIDATE_TRAINING), gated and registered, and
    promoted (the local model server reloads) if approved. Returns the lines to print."""
    import urllib.request

    local = LocalRegistry(stack, work)
    local.create(model_dir)
    model_server.follow(EndpointFollower(stack, work / "registry-cache"))
    local.write_settings(model_server.url)
    answer = retrain_and_gate(local, table=table, champion_dir=model_dir, run="demo-retrain-1")
    numbers = local.registry().gate_record(local.registry().version(answer["version"]))["numbers"]
    window, new, old = numbers["window"], numbers["candidate"], numbers["champion"]
    learned = answer["learned_until"]
    lines = [
        f"serving model learned from orders up to {learned['serving']}; the candidate from newer ones, "
        f"up to {learned['candidate']}",
        f"same mature window for both: {window['from']} → {window['to']}, {window['rows']:,} orders, "
        f"{window['positives']:,} abusive (labels as of {window['labels_as_of']})",
        f"{'':<10} {'ROC-AUC':>8} {'PR-AUC':>8} {'alert rate':>11}",
    ]
    for name, side in (("serving", old), ("candidate", new)):
        lines.append(f"{name:<10} {side['roc_auc']:>8.3f} {side['pr_auc']:>8.3f} {side['alert_rate']:>11.3f}")
    lines.append(
        f"risk-level PSI {numbers['level_psi']:.3f} (raw score PSI {numbers['score_psi']:.3f}, recorded only); "
        f"feature list matches: {numbers['feature_list_matches']}"
    )
    verdict = "APPROVED" if answer["approved"] else f"REJECTED ({', '.join(answer['reasons'])})"
    lines.append(f"gate: {verdict}; registered as version {answer['version']}; record {answer['record_url']}")
    if answer["approved"]:
        request = urllib.request.Request(f"{model_server.url}/reload", data=b"{}", method="POST")
        with urllib.request.urlopen(request, timeout=120) as reply:  # noqa: S310 (127.0.0.1)
            version = json.loads(reply.read())["model_version"]
        lines.append(
            f"promoted: endpoint on {answer['promotion']['EndpointConfigName']}; model server reloaded: {version}"
        )
    else:
        lines.append("the serving model stays (endpoint untouched)")
    lines.append("try: .venv/bin/returnguard models --local list   (while `make demo SERVE=1` runs)")
    return lines
