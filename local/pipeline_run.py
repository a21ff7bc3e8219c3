"""Run the retraining state machine CDK synthesizes on local AWS (moto), each Task running the same
Python its AWS step runs.

moto's Step Functions interpreter (`mock_aws(config={"stepfunctions": {"execute_state_machine": True}})`)
evaluates the definition: states, paths, intrinsic functions, Retry/Catch, and `aws-sdk:*` tasks against
moto's backends. It cannot run SageMaker jobs, Glue jobs or Lambda code without Docker, so `install()`
hooks its task factory: a resource whose service has a local step here runs that step in-process.

- `glue:startJobRun(.sync)`: the Glue job's script (`glue_jobs/<script>`) through its `run(spark, raw,
  processed)` on a local copy of the lake prefixes the job's arguments name, written back to moto's S3;
  a script with `run_job(arguments)` (no Spark: the batch scoring job) gets the run's merged arguments;
- `sagemaker:createTrainingJob(.sync)`: `training/train.py` with SageMaker's script-mode environment
  (SM_CHANNEL_TRAIN, SM_MODEL_DIR, SM_OUTPUT_DATA_DIR), the model archived as `model.tar.gz` under the
  job's output path, and `FinalMetricDataList` read from its log with the job's metric regexes;
- `lambda:invoke`: the function's `lambdas/<folder>/handler.py` with the environment of its template
  resource, called with the payload.

Every other task (aws-sdk S3 and SageMaker calls) goes to moto as in AWS; `local.moto_sagemaker` adds the
UpdateEndpoint that moto lacks. Error names follow Step Functions: a failed job or a raising handler fails
its task (`States.TaskFailed`, or the exception's class name for Lambda, as Lambda reports it).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import json
import re
import shutil
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3

from local import moto_sagemaker
from local.api_server import patched_environ

ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-1"


class StepFailed(Exception):
    """A local step failed as its AWS step would: `error` is the name a Catch would match."""

    def __init__(self, error: str, cause: str) -> None:
        super().__init__(f"{error}: {cause}")
        self.error, self.cause = error, cause


# --- S3 helpers -----------------------------------------------------------------------------------------


def split_s3(url: str) -> tuple[str, str]:
    """(bucket, key prefix) of `s3://bucket/key` or the path-style `https://s3.<region>.<suffix>/bucket/key`
    CDK's `S3Location.from_bucket` writes."""
    parts = urlsplit(url)
    if parts.scheme == "s3":
        return parts.netloc, parts.path.lstrip("/")
    if parts.scheme == "https" and parts.netloc.startswith("s3."):
        bucket, _, key = parts.path.lstrip("/").partition("/")
        return bucket, key
    raise ValueError(f"not an S3 location: {url!r}")


def _object(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    """HeadObject of `key` when it names one object (an S3Prefix channel given a file's key), else None."""
    if not key or key.endswith("/"):
        return None
    try:
        return dict(s3.head_object(Bucket=bucket, Key=key))
    except s3.exceptions.ClientError:
        return None


def download(s3: Any, url: str, target: Path) -> int:
    bucket, prefix = split_s3(url)
    if _object(s3, bucket, prefix) is not None:  # SageMaker puts the one object in the channel by its name
        target.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, prefix, str(target / prefix.rsplit("/", 1)[-1]))
        return 1
    prefix = prefix.rstrip("/") + "/" if prefix else ""
    count = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            path = target / item["Key"][len(prefix) :]
            path.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, item["Key"], str(path))
            count += 1
    return count


def upload(s3: Any, source: Path, url: str) -> int:
    bucket, prefix = split_s3(url)
    prefix = prefix.rstrip("/")
    files = [p for p in sorted(source.rglob("*")) if p.is_file() and not p.name.endswith(".crc")]
    for path in files:
        s3.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(source).as_posix()}")
    return len(files)


def fingerprint(s3: Any, url: str, *extra: str) -> str:
    """A digest of every object (key and ETag) under an S3 location, plus `extra`."""
    bucket, prefix = split_s3(url)
    digest = hashlib.sha256("\0".join(extra).encode())
    head = _object(s3, bucket, prefix)
    if head is not None:
        digest.update(f"{prefix}={head['ETag']}".encode())
        return digest.hexdigest()[:16]
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix.rstrip("/") + "/"):
        for item in page.get("Contents", []):
            digest.update(f"{item['Key'][len(prefix) :]}={item['ETag']}".encode())
    return digest.hexdigest()[:16]


# --- the local steps ------------------------------------------------------------------------------------


@dataclass
class GlueJobs:
    """glue:startJobRun: the job's script with its default arguments merged with the run's."""

    spark: Callable[[], Any]  # a SparkSession factory (tests share one session)
    # job name -> its script: ScriptLocation names a CDK asset by content hash, not by file name
    scripts: Mapping[str, Path] = field(default_factory=dict)
    # Tests set a folder: a run on input it has already seen reuses that output instead of running
    # Spark again (the outputs are a function of the input; every run still writes them to S3).
    reuse_dir: Path | None = None
    runs: list[str] = field(default_factory=list)

    def __call__(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        if action != "startJobRun":
            raise StepFailed("States.Runtime", f"glue:{action} has no local step")
        glue, s3 = boto3.client("glue", region_name=REGION), boto3.client("s3", region_name=REGION)
        job = glue.get_job(JobName=params["JobName"])["Job"]
        arguments = {**job.get("DefaultArguments", {}), **params.get("Arguments", {})}
        if params["JobName"] not in self.scripts:
            raise StepFailed("States.TaskFailed", f"no local script for Glue job {params['JobName']}")
        script = self.scripts[params["JobName"]]
        module = _load(script, f"glue_job_{script.stem}")
        run_id = f"jr_{uuid.uuid4().hex}"
        self.runs.append(params["JobName"])
        done = {
            "JobName": params["JobName"],
            "Id": run_id,
            "JobRunState": "SUCCEEDED",
            "Arguments": arguments,
        }
        if hasattr(module, "run_job"):
            try:
                module.run_job(arguments)
            except Exception as error:
                raise StepFailed(
                    "States.TaskFailed", f"Glue job {params['JobName']} failed: {error}"
                ) from error
            return done
        try:
            with tempfile.TemporaryDirectory(prefix="glue-") as work:
                raw, processed = Path(work) / "raw", Path(work) / "processed"
                seen = None
                if self.reuse_dir is not None:
                    seen = self.reuse_dir / fingerprint(s3, arguments["--raw_path"], str(script))
                if seen is not None and seen.is_dir():
                    processed = seen
                else:
                    if download(s3, arguments["--raw_path"], raw) == 0:
                        raise ValueError(f"no input under {arguments['--raw_path']}")
                    module.run(self.spark(), str(raw), str(processed))
                    if seen is not None:
                        shutil.copytree(processed, seen)
                upload(s3, processed, arguments["--processed_path"])
        except Exception as error:
            raise StepFailed("States.TaskFailed", f"Glue job {params['JobName']} failed: {error}") from error
        return {
            "JobName": params["JobName"],
            "Id": run_id,
            "JobRunState": "SUCCEEDED",
            "Arguments": arguments,
        }


@dataclass
class TrainingJobs:
    """sagemaker:createTrainingJob: training/train.py in script mode, as the XGBoost container runs it.

    `extra_hyperparameters` are appended to the job's own (tests pass fewer rounds); the container passes
    hyperparameters other than sagemaker_* as `--name value` arguments the same way."""

    extra_hyperparameters: Mapping[str, str] = field(default_factory=dict)
    reuse_dir: Path | None = None  # as GlueJobs.reuse_dir: same data and arguments, same model and log
    jobs: list[str] = field(default_factory=list)

    def __call__(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        if action != "createTrainingJob":
            raise StepFailed("States.Runtime", f"sagemaker:{action} has no local step")
        from training import train

        name = params["TrainingJobName"]
        hyperparameters = {**params.get("HyperParameters", {}), **self.extra_hyperparameters}
        program = hyperparameters.get("sagemaker_program")
        if program != "train.py":
            raise StepFailed("States.TaskFailed", f"training job {name}: sagemaker_program is {program!r}")
        argv = [
            a for k, v in hyperparameters.items() if not k.startswith("sagemaker_") for a in (f"--{k}", v)
        ]
        s3 = boto3.client("s3", region_name=REGION)
        self.jobs.append(name)
        with tempfile.TemporaryDirectory(prefix="training-") as work:
            base = Path(work)
            env = {"SM_MODEL_DIR": str(base / "model"), "SM_OUTPUT_DATA_DIR": str(base / "output")}
            for channel in params["InputDataConfig"]:
                target = base / "input" / "data" / channel["ChannelName"]
                target.mkdir(parents=True)
                if download(s3, channel["DataSource"]["S3DataSource"]["S3Uri"], target) == 0:
                    uri = channel["DataSource"]["S3DataSource"]["S3Uri"]  # SageMaker fails such a job
                    raise StepFailed(
                        "States.TaskFailed", f"training job {name}: no S3 objects found under {uri}"
                    )
                env[f"SM_CHANNEL_{channel['ChannelName'].upper()}"] = str(target)
            log = io.StringIO()
            inputs = [c["DataSource"]["S3DataSource"]["S3Uri"] for c in params["InputDataConfig"]]
            key = "-".join(fingerprint(s3, url, *argv) for url in inputs)
            seen = self.reuse_dir / key if self.reuse_dir else None
            if seen is not None and seen.is_dir():
                shutil.copytree(seen / "model", base / "model")
                log.write((seen / "log.txt").read_text())
            else:
                try:
                    with (
                        patched_environ(env),
                        contextlib.redirect_stdout(log),
                        contextlib.redirect_stderr(log),
                    ):
                        code = train.main(argv)
                    if code:
                        raise RuntimeError(f"exit status {code}")
                except (Exception, SystemExit) as error:
                    tail = log.getvalue()[-500:]
                    raise StepFailed(
                        "States.TaskFailed", f"training job {name} failed: {error!r} {tail}"
                    ) from None
                if seen is not None:
                    shutil.copytree(base / "model", seen / "model")
                    (seen / "log.txt").write_text(log.getvalue())
            archive = base / "model.tar.gz"
            with tarfile.open(archive, "w:gz") as tar:
                for path in sorted((base / "model").iterdir()):
                    tar.add(path, arcname=path.name)
            bucket, prefix = split_s3(params["OutputDataConfig"]["S3OutputPath"])
            key = f"{prefix.rstrip('/')}/{name}/output/model.tar.gz"
            s3.upload_file(str(archive), bucket, key)
        metrics = []
        for definition in params["AlgorithmSpecification"].get("MetricDefinitions", []):
            found = re.findall(definition["Regex"], log.getvalue())
            if found:  # SageMaker keeps the last value the log printed
                metrics.append(
                    {"MetricName": definition["Name"], "Value": float(found[-1]), "Timestamp": time.time()}
                )
        return {
            "TrainingJobName": name,
            "TrainingJobStatus": "Completed",
            "SecondaryStatus": "Completed",
            "ModelArtifacts": {"S3ModelArtifacts": f"s3://{bucket}/{key}"},
            "FinalMetricDataList": metrics,
            "HyperParameters": hyperparameters,
        }


@dataclass
class LambdaFunctions:
    """lambda:invoke: `lambdas/<folder>/handler.py` with its template environment, by function ARN."""

    functions: Mapping[str, tuple[str, Mapping[str, str]]]  # ARN -> (folder, environment)
    invocations: list[str] = field(default_factory=list)
    _loaded: dict[str, Any] = field(default_factory=dict)

    def __call__(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        if action != "invoke":
            raise StepFailed("States.Runtime", f"lambda:{action} has no local step")
        from local.api_server import LambdaContext

        arn = params["FunctionName"]
        if arn not in self.functions:
            raise StepFailed("Lambda.ResourceNotFoundException", f"no local function for {arn}")
        folder, env = self.functions[arn]
        self.invocations.append(folder)
        with patched_environ({"POWERTOOLS_TRACE_DISABLED": "true", **env}):
            if arn not in self._loaded:
                self._loaded[arn] = _load(ROOT / "lambdas" / folder / "handler.py", f"lambda_{folder}_local")
            try:
                result = self._loaded[arn].lambda_handler(params.get("Payload"), LambdaContext())
            except Exception as error:  # Lambda reports a function error by the exception's class name
                cause = {"errorType": type(error).__name__, "errorMessage": str(error)}
                raise StepFailed(type(error).__name__, json.dumps(cause)) from error
        return {"StatusCode": 200, "ExecutedVersion": "$LATEST", "Payload": result}


def _load(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# --- the hook into moto's interpreter --------------------------------------------------------------------

# What a task that starts a job gets without `.sync`: the start call's answer, not the finished job's.
START_ANSWERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "glue:startJobRun": lambda done: {"JobRunId": done["Id"]},
    "sagemaker:createTrainingJob": lambda done: {
        "TrainingJobArn": f"arn:aws:sagemaker:{REGION}:123456789012:training-job/{done['TrainingJobName']}"
    },
}

Step = Callable[[str, dict[str, Any]], dict[str, Any]]


def install(steps: Mapping[str, Step]) -> Callable[[], None]:
    """Route tasks of the services in `steps` (e.g. "glue", "sagemaker", "lambda") to local steps; returns
    a function that removes the hook. Also names aws-sdk errors of S3 and SageMaker as Step Functions does
    (`S3.NoSuchKeyException`, where moto would say `s3.NoSuchKeyException`)."""
    from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEvent
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task_factory
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_aws_sdk as aws_sdk,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service import (
        StateTaskService,
    )
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    class LocalStep(StateTaskService):
        """One task run by a local step, synchronously: a `.sync` task returns once the job is done."""

        def _validate_service_integration_is_supported(self) -> None:
            pass

        def _eval_service_task(
            self, env: Any, resource_runtime_part: Any, normalised_parameters: dict, state_credentials: Any
        ) -> None:
            step = steps[self.resource.service_name]
            answer = step(self.resource.api_action, normalised_parameters)
            started = START_ANSWERS.get(f"{self.resource.service_name}:{self.resource.api_action}")
            if started is not None and self.resource.condition is None:
                # Request-response: AWS answers once the job has started, with its id only.
                answer = started(answer)
            env.stack.append(answer)

        def _from_error(self, env: Any, ex: Exception) -> Any:
            if not isinstance(ex, StepFailed):
                ex = StepFailed("States.TaskFailed", f"{type(ex).__name__}: {ex}")
            name = (
                StatesErrorName(typ=StatesErrorNameType.from_name(ex.error))
                if ex.error.startswith("States.")
                else CustomErrorName(ex.error)
            )
            return FailureEvent(
                env=env,
                error_name=name,
                event_type=HistoryEventType.TaskFailed,
                event_details=EventDetails(
                    taskFailedEventDetails=TaskFailedEventDetails(
                        error=ex.error,
                        cause=ex.cause,
                        resource=self._get_sfn_resource(),
                        resourceType=self._get_sfn_resource_type(),
                    )
                ),
            )

    original = state_task_factory.state_task_service_for
    saved_names = dict(aws_sdk._SERVICE_ERROR_NAMES)

    def service_for(service_name: str) -> Any:
        return LocalStep() if service_name in steps else original(service_name)

    original_sdk_task = aws_sdk.StateTaskServiceAwsSdk._eval_service_task

    def sdk_task(self: Any, env: Any, *args: Any, **kwargs: Any) -> None:
        original_sdk_task(self, env, *args, **kwargs)
        body = env.stack[-1].get("Body") if isinstance(env.stack[-1], dict) else None
        if hasattr(body, "read"):  # Step Functions hands s3:getObject's Body over as text
            env.stack[-1]["Body"] = body.read().decode("utf-8")

    state_task_factory.state_task_service_for = service_for
    aws_sdk.StateTaskServiceAwsSdk._eval_service_task = sdk_task
    aws_sdk._SERVICE_ERROR_NAMES.update({"s3": "S3", "sagemaker": "SageMaker"})
    moto_sagemaker.install()

    def uninstall() -> None:
        state_task_factory.state_task_service_for = original
        aws_sdk.StateTaskServiceAwsSdk._eval_service_task = original_sdk_task
        aws_sdk._SERVICE_ERROR_NAMES.clear()
        aws_sdk._SERVICE_ERROR_NAMES.update(saved_names)

    return uninstall


def run_execution(
    sfn: Any, state_machine_arn: str, name: str, timeout_s: float = 600, input: str = "{}"
) -> dict[str, Any]:
    """Start an execution and wait for it to end; returns DescribeExecution with `history` added."""
    arn = sfn.start_execution(stateMachineArn=state_machine_arn, name=name, input=input)["executionArn"]
    deadline = time.monotonic() + timeout_s
    while True:
        answer = sfn.describe_execution(executionArn=arn)
        if answer["status"] != "RUNNING":
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"execution {name} still running after {timeout_s} s")
        time.sleep(0.2)
    events = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    return {**answer, "history": events}


def entered_states(execution: Mapping[str, Any]) -> list[str]:
    """The names of the states the execution entered, in order."""
    return [
        event["stateEnteredEventDetails"]["name"]
        for event in execution["history"]
        if "stateEnteredEventDetails" in event
    ]
