"""Placeholder: the score function is being written; the CDK stack stages this folder."""


def lambda_handler(event, context):
    raise NotImplementedError("score handler not written yet")
