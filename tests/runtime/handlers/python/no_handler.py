def other(event, context):
    pass
