def handler(event, context):
    return {"got": event["n"]}
