def handler(event, context):
    return "x" * event["size"]
