"""The function's log as Lambda's Python runtime writes it.

stdout and stderr become line-buffered (the agent's log interleaves whole lines), and the root
logger gets Lambda's format, so ``logging.getLogger().info(...)`` after ``setLevel(INFO)`` prints
``[INFO]	2024-05-01T10:00:00.123Z	<request id>	message`` as it does on Lambda.
"""

from __future__ import annotations

import io
import logging
import sys
import time

FORMAT = "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s"


class RequestIdFilter(logging.Filter):
    """Stamps each record with the id of the invocation being served."""

    def __init__(self) -> None:
        super().__init__()
        self.request_id = ""

    def filter(self, record: logging.LogRecord) -> bool:
        record.aws_request_id = self.request_id
        return True


def setup() -> RequestIdFilter:
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(line_buffering=True)
    formatter = logging.Formatter(FORMAT, "%Y-%m-%dT%H:%M:%S")
    formatter.converter = time.gmtime
    request_ids = RequestIdFilter()
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    handler.addFilter(request_ids)
    logging.getLogger().addHandler(handler)
    return request_ids
