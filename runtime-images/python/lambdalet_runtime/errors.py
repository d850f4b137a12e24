"""Error documents in the shape Lambda's Python runtime posts and callers receive::

    {"errorMessage": "...", "errorType": "...", "requestId": "...", "stackTrace": ["  File ..."]}

Errors::

    Exception
    └── FaultError          the runtime's own verdict, with a Lambda error type:
                            Runtime.ImportModuleError, Runtime.HandlerNotFound,
                            Runtime.MalformedHandlerName, Runtime.UserCodeSyntaxError,
                            Runtime.UnmarshalError, Runtime.MarshalError

Any other exception from user code keeps its class name as the error type. Stack traces show the
user's frames only, not the runtime's.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any

_RUNTIME_DIR = os.path.dirname(os.path.realpath(__file__)) + os.sep


class FaultError(Exception):
    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


def _user_frames(exc: BaseException) -> list[str]:
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if not frame.filename.startswith("<frozen ")
        and not os.path.realpath(frame.filename).startswith(_RUNTIME_DIR)
    ]
    return traceback.format_list(frames)


def error_doc(exc: BaseException, request_id: str) -> dict[str, Any]:
    if isinstance(exc, FaultError):
        error_type, message, stack = exc.error_type, exc.message, []
    else:
        error_type, message, stack = type(exc).__name__, str(exc), _user_frames(exc)
    return {
        "errorMessage": message,
        "errorType": error_type,
        "requestId": request_id,
        "stackTrace": stack,
    }


def log_error(doc: dict[str, Any]) -> None:
    """Write an error to the function's log, as Lambda's Python runtime does."""
    lines = [f"[ERROR] {doc['errorType']}: {doc['errorMessage']}"]
    if doc["stackTrace"]:
        lines.append("Traceback (most recent call last):")
        lines.extend(line.rstrip("\n") for line in doc["stackTrace"])
    print("\n".join(lines), file=sys.stderr, flush=True)
