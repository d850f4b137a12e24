"""The ``context`` object a handler receives, with the attributes of Lambda's Python runtime.

``FunctionInfo`` is what stays the same for every invocation (read once from the environment the
agent sets); ``LambdaContext`` adds one invocation's request id, deadline, client context and
Cognito identity. The identity and client context are plain objects, as on Lambda, so code that
inspects them (``vars(context.identity)``) works the same.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from typing import Any, NamedTuple

from lambdalet_runtime.api import Invocation


class FunctionInfo(NamedTuple):
    function_name: str
    function_version: str
    memory_limit_in_mb: int
    log_group_name: str
    log_stream_name: str

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> FunctionInfo:
        return cls(
            function_name=env.get("AWS_LAMBDA_FUNCTION_NAME", ""),
            function_version=env.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            memory_limit_in_mb=int(env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")),
            log_group_name=env.get("AWS_LAMBDA_LOG_GROUP_NAME", ""),
            log_stream_name=env.get("AWS_LAMBDA_LOG_STREAM_NAME", ""),
        )


class CognitoIdentity:
    def __init__(self, fields: Mapping[str, Any]) -> None:
        self.cognito_identity_id: str | None = fields.get("cognitoIdentityId")
        self.cognito_identity_pool_id: str | None = fields.get("cognitoIdentityPoolId")


class Client:
    def __init__(self, fields: Mapping[str, Any]) -> None:
        self.installation_id: str | None = fields.get("installation_id")
        self.app_title: str | None = fields.get("app_title")
        self.app_version_name: str | None = fields.get("app_version_name")
        self.app_version_code: str | None = fields.get("app_version_code")
        self.app_package_name: str | None = fields.get("app_package_name")


class ClientContext:
    def __init__(self, fields: Mapping[str, Any]) -> None:
        client = fields.get("client")
        self.client = Client(client) if isinstance(client, dict) else None
        self.custom: dict[str, Any] | None = fields.get("custom")
        self.env: dict[str, Any] | None = fields.get("env")


def _object(text: str | None) -> dict[str, Any] | None:
    """A JSON object from a header; None when absent or malformed."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class LambdaContext:
    """Information about the invocation, the function and the execution environment."""

    def __init__(self, info: FunctionInfo, invocation: Invocation) -> None:
        self.aws_request_id = invocation.request_id
        self.function_name = info.function_name
        self.function_version = info.function_version
        self.invoked_function_arn = invocation.invoked_function_arn
        self.memory_limit_in_mb = info.memory_limit_in_mb
        self.log_group_name = info.log_group_name
        self.log_stream_name = info.log_stream_name
        self.identity = CognitoIdentity(_object(invocation.cognito_identity) or {})
        client_context = _object(invocation.client_context)
        self.client_context = None if client_context is None else ClientContext(client_context)
        self._deadline_ms = invocation.deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the invocation times out (0 once it has)."""
        return max(0, self._deadline_ms - int(time.time() * 1000))

    def log(self, message: str) -> None:
        """Write to the function's log (as Lambda's ``context.log`` does)."""
        sys.stdout.write(message)
        sys.stdout.flush()

    def __repr__(self) -> str:
        return (
            f"LambdaContext(aws_request_id={self.aws_request_id!r}, "
            f"function_name={self.function_name!r}, "
            f"function_version={self.function_version!r}, "
            f"invoked_function_arn={self.invoked_function_arn!r}, "
            f"memory_limit_in_mb={self.memory_limit_in_mb})"
        )
