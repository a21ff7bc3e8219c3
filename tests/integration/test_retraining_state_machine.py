"""The retraining state machine CDK synthesizes, executed on moto from feature build to promotion.

The definition is read from the synthesized dev template with its tokens resolved (local.state_machine);
moto's interpreter runs it; the Glue job, the training job, the gate and the promote function run the same
Python their AWS steps run (local.pipeline_run), on a small synthetic lake. Wait states are shortened to 0 s.
The serving (bootstrap) model the gate compares with is trained by training/train.py on the same orders
(the replay table, no Spark) with the pipeline's settings: a like-for-like candidate. It carries a return
model too (tests/return_model.py), which the job's return candidate is gated against.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local import moto_sagemaker
from local.pipeline_run import GlueJobs, LambdaFunctions, TrainingJobs, entered_states, install, run_execution
from local.state_machine import Resolver, definition_string, render
from returnguard import synth
from returnguard.aws import experiment, lane_promotion, serving_profile
from returnguard.aws.gate_record import GATE_DECISIONS_PREFIX
from returnguard.synth_returns import ReturnData, generate_returns, replay_return_table, write_returns_raw
from stacks.pipeline import SERVING_METRICS_KEY
from tests.return_model import add_return_model
from tests.unit.returns.requests import RETURN_TEST_VERSION
from training import train

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]

ACCOUNT, REGION = "123456789012", "us-east-1"
LAKE = "lake"
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
TRAINING_ROLE = f"arn:aws:iam::{ACCOUNT}:role/training"
SERVING_ROLE = f"arn:aws:iam::{ACCOUNT}:role/serving"
GROUP = "returnguard-dev-return-abuse-a1b2c3d4"
PROMOTE_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:returnguard-dev-promote"
GATE_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:returnguard-dev-gate"
BOOTSTRAP_ARTIFACT = "bootstrap/model.tar.gz"
# The pipeline's training settings in these tests (fewer rounds, no baselines or controls: faster).
TRAINING = {"num_round": "60", "baselines": "0", "controls": "0"}
BOOTSTRAP_MODEL = "returnguard-dev-bootstrap"
BOOTSTRAP_CONFIG = "EndpointConfig-Bootstrap1"
ENDPOINT = "returnguard-dev-scoring"


@pytest.fixture(scope="module")
def templates(dev_templates) -> dict[str, dict[str, Any]]:
    return dev_templates  # tests/integration/conftest.py: one synth for the session


LAKE_CONFIG = synth.SynthConfig(orders=3_000, seed=5, days=300)


@pytest.fixture(scope="module")
def lake_data() -> tuple[synth.SyntheticData, ReturnData]:
    data = synth.generate(LAKE_CONFIG)
    return data, generate_returns(data)


@pytest.fixture(scope="module")
def raw_lake(tmp_path_factory, lake_data) -> Path:
    root = tmp_path_factory.mktemp("lake")
    synth.write_raw(lake_data[0], root)
    write_returns_raw(lake_data[1], root)  # return requests: the job retrains and gates the return lane
    return root / "raw"


@pytest.fixture(scope="module")
def champion_archive(tmp_path_factory, lake_data) -> bytes:
    """The serving model: trained on the same orders with the pipeline's settings, with a return model
    (tests/return_model.py, on the same lake's return requests) under return/, packed as deployed."""
    work = tmp_path_factory.mktemp("champion")
    table = synth.replay_table(lake_data[0])
    argv = [a for k, v in TRAINING.items() for a in (f"--{k}", v)]
    train.train_frame(table, work, *argv, "--model_version", "v-serving")
    served = add_return_model(work / "model", work / "served", replay_return_table(*lake_data))
    with tarfile.open(work / "model.tar.gz", "w:gz") as tar:
        for path in sorted(served.iterdir()):
            tar.add(path, arcname=path.name)
    return (work / "model.tar.gz").read_bytes()


def resolver(template: dict[str, Any]) -> Resolver:
    return Resolver(
        template,
        {
            "LakeBucket": LAKE,
            "GetAttKey": KEY_ARN,
            "TrainingRole": TRAINING_ROLE,
            "ServingRole": SERVING_ROLE,
            "ModelPackageGroupArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package-group/{GROUP}",
            "PromoteFunction": PROMOTE_ARN,
            "GateFunction": GATE_ARN,
            "EndpointConfig": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint-config/{BOOTSTRAP_CONFIG.lower()}",
            "BootstrapModel": BOOTSTRAP_MODEL,
            "DatabaseName": "returnguard_dev",
            "Database": "returnguard_dev",
        },
        ACCOUNT,
        REGION,
    )


def resources(template: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {k: r["Properties"] for k, r in template["Resources"].items() if r["Type"] == type_}


@pytest.fixture(scope="module")
def reuse(tmp_path_factory) -> Path:
    """Feature and training outputs by input: each execution runs every step, Spark and XGBoost once."""
    return tmp_path_factory.mktemp("reuse")


@pytest.fixture
def local_aws(templates, raw_lake, champion_archive, spark, reuse) -> Iterator[dict[str, Any]]:
    """moto with the dev stacks' pieces the state machine touches, the raw lake uploaded, the state
    machine created from the synthesized definition, and the local steps hooked in."""
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=LAKE)
        for path in sorted(raw_lake.rglob("*.parquet")):
            s3.upload_file(str(path), LAKE, f"raw/{path.relative_to(raw_lake).as_posix()}")
        s3.put_object(Bucket=LAKE, Key=BOOTSTRAP_ARTIFACT, Body=champion_archive)

        glue = boto3.client("glue", region_name=REGION)
        etl = resolver(templates["etl"])
        (features_job,) = [
            job
            for job in resources(templates["etl"], "AWS::Glue::Job").values()
            if job["Name"].endswith("-features")
        ]
        glue.create_job(
            Name=features_job["Name"],
            Role=TRAINING_ROLE,
            Command={
                "Name": "glueetl",
                "ScriptLocation": etl.evaluate(features_job["Command"]["ScriptLocation"]),
            },
            DefaultArguments={k: etl.evaluate(v) for k, v in features_job["DefaultArguments"].items()},
        )

        sagemaker = boto3.client("sagemaker", region_name=REGION)
        ml = resolver(templates["ml"])
        sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
        sagemaker.create_model(
            ModelName=BOOTSTRAP_MODEL,
            ExecutionRoleArn=SERVING_ROLE,
            PrimaryContainer={"Image": "xgboost", "ModelDataUrl": f"s3://{LAKE}/{BOOTSTRAP_ARTIFACT}"},
        )
        (config,) = resources(templates["ml"], "AWS::SageMaker::EndpointConfig").values()
        variants = [
            {key: ml.evaluate(value) for key, value in v.items()} for v in config["ProductionVariants"]
        ]
        sagemaker.create_endpoint_config(
            EndpointConfigName=BOOTSTRAP_CONFIG,
            ProductionVariants=variants,
            Tags=[{"Key": "stage", "Value": "dev"}, {"Key": "project", "Value": "returnguard"}],
        )
        sagemaker.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=BOOTSTRAP_CONFIG)

        pipeline = resolver(templates["pipeline"])
        definition = render(definition_string(templates["pipeline"]), pipeline)
        for state in definition["States"].values():
            if state["Type"] == "Wait":
                state["Seconds"] = 0  # the promotion's 60 s poll, shortened for the test
        functions = resources(templates["pipeline"], "AWS::Lambda::Function").values()
        (promote,) = [f for f in functions if "RG_ENDPOINT_NAME" in f["Environment"]["Variables"]]
        (gate,) = [f for f in functions if "RG_GATE_BOUNDS" in f["Environment"]["Variables"]]
        env = {k: pipeline.evaluate(v) for k, v in promote["Environment"]["Variables"].items()}
        gate_env = {k: pipeline.evaluate(v) for k, v in gate["Environment"]["Variables"].items()}
        steps = {
            "glue": GlueJobs(
                spark=lambda: spark,
                scripts={features_job["Name"]: ROOT / "glue_jobs" / "features.py"},
                reuse_dir=reuse / "glue",
            ),
            "sagemaker": TrainingJobs(extra_hyperparameters=dict(TRAINING), reuse_dir=reuse / "training"),
            "lambda": LambdaFunctions(
                {
                    PROMOTE_ARN: ("promote", {**env, "AWS_DEFAULT_REGION": REGION}),
                    GATE_ARN: ("gate", {**gate_env, "AWS_DEFAULT_REGION": REGION}),
                }
            ),
        }
        uninstall = install(steps)
        sfn = boto3.client("stepfunctions", region_name=REGION)
        machine = sfn.create_state_machine(
            name="returnguard-dev-retraining",
            definition=json.dumps(definition),
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/retraining",
        )["stateMachineArn"]
        # The defect issue 15 item 8 fixed: the same definition with a training task that does not wait.
        definition["States"]["Train"]["Resource"] = definition["States"]["Train"]["Resource"].removesuffix(
            ".sync"
        )
        not_waiting = sfn.create_state_machine(
            name="returnguard-dev-retraining-not-sync",
            definition=json.dumps(definition),
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/retraining",
        )["stateMachineArn"]
        try:
            yield {
                "s3": s3,
                "sagemaker": sagemaker,
                "sfn": sfn,
                "machine": machine,
                "not_waiting": not_waiting,
                "steps": steps,
            }
        finally:
            uninstall()
            moto_sagemaker.FAIL_VARIANTS_OF.clear()


def archive_files(s3: Any, url: str) -> dict[str, bytes]:
    body = s3.get_object(Bucket=LAKE, Key=url.removeprefix(f"s3://{LAKE}/"))["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        return {m.name.removeprefix("./"): tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]


def serving_metrics(s3: Any) -> dict[str, Any]:
    return json.loads(s3.get_object(Bucket=LAKE, Key=SERVING_METRICS_KEY)["Body"].read())


def served_config(sagemaker: Any) -> str:
    return sagemaker.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"]


def packages(sagemaker: Any) -> list[dict[str, Any]]:
    """Every registered candidate, described (status, metadata, metrics)."""
    return [
        sagemaker.describe_model_package(ModelPackageName=p["ModelPackageArn"])
        for p in sagemaker.list_model_packages(ModelPackageGroupName=GROUP)["ModelPackageSummaryList"]
    ]


def gate_records(s3: Any) -> list[dict[str, Any]]:
    listed = s3.list_objects_v2(Bucket=LAKE, Prefix=GATE_DECISIONS_PREFIX).get("Contents", [])
    return [json.loads(s3.get_object(Bucket=LAKE, Key=o["Key"])["Body"].read()) for o in listed]


def the_decision(s3: Any, sagemaker: Any, execution: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The one registered package and the one lake record of this run, checked to agree."""
    (package,) = packages(sagemaker)
    (record,) = gate_records(s3)
    metadata = package["CustomerMetadataProperties"]
    assert record["execution"] == metadata["execution"] == execution
    uri = package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
    assert uri == metadata["gate_record"]
    assert uri.startswith(f"s3://{LAKE}/{GATE_DECISIONS_PREFIX}date=") and uri.endswith(f"/{execution}.json")
    assert package["ModelApprovalStatus"] == record["approval_status"] == metadata["gate_decision"]
    assert metadata["gate_reasons"] == (",".join(record["reasons"]) or "none")
    return package, record


def test_a_candidate_no_worse_than_the_serving_model_is_gated_registered_and_promoted(local_aws):
    s3, sagemaker = local_aws["s3"], local_aws["sagemaker"]

    execution = run_execution(local_aws["sfn"], local_aws["machine"], "better-1")

    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    states = entered_states(execution)
    assert states[:6] == [
        "BuildFeatures",
        "ServingEndpoint",
        "ServingConfig",
        "ServingModel",
        "Train",
        "GateCandidate",
    ]
    assert states[6:9] == ["RegisterModel", "Approved", "CreateModel"]
    assert states[-4:] == ["WaitForEndpoint", "DescribeEndpoint", "EndpointUpdated", "RecordServingMetrics"]
    assert states.count("DescribeEndpoint") == 2  # Updating, then InService on the new config
    assert local_aws["steps"]["glue"].runs == ["returnguard-dev-features"]
    assert local_aws["steps"]["sagemaker"].jobs == ["returnguard-dev-better-1"]
    # The gate compared both models on the same mature window and recorded it, approved, everywhere.
    package, record = the_decision(s3, sagemaker, "better-1")
    assert record["approved"] is True and record["reasons"] == []
    numbers = record["numbers"]
    assert numbers["champion_version"] == "v-serving"
    assert numbers["window"]["rows"] >= 200 and numbers["window"]["positives"] >= 10
    assert numbers["candidate"]["roc_auc"] > 0.55 and numbers["champion"]["roc_auc"] > 0.55
    assert abs(numbers["roc_auc_change"]) <= 0.01 and numbers["feature_list_matches"] is True
    assert (
        package["CustomerMetadataProperties"]["candidate_roc_auc"] == f"{numbers['candidate']['roc_auc']:.6g}"
    )
    assert serving_metrics(s3)["gate_decision"] == "Approved"
    assert served_config(sagemaker) == "returnguard-dev-better-1"
    new = sagemaker.describe_endpoint_config(EndpointConfigName="returnguard-dev-better-1")
    old = sagemaker.describe_endpoint_config(EndpointConfigName=BOOTSTRAP_CONFIG)
    assert new["ProductionVariants"] == [
        {**old["ProductionVariants"][0], "ModelName": "returnguard-dev-better-1"}
    ]
    model = sagemaker.describe_model(ModelName="returnguard-dev-better-1")
    artifact = model["PrimaryContainer"]["ModelDataUrl"]
    assert artifact == f"s3://{LAKE}/models/artifacts/returnguard-dev-better-1/output/model.tar.gz"
    s3.head_object(Bucket=LAKE, Key=artifact.removeprefix(f"s3://{LAKE}/"))
    assert local_aws["steps"]["lambda"].invocations == ["gate", "promote"]
    # The promote step published the candidate's thresholds and fallback where the score function reads them
    with tarfile.open(
        fileobj=s3.get_object(Bucket=LAKE, Key=artifact.removeprefix(f"s3://{LAKE}/"))["Body"], mode="r|gz"
    ) as tar:
        trained = next(
            json.load(tar.extractfile(m)) for m in tar if m.name.removeprefix("./") == "config.json"
        )
    profile = serving_profile.read(s3, LAKE, trained["model_version"])
    assert profile["config"]["thresholds"] == trained["thresholds"] and profile["model_data_url"] == artifact
    assert profile["fallback"]["model_version"] == f"{trained['model_version']}-fallback"
    # The same job retrained the return lane on the Glue job's return table and the gate judged it against
    # the serving return model on its own mature window: rejected here (a few hundred requests, fewer than
    # the 200 its test window needs), recorded with its numbers, and the promoted archive keeps serving
    # the serving return model.
    lane = record["lanes"]["return"]
    assert lane["retrained"] is True and lane["approval_status"] == "Rejected" and lane["serves"] == "serving"
    assert "window_too_small" in lane["reasons"]
    assert lane["numbers"]["candidate_version"] == f"{numbers['candidate_version']}-return"
    assert lane["numbers"]["champion_version"] == RETURN_TEST_VERSION
    assert 0 < lane["numbers"]["window"]["rows"] < 200
    assert 0 <= lane["numbers"]["candidate"]["roc_auc"] <= 1 and lane["numbers"]["champion"]["roc_auc"] > 0.9
    metadata = package["CustomerMetadataProperties"]
    assert metadata["return_gate_decision"] == "Rejected" and metadata["return_serves"] == "serving"
    assert metadata["return_gate_reasons"].split(",") == lane["reasons"]
    assert record["lanes"]["payment"] == {
        "serving_lane": False,
        "retrained": False,
        "serves": None,
    }
    archive = s3.get_object(Bucket=LAKE, Key=artifact.removeprefix(f"s3://{LAKE}/"))["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(archive)) as served:
        assert json.load(served.extractfile("return/config.json"))["model_version"] == RETURN_TEST_VERSION


def test_a_worse_candidate_is_registered_as_rejected_with_its_numbers_and_nothing_is_served(local_aws):
    s3, sagemaker = local_aws["s3"], local_aws["sagemaker"]
    # A model that cannot split (every leaf would need a million orders): one score for every order.
    local_aws["steps"]["sagemaker"].extra_hyperparameters = {**TRAINING, "min_child_weight": "1000000"}

    execution = run_execution(local_aws["sfn"], local_aws["machine"], "worse-1")

    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    assert entered_states(execution)[-3:] == ["RegisterModel", "Approved", "KeepServingModel"]
    package, record = the_decision(s3, sagemaker, "worse-1")
    assert package["ModelApprovalStatus"] == "Rejected"
    assert "roc_auc_worse" in record["reasons"]
    assert record["numbers"]["candidate"]["roc_auc"] == 0.5
    assert record["numbers"]["roc_auc_change"] < -0.01
    assert float(package["CustomerMetadataProperties"]["candidate_roc_auc"]) < float(
        package["CustomerMetadataProperties"]["champion_roc_auc"]
    )
    with pytest.raises(s3.exceptions.NoSuchKey):
        serving_metrics(s3)
    assert served_config(sagemaker) == BOOTSTRAP_CONFIG
    assert local_aws["steps"]["lambda"].invocations == ["gate"]
    # the return candidate (the same settings) was rejected too: no lane is promoted alone either
    assert record["lanes"]["return"]["approval_status"] == "Rejected" and "lane_promotion" not in record
    assert "Contents" not in s3.list_objects_v2(Bucket=LAKE, Prefix=lane_promotion.LANE_PROMOTIONS_PREFIX)


# Bounds under which the gate approves any return candidate with evidence: this lake's return window has
# about a hundred requests and its training split about a hundred (the lane's model learns little there),
# and what is under test is what happens after the gate approves a lane. The alert-rate ceiling (0.20)
# stays the default: the order candidate below fails it, the return candidate (its own cuts) does not.
LOOSE_BOUNDS = {
    "min_window_rows": 1,
    "min_window_positives": 1,
    "max_roc_auc_drop": 1.0,
    "max_pr_auc_drop": 1.0,
    "max_level_psi": 100.0,
    "max_alert_rate_ratio": 1000.0,
}


def test_an_approved_return_candidate_is_served_alone_when_the_order_candidate_is_rejected(local_aws):
    # Given a serving model that a pipeline run promoted (its archive in the lake's models/artifacts/,
    # which the gate may read), and bounds that approve the job's return candidate, in the job and the gate
    s3, sagemaker = local_aws["s3"], local_aws["sagemaker"]
    serving_url = f"s3://{LAKE}/models/artifacts/returnguard-dev-earlier-1/output/model.tar.gz"
    s3.copy_object(
        Bucket=LAKE,
        Key=serving_url.removeprefix(f"s3://{LAKE}/"),
        CopySource={"Bucket": LAKE, "Key": BOOTSTRAP_ARTIFACT},
    )
    sagemaker.delete_model(ModelName=BOOTSTRAP_MODEL)
    sagemaker.create_model(
        ModelName=BOOTSTRAP_MODEL,
        ExecutionRoleArn=SERVING_ROLE,
        PrimaryContainer={"Image": "xgboost", "ModelDataUrl": serving_url},
    )
    functions = local_aws["steps"]["lambda"].functions
    folder, env = functions[GATE_ARN]
    bounds = {**json.loads(env["RG_GATE_BOUNDS"]), **LOOSE_BOUNDS}
    functions[GATE_ARN] = (folder, {**env, "RG_GATE_BOUNDS": json.dumps(bounds)})
    # and an order candidate whose decision cut prices a missed abusive order at 10,000 good ones: it
    # alerts on a third of the orders (the return lane's cuts come from its own action costs)
    local_aws["steps"]["sagemaker"].extra_hyperparameters = {
        **TRAINING,
        "cost_false_negative": "10000",
        **{f"gate_{name}": str(value) for name, value in bounds.items()},
    }

    execution = run_execution(local_aws["sfn"], local_aws["machine"], "lanes-1")

    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    states = entered_states(execution)
    assert states[6:10] == ["RegisterModel", "Approved", "RegisterLanePromotion", "CreateModel"]
    assert states[-1] == "RecordServingMetrics"
    (record,) = gate_records(s3)
    assert record["approved"] is False and "alert_rate_too_high" in record["reasons"]
    lane = record["lanes"]["return"]
    assert lane["approval_status"] == "Approved" and lane["serves"] == "candidate"
    # The candidate stays Rejected; the combined archive is its own Approved package, and served
    by_status = {p["ModelApprovalStatus"]: p for p in packages(sagemaker)}
    assert sorted(by_status) == ["Approved", "Rejected"]
    combined = by_status["Approved"]
    metadata = combined["CustomerMetadataProperties"]
    promotion = record["lane_promotion"]
    url = f"s3://{LAKE}/{lane_promotion.LANE_PROMOTIONS_PREFIX}lanes-1/model.tar.gz"
    assert promotion["model_artifact"] == url and promotion["serving_artifact"] == serving_url
    version = f"v-serving+return-{lane['numbers']['candidate_version']}"
    assert promotion["model_version"] == metadata["model_version"] == version
    assert metadata["lane_promotion"] == "return" and metadata["order_model_version"] == "v-serving"
    assert metadata["rejected_candidate_version"] == record["numbers"]["candidate_version"]
    assert combined["InferenceSpecification"]["Containers"][0]["ModelDataUrl"] == url
    assert by_status["Rejected"]["CustomerMetadataProperties"]["gate_decision"] == "Rejected"
    assert served_config(sagemaker) == "returnguard-dev-lanes-1"
    model = sagemaker.describe_model(ModelName="returnguard-dev-lanes-1")
    assert model["PrimaryContainer"]["ModelDataUrl"] == url
    assert serving_metrics(s3)["model_version"] == version
    # the order model and its fallback byte for byte the serving ones; the return model the candidate's
    served, before = archive_files(s3, url), archive_files(s3, serving_url)
    candidate = archive_files(s3, record["candidate_artifact"])
    for name in ("xgboost-model.ubj", "fallback_model.json"):
        assert served[name] == before[name]
    assert served["return/xgboost-model.ubj"] == candidate["return/xgboost-model.ubj"]
    assert served["return/xgboost-model.ubj"] != before["return/xgboost-model.ubj"]
    # and the new version's serving profile is published: the return lane decides with its thresholds
    profile = serving_profile.read(s3, LAKE, version)
    assert profile["model_data_url"] == url
    thresholds = json.loads(before["config.json"])["thresholds"]
    assert profile["config"]["thresholds"] == thresholds  # not the rejected order candidate's cuts
    assert thresholds != json.loads(candidate["config.json"])["thresholds"]
    assert (
        profile["config"]["return"]["thresholds"] == json.loads(candidate["return/config.json"])["thresholds"]
    )


def test_an_approved_candidate_is_not_promoted_while_an_experiment_runs_and_the_refusal_is_recorded(
    local_aws,
):
    # Given an experiment on the endpoint (returnguard models experiment start): a challenger variant
    s3, sagemaker = local_aws["s3"], local_aws["sagemaker"]
    sagemaker.create_model(
        ModelName="returnguard-dev-challenger-v9",
        ExecutionRoleArn=SERVING_ROLE,
        PrimaryContainer={"Image": "xgboost", "ModelDataUrl": f"s3://{LAKE}/{BOOTSTRAP_ARTIFACT}"},
    )
    experiment.start(
        sagemaker,
        endpoint_name=ENDPOINT,
        config_name="returnguard-dev-exp",
        model_name="returnguard-dev-challenger-v9",
    )

    execution = run_execution(local_aws["sfn"], local_aws["machine"], "during-experiment-1")

    # the promote step refuses as `models promote` does; the run records why and ends without serving it
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    assert entered_states(execution)[-4:] == [
        "PromoteEndpoint",
        "PromotionRefused",
        "RecordRefusal",
        "KeepServingModelDuringExperiment",
    ]
    package, record = the_decision(s3, sagemaker, "during-experiment-1")
    assert package["ModelApprovalStatus"] == "Approved" and record["approved"] is True
    metadata = package["CustomerMetadataProperties"]
    assert metadata["promotion_refused"] == "experiment_running" and metadata["gate_decision"] == "Approved"
    assert served_config(sagemaker) == "returnguard-dev-exp"
    with pytest.raises(s3.exceptions.NoSuchKey):
        serving_metrics(s3)
    assert "Contents" not in s3.list_objects_v2(Bucket=LAKE, Prefix=serving_profile.PROFILES_PREFIX)


def test_a_serving_model_the_candidate_cannot_be_compared_with_fails_closed(local_aws):
    # Given a serving model whose archive does not open: nothing to compare the candidate with
    s3, sagemaker = local_aws["s3"], local_aws["sagemaker"]
    s3.put_object(Bucket=LAKE, Key=BOOTSTRAP_ARTIFACT, Body=b"not a model archive")

    execution = run_execution(local_aws["sfn"], local_aws["machine"], "nochampion-1")

    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    assert entered_states(execution)[-1] == "KeepServingModel"
    package, record = the_decision(s3, sagemaker, "nochampion-1")
    assert package["ModelApprovalStatus"] == "Rejected"
    # and no lane of the archive could be resolved: recorded as such, never carried silently
    assert record["reasons"] == ["champion_unscored", "return_lane_unresolved", "payment_lane_unresolved"]
    assert served_config(sagemaker) == BOOTSTRAP_CONFIG


def test_a_rolled_back_endpoint_update_fails_the_run_and_records_nothing(local_aws):
    s3, sagemaker = local_aws["s3"], local_aws["sagemaker"]
    moto_sagemaker.FAIL_VARIANTS_OF.add("returnguard-dev-rollback-1")  # SageMaker rolls the update back

    execution = run_execution(local_aws["sfn"], local_aws["machine"], "rollback-1")

    assert execution["status"] == "FAILED"
    assert execution["error"] == "EndpointUpdateFailed"
    states = entered_states(execution)
    assert "PromoteEndpoint" in states
    assert "RecordServingMetrics" not in states
    with pytest.raises(s3.exceptions.NoSuchKey):
        serving_metrics(s3)
    assert served_config(sagemaker) == BOOTSTRAP_CONFIG


def test_a_failing_feature_build_fails_the_run_before_anything_is_trained(local_aws):
    s3, sagemaker = local_aws["s3"], local_aws["sagemaker"]
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=LAKE, Prefix="raw/"):  # 1,000 a page
        s3.delete_objects(Bucket=LAKE, Delete={"Objects": [{"Key": o["Key"]} for o in page["Contents"]]})

    execution = run_execution(local_aws["sfn"], local_aws["machine"], "nofeatures-1")

    assert execution["status"] == "FAILED"
    assert execution["error"] == "States.TaskFailed"
    assert entered_states(execution) == ["BuildFeatures"]
    assert local_aws["steps"]["sagemaker"].jobs == []
    assert served_config(sagemaker) == BOOTSTRAP_CONFIG
    assert packages(sagemaker) == [] and gate_records(s3) == []


def test_a_training_task_that_does_not_wait_fails_at_the_gate_as_it_would_in_aws(local_aws):
    sagemaker = local_aws["sagemaker"]

    execution = run_execution(local_aws["sfn"], local_aws["not_waiting"], "notsync-1")

    assert execution["status"] == "FAILED"
    assert entered_states(execution)[-1] == "GateCandidate"
    assert served_config(sagemaker) == BOOTSTRAP_CONFIG
    assert packages(sagemaker) == []
