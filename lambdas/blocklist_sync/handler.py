"""Placeholder: the blocklist_sync function is being written; the CDK stack stages this folder."""


def lambda_handler(event, context):
    raise NotImplementedError("blocklist_sync handler not written yet")
