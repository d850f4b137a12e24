import logging
import os
import uuid

INSTANCE = uuid.uuid4().hex  # module-level code: runs once per init
calls = 0
logger = logging.getLogger()
logger.setLevel(logging.INFO)
print("loaded")


def handler(event, context):
    global calls
    calls += 1
    print(f"handling {context.aws_request_id}")
    logger.info("logged %s", calls)
    return {"instance": INSTANCE, "calls": calls, "pid": os.getpid()}
