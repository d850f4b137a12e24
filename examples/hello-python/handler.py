"""The hello-world Lambda handler: runs unchanged on AWS Lambda and on Lambdalet."""

import json


def handler(event, context):
    name = (event.get("queryStringParameters") or {}).get("name", "world")
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({"message": f"hello, {name}", "requestId": context.aws_request_id}),
    }
