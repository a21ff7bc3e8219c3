"""ETL stack: Glue catalog and crawlers for raw/ and processed/, Glue 5.0 jobs for features and rules,
`returnguard/` shipped as a zip in --extra-py-files, bookmarks, KMS security configuration."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Annotations, Fn, Stack
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as assets
from constructs import Construct

from stacks.config import StageConfig
from stacks.constructs import S3_KMS_GRANT_ACTIONS, grant_asset_read, log_group, suppress
from stacks.packaging import domain_zip, glue_script


@dataclass(frozen=True)
class EtlProps:
    config: StageConfig
    key: kms.IKey
    lake: s3.IBucket


class EtlStack(Stack):
    def __init__(self, scope: Construct, id: str, *, props: EtlProps, **kwargs) -> None:
        super().__init__(scope, id, **kwargs)
        config = props.config
        self.database_name = config.prefix.replace("-", "_")
        self.database = glue.CfnDatabase(
            self,
            "Database",
            catalog_id=self.account,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=self.database_name, description="ReturnGuard lake: raw/ and processed/"
            ),
        )
        self.security_configuration = glue.CfnSecurityConfiguration(
            self,
            "SecurityConfiguration",
            name=f"{config.prefix}-glue",
            encryption_configuration=glue.CfnSecurityConfiguration.EncryptionConfigurationProperty(
                s3_encryptions=[
                    glue.CfnSecurityConfiguration.S3EncryptionProperty(
                        s3_encryption_mode="SSE-KMS", kms_key_arn=props.key.key_arn
                    )
                ],
                cloud_watch_encryption=glue.CfnSecurityConfiguration.CloudWatchEncryptionProperty(
                    cloud_watch_encryption_mode="SSE-KMS", kms_key_arn=props.key.key_arn
                ),
                job_bookmarks_encryption=glue.CfnSecurityConfiguration.JobBookmarksEncryptionProperty(
                    job_bookmarks_encryption_mode="CSE-KMS", kms_key_arn=props.key.key_arn
                ),
            ),
        )

        self.role = iam.Role(
            self,
            "GlueRole",
            assumed_by=iam.ServicePrincipal("glue.amazonaws.com"),
            description=f"{config.prefix} Glue jobs and crawlers",
        )
        props.lake.grant_read(self.role, "raw/*")
        props.lake.grant_read(self.role, "external/*")
        props.lake.grant_read(self.role, "processed/*")
        props.lake.grant_put(self.role, "processed/*")
        # Spark's overwrite mode deletes a job's previous output. s3:DeleteObject only: in the versioned lake
        # that leaves a delete marker, and the role cannot delete versions (s3:DeleteObjectVersion).
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:DeleteObject"], resources=[props.lake.arn_for_objects("processed/*")]
            )
        )
        props.key.grant_encrypt_decrypt(self.role)
        catalog = f"arn:{self.partition}:glue:{self.region}:{self.account}"
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "glue:GetDatabase",
                    "glue:GetTable",
                    "glue:GetTables",
                    "glue:CreateTable",
                    "glue:UpdateTable",
                    "glue:GetPartition",
                    "glue:GetPartitions",
                    "glue:BatchCreatePartition",
                    "glue:BatchGetPartition",
                    "glue:CreatePartition",
                    "glue:UpdatePartition",
                    "glue:GetSecurityConfiguration",
                    "glue:GetJobBookmark",
                ],
                resources=[
                    f"{catalog}:catalog",
                    f"{catalog}:database/{self.database_name}",
                    f"{catalog}:table/{self.database_name}/*",
                    f"{catalog}:job/{config.prefix}-*",
                ],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "logs:CreateLogGroup",
                    "logs:CreateLogStream",
                    "logs:PutLogEvents",
                    "logs:AssociateKmsKey",
                ],
                resources=[f"arn:{self.partition}:logs:{self.region}:{self.account}:log-group:/aws-glue/*"],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": "Glue"}},
            )
        )

        # The log groups Glue writes to under this security configuration (CloudWatch encryption on): Glue
        # would create them itself, with no retention and outside the stack. Jobs and crawlers wait for them.
        security = self.security_configuration.ref
        role_name = self.role.role_name
        self.log_groups = [
            log_group(self, id_, config=config, key=props.key, name=Fn.join("", parts))
            for id_, parts in (
                ("JobOutputLogs", ["/aws-glue/jobs/", security, "-role/", role_name, "/output"]),
                ("JobErrorLogs", ["/aws-glue/jobs/", security, "-role/", role_name, "/error"]),
                ("JobContinuousLogs", ["/aws-glue/jobs/logs-v2-", security]),
                ("CrawlerLogs", ["/aws-glue/crawlers-role/", role_name, "-", security]),
            )
        ]
        self.crawlers: dict[str, glue.CfnCrawler] = {}
        for name, prefix in (("raw", "raw/"), ("processed", "processed/")):
            crawler = self.crawlers[name] = glue.CfnCrawler(
                self,
                f"{name.title()}Crawler",
                name=f"{config.prefix}-{name}",
                role=self.role.role_arn,
                # Refs, not the names as text: CloudFormation then creates the database and the security
                # configuration before the crawlers and jobs that use them
                database_name=self.database.ref,
                table_prefix=f"{name}_",
                crawler_security_configuration=self.security_configuration.ref,
                targets=glue.CfnCrawler.TargetsProperty(
                    s3_targets=[
                        glue.CfnCrawler.S3TargetProperty(
                            path=props.lake.s3_url_for_object(prefix),
                            # predictions/ (the decisions archive, batch predictions) have their own tables
                            exclusions=["predictions/**"] if name == "processed" else None,
                        )
                    ]
                ),
                schema_change_policy=glue.CfnCrawler.SchemaChangePolicyProperty(
                    update_behavior="UPDATE_IN_DATABASE", delete_behavior="LOG"
                ),
                recrawl_policy=glue.CfnCrawler.RecrawlPolicyProperty(
                    recrawl_behavior="CRAWL_NEW_FOLDERS_ONLY"
                ),
            )
            for group in self.log_groups:
                crawler.node.add_dependency(group)

        domain = assets.Asset(self, "DomainZip", path=str(domain_zip()))
        grant_asset_read(domain, self.role)
        self.jobs: dict[str, glue.CfnJob] = {}
        for name, script_name, description, job_arguments in (
            ("features", "features.py", "raw/ -> point-in-time features and training data (processed/)", {}),
            (
                "rules",
                "rules.py",
                "rules engine: blocklist, amount, velocity, risk categories (processed/)",
                {"--velocity_orders": str(config.velocity_orders)},  # the API's policy uses the same count
            ),
        ):
            path, present = glue_script(script_name)
            if not present:
                Annotations.of(self).add_warning_v2(
                    f"returnguard:glue-{name}",
                    f"glue_jobs/{script_name} is missing: the job ships a failing stub",
                )
            script = assets.Asset(self, f"{name.title()}Script", path=str(path))
            grant_asset_read(script, self.role)
            self.jobs[name] = glue.CfnJob(
                self,
                f"{name.title()}Job",
                name=f"{config.prefix}-{name}",
                description=description,
                role=self.role.role_arn,
                glue_version="5.0",
                worker_type="G.1X",
                number_of_workers=config.glue_workers,
                timeout=120,
                max_retries=1,
                security_configuration=self.security_configuration.ref,
                command=glue.CfnJob.JobCommandProperty(
                    name="glueetl", python_version="3", script_location=script.s3_object_url
                ),
                execution_property=glue.CfnJob.ExecutionPropertyProperty(max_concurrent_runs=1),
                default_arguments={
                    "--job-bookmark-option": "job-bookmark-enable",
                    "--extra-py-files": domain.s3_object_url,
                    "--enable-metrics": "true",
                    "--enable-continuous-cloudwatch-log": "true",
                    "--enable-glue-datacatalog": "true",
                    "--lake_bucket": props.lake.bucket_name,
                    "--database": self.database.ref,
                    "--raw_path": props.lake.s3_url_for_object("raw"),
                    "--processed_path": props.lake.s3_url_for_object("processed"),
                    **job_arguments,
                },
            )
            for group in self.log_groups:
                self.jobs[name].node.add_dependency(group)
        self.features_job_name = f"{config.prefix}-features"
        self.triggers = _nightly_triggers(self, config, self.jobs["rules"], self.crawlers)
        suppress(
            self.role,
            "AwsSolutions-IAM5",
            "Glue reads raw/, external/ and processed/ and writes (and, for Spark's overwrite, deletes "
            "current objects) under processed/ only, through CDK's read/put grants (GetObject*, GetBucket*, "
            "List*, PutObject*, Abort*); KMS data-key actions on the stage key; catalog tables of its own "
            "database; /aws-glue/* log groups; PutMetricData is namespace-conditioned (no resource-level "
            "permissions).",
            applies_to=[
                "Resource::*",
                *S3_KMS_GRANT_ACTIONS,
                {"regex": "/^Resource::.*Lake.*\\.Arn.*\\/(raw|external|processed)\\/\\*$/"},
                {"regex": "/^Resource::arn:<AWS::Partition>:glue:.*:(table|job)\\/.*\\*$/"},
                {"regex": "/^Resource::arn:<AWS::Partition>:logs:.*:log-group:\\/aws-glue\\/\\*$/"},
            ],
        )


NIGHTLY_SCHEDULE = (
    "cron(0 2 * * ? *)"  # 02:00 UTC, after the day's orders (docs/cost-model.md prices daily runs)
)


def _nightly_triggers(
    scope: Construct, config: StageConfig, rules: glue.CfnJob, crawlers: dict[str, glue.CfnCrawler]
) -> list[glue.CfnTrigger]:
    """The rules job every night, then both crawlers once it succeeded (so processed/rules/ is catalogued).
    Created in every stage; started only where `etl_schedule` is on (prod), so dev runs them by hand."""
    nightly = glue.CfnTrigger(
        scope,
        "NightlyRules",
        name=f"{config.prefix}-nightly-rules",
        description="Runs the rules job every night",
        type="SCHEDULED",
        schedule=NIGHTLY_SCHEDULE,
        start_on_creation=config.etl_schedule_enabled,
        actions=[glue.CfnTrigger.ActionProperty(job_name=rules.ref)],
    )
    catalogue = glue.CfnTrigger(
        scope,
        "CrawlAfterRules",
        name=f"{config.prefix}-crawl-after-rules",
        description="Crawls raw/ and processed/ after the nightly rules job succeeded",
        type="CONDITIONAL",
        start_on_creation=config.etl_schedule_enabled,
        predicate=glue.CfnTrigger.PredicateProperty(
            conditions=[
                glue.CfnTrigger.ConditionProperty(
                    job_name=rules.ref, logical_operator="EQUALS", state="SUCCEEDED"
                )
            ]
        ),
        actions=[glue.CfnTrigger.ActionProperty(crawler_name=c.ref) for c in crawlers.values()],
    )
    return [nightly, catalogue]
