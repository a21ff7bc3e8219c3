"""Monitoring stack: one dashboard and alarms to a KMS-encrypted SNS topic (email from context)."""

from __future__ import annotations

from dataclasses import dataclass, field

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as assets
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from stacks.config import StageConfig
from stacks.constructs import dead_letter_queue
from stacks.drift import DRIFT_THRESHOLD, DriftJob

NAMESPACE = "ReturnGuard"


@dataclass(frozen=True)
class MonitoringProps:
    config: StageConfig
    key: kms.IKey
    api: apigw.RestApi
    score_function: lambda_.IFunction
    stream_function: lambda_.IFunction
    stream: kinesis.IStream
    dead_letters: sqs.IQueue
    endpoint_name: str
    # the stage's other dead-letter queues, by what fails into them: each gets an alarm like the stream's
    more_dead_letters: tuple[tuple[str, sqs.IQueue], ...] = field(default=())
    archive_function: lambda_.IFunction | None = None
    archive_dead_letters: sqs.IQueue | None = None
    # the drift job: data capture / model artifacts in the lake, the audit trail, the bootstrap model
    lake: s3.IBucket | None = None
    audit_table: dynamodb.ITable | None = None
    bootstrap_model: assets.Asset | None = None
    bootstrap_endpoint_config_arn: str = ""  # the Ml stack's config and model, which the drift job reads
    bootstrap_model_arn: str = ""
    # the batch lane's state machine (seed 003): an execution that fails or times out pages the alerts topic
    batch_state_machine: sfn.IStateMachine | None = None


class MonitoringStack(Stack):
    def __init__(self, scope: Construct, id: str, *, props: MonitoringProps, **kwargs) -> None:
        super().__init__(scope, id, **kwargs)
        config = props.config
        self.topic = sns.Topic(
            self, "Alerts", master_key=props.key, enforce_ssl=True, display_name="ReturnGuard alerts"
        )
        if config.alert_email:
            self.topic.add_subscription(
                subscriptions.EmailSubscription(
                    config.alert_email,
                    dead_letter_queue=dead_letter_queue(
                        self, "AlertDeadLetters", key=props.key, of="the alert e-mail subscription"
                    ),
                )
            )

        api_name = props.api.rest_api_name
        stage = props.api.deployment_stage.stage_name
        api_dims = {"ApiName": api_name, "Stage": stage}
        latency = cw.Metric(
            namespace="AWS/ApiGateway", metric_name="Latency", dimensions_map=api_dims, statistic="p95"
        )
        server_errors = cw.Metric(
            namespace="AWS/ApiGateway", metric_name="5XXError", dimensions_map=api_dims, statistic="Sum"
        )
        endpoint_dims = {"EndpointName": props.endpoint_name, "VariantName": "primary"}
        endpoint_errors = cw.MathExpression(
            expression="e4 + e5",
            using_metrics={
                "e4": cw.Metric(
                    namespace="AWS/SageMaker",
                    metric_name="Invocation4XXErrors",
                    dimensions_map=endpoint_dims,
                    statistic="Sum",
                ),
                "e5": cw.Metric(
                    namespace="AWS/SageMaker",
                    metric_name="Invocation5XXErrors",
                    dimensions_map=endpoint_dims,
                    statistic="Sum",
                ),
            },
            label="endpoint errors",
            period=Duration.minutes(5),
        )
        iterator_age = props.stream_function.metric("IteratorAge", statistic="Maximum")
        dlq_depth = props.dead_letters.metric_approximate_number_of_messages_visible(statistic="Maximum")
        service_dims = {"service": "returnguard"}

        def series(name: str, dimension: str | None, values: tuple[str, ...], statistic: str = "Sum") -> list:
            return [
                cw.Metric(
                    namespace=NAMESPACE,
                    metric_name=name if dimension else value,
                    dimensions_map={**service_dims, dimension: value} if dimension else service_dims,
                    statistic=statistic,
                    label=value,
                )
                for value in values
            ]

        levels = ("low", "medium", "high", "critical")
        decisions = series("Decisions", "risk_level", levels)
        actions = series(
            "DecisionsByAction", "action", ("approve", "otp_verification", "manual_review", "block")
        )
        decision_latency = series("DecisionLatency", "risk_level", levels, statistic="p99")
        fallbacks = series("", None, ("ModelFallback", "ExplanationFallback"))
        stream_records = series(
            "", None, ("EventsApplied", "DuplicateEvents", "PoisonRecords", "RecordsRetried")
        )

        self.dashboard = cw.Dashboard(self, "Dashboard", dashboard_name=f"{config.prefix}-overview")
        self.dashboard.add_widgets(
            cw.GraphWidget(title="API latency p95 (ms)", left=[latency], width=12),
            cw.GraphWidget(title="Decisions by risk level", left=decisions, stacked=True, width=12),
            cw.GraphWidget(title="Decisions by action", left=actions, stacked=True, width=12),
            cw.GraphWidget(title="Decision time in the function p99 (ms)", left=decision_latency, width=12),
            cw.GraphWidget(title="Fallbacks (model, explanation)", left=fallbacks, width=8),
            cw.GraphWidget(title="Endpoint errors", left=[endpoint_errors], width=8),
            cw.GraphWidget(
                title="Stream iterator age (ms) / DLQ depth", left=[iterator_age], right=[dlq_depth], width=8
            ),
            cw.GraphWidget(
                title="Stream records: applied, duplicate, poison, retried", left=stream_records, width=12
            ),
        )

        action = cw_actions.SnsAction(self.topic)
        alarms = [
            cw.Alarm(
                self,
                "ApiLatency",
                metric=latency,
                threshold=1000,
                evaluation_periods=3,
                alarm_description="API p95 latency above 1 s",
            ),
            cw.Alarm(
                self,
                "Api5xx",
                metric=server_errors,
                threshold=5,
                evaluation_periods=1,
                alarm_description="API 5XX responses",
            ),
            cw.Alarm(
                self,
                "EndpointErrors",
                metric=endpoint_errors,
                threshold=5,
                evaluation_periods=1,
                alarm_description="SageMaker endpoint errors",
            ),
            cw.Alarm(
                self,
                "StreamIteratorAge",
                metric=iterator_age,
                threshold=60_000,
                evaluation_periods=3,
                alarm_description="Stream consumer more than 60 s behind",
            ),
            cw.Alarm(
                self,
                "DeadLetters",
                metric=dlq_depth,
                threshold=0,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                evaluation_periods=1,
                alarm_description="Stream events failed into the DLQ",
            ),
            cw.Alarm(
                self,
                "ScoreErrors",
                metric=props.score_function.metric_errors(statistic="Sum"),
                threshold=5,
                evaluation_periods=1,
                alarm_description="score function errors",
            ),
        ]
        for of, queue in props.more_dead_letters:
            alarms.append(
                cw.Alarm(
                    self,
                    "DeadLettersOf" + "".join(word.title() for word in of.split()),
                    metric=queue.metric_approximate_number_of_messages_visible(statistic="Maximum"),
                    threshold=0,
                    comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                    evaluation_periods=1,
                    alarm_description=f"Messages in the dead-letter queue of {of}",
                )
            )
        if props.archive_function is not None and props.archive_dead_letters is not None:
            alarms += _archive_alarms(self, props.archive_function, props.archive_dead_letters)
            self.dashboard.add_widgets(
                cw.GraphWidget(
                    title="Decision archive: iterator age (ms) / failed batches",
                    left=[props.archive_function.metric("IteratorAge", statistic="Maximum")],
                    right=[
                        props.archive_dead_letters.metric_approximate_number_of_messages_visible(
                            statistic="Maximum"
                        )
                    ],
                    width=12,
                )
            )
        if props.batch_state_machine is not None:
            alarms += _batch_alarms(self, props.batch_state_machine)
        if props.lake is not None and props.audit_table is not None and props.bootstrap_model is not None:
            self.drift = DriftJob(
                self,
                "Drift",
                config=config,
                key=props.key,
                lake=props.lake,
                audit_table=props.audit_table,
                endpoint_name=props.endpoint_name,
                bootstrap_model=props.bootstrap_model,
                bootstrap_endpoint_config_arn=props.bootstrap_endpoint_config_arn,
                bootstrap_model_arn=props.bootstrap_model_arn,
            )
            alarms += _drift_alarms(self, self.dashboard, service_dims)
            alarms.append(
                cw.Alarm(
                    self,
                    "DriftScheduleDeadLetters",
                    metric=self.drift.dead_letters.metric_approximate_number_of_messages_visible(
                        statistic="Maximum"
                    ),
                    threshold=0,
                    comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                    evaluation_periods=1,
                    alarm_description="Messages in the dead-letter queue of the drift job's daily schedule",
                )
            )
        for alarm in alarms:
            alarm.add_alarm_action(action)
        CfnOutput(
            self,
            "DashboardUrl",
            value=f"https://{self.region}.console.aws.amazon.com/cloudwatch/home?region={self.region}#dashboards:name={config.prefix}-overview",
        )


def _archive_alarms(
    scope: Construct, function: lambda_.IFunction, dead_letters: sqs.IQueue
) -> list[cw.Alarm]:
    """Decisions the TTL removed live only in the stream (24 h) until archived: page well before that."""
    return [
        cw.Alarm(
            scope,
            "ArchiveIteratorAge",
            metric=function.metric("IteratorAge", statistic="Maximum", period=Duration.minutes(5)),
            threshold=3_600_000,
            evaluation_periods=1,
            alarm_description="Decision archive more than 1 h behind the decisions stream (records leave it "
            "after 24 h: expired decisions not archived by then are lost)",
        ),
        cw.Alarm(
            scope,
            "ArchiveDeadLetters",
            metric=dead_letters.metric_approximate_number_of_messages_visible(statistic="Maximum"),
            threshold=0,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            alarm_description="A batch of expired decisions left the stream unarchived (the message names it)",
        ),
    ]


def _batch_alarms(scope: Construct, machine: sfn.IStateMachine) -> list[cw.Alarm]:
    """A failed batch execution already tells the batch topic (PublishFailure); one that timed out (the
    3 h claim lease) tells no one. Both page the operators here. Aborted runs are a person's own StopExecution."""
    five_minutes = Duration.minutes(5)
    return [
        cw.Alarm(
            scope,
            name,
            metric=metric,
            threshold=0,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,  # no upload, no datapoint
            alarm_description=description,
        )
        for name, metric, description in (
            (
                "BatchExecutionsFailed",
                machine.metric_failed(statistic="Sum", period=five_minutes),
                "A batch scoring execution failed: a file was not scored (its claim was released; the batch "
                "topic's batch_failed alert names the file and the error)",
            ),
            (
                "BatchExecutionsTimedOut",
                machine.metric_timed_out(statistic="Sum", period=five_minutes),
                "A batch scoring execution timed out after 3 h: no alert was published (its file's claim "
                "expired with it: uploading the file again retries it)",
            ),
        )
    ]


def _drift_alarms(scope: Construct, dashboard: cw.Dashboard, service_dims: dict[str, str]) -> list[cw.Alarm]:
    """The daily drift report's numbers (returnguard/aws/drift_job.py): an alarm past the PSI threshold."""
    day = Duration.days(1)
    feature = cw.Metric(
        namespace=NAMESPACE,
        metric_name="DriftMaxFeaturePSI",
        dimensions_map=service_dims,
        statistic="Maximum",
        period=day,
    )
    score = cw.Metric(
        namespace=NAMESPACE,
        metric_name="DriftScorePSI",
        dimensions_map=service_dims,
        statistic="Maximum",
        period=day,
    )
    rows = cw.Metric(
        namespace=NAMESPACE,
        metric_name="DriftLiveRows",
        dimensions_map=service_dims,
        statistic="Maximum",
        period=day,
    )
    threshold = cw.HorizontalAnnotation(value=DRIFT_THRESHOLD, label="drifted")
    dashboard.add_widgets(
        cw.GraphWidget(
            title="Drift: PSI of the worst feature and of the score (daily)",
            left=[feature, score],
            left_annotations=[threshold],
            width=12,
        ),
        cw.GraphWidget(title="Drift: live rows compared (daily)", left=[rows], width=6),
        cw.GraphWidget(
            title="Drift: PSI per feature (daily)",
            left=[
                cw.MathExpression(
                    expression=f"SEARCH('{{{NAMESPACE},feature,service}} MetricName=\"DriftFeaturePSI\"', 'Maximum', 86400)",
                    label="",
                    period=day,
                )
            ],
            left_annotations=[threshold],
            width=6,
        ),
    )
    return [
        cw.Alarm(
            scope,
            name,
            metric=metric,
            threshold=DRIFT_THRESHOLD,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=1,
            # no report (no traffic, too few rows) is no evidence of drift
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            alarm_description=f"{what} PSI at or above {DRIFT_THRESHOLD} against the serving model's training "
            "window (processed/drift/ has the day's report)",
        )
        for name, metric, what in (
            ("FeatureDrift", feature, "A feature's"),
            ("ScoreDrift", score, "The score's"),
        )
    ]
