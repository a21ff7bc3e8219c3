"""Placeholder: the stream function is being written; the CDK stack stages this folder."""


def lambda_handler(event, context):
    raise NotImplementedError("stream handler not written yet")
