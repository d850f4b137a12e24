def handler(event, context):
    raise TypeError("bad")
