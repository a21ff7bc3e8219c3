"""retraining_cleanup Lambda: the dev `Ml` stack's custom resource (provider framework `onEvent`).

Create and Update do nothing. Delete removes what the retraining state machine created outside
CloudFormation (returnguard/aws/retraining_cleanup.py), so `cdk destroy` can delete the model package group
and leaves nothing that bills. An error fails the Delete: the stack stops in DELETE_FAILED, visibly, rather
than leaving endpoints behind; a retried destroy runs the cleanup again (every step is idempotent).
"""

from __future__ import annotations

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from returnguard.aws.clients import CONTROL, bounded_client
from returnguard.aws.retraining_cleanup import delete_retraining_leftovers

logger = Logger(service="retraining_cleanup")
sagemaker = bounded_client("sagemaker", CONTROL)
logs = bounded_client("logs", CONTROL)


@logger.inject_lambda_context
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    properties = event["ResourceProperties"]
    physical_id = f"{properties['Prefix']}-retraining-cleanup"
    if event["RequestType"] != "Delete":
        return {"PhysicalResourceId": physical_id}
    report = delete_retraining_leftovers(
        sagemaker,
        logs,
        prefix=properties["Prefix"],
        model_package_group=properties["ModelPackageGroupName"],
        keep_endpoints=tuple(properties.get("KeepEndpoints", [])),
    )
    logger.info("deleted what retraining created", extra=report.as_dict())
    return {"PhysicalResourceId": physical_id, "Data": report.as_dict()}
