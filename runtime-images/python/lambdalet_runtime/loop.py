"""The runtime's main loop: init once, then serve one invocation at a time.

Init imports the handler (module-level code runs here, and only here); a failure is posted to
``/runtime/init/error`` and the process exits, and the agent starts a new one later. Each
invocation: decode the JSON event, call ``handler(event, context)``, encode the result as JSON and
post it; an exception is posted to ``/invocation/{id}/error`` instead.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from lambdalet_runtime.api import Invocation, RuntimeAPI
from lambdalet_runtime.context import FunctionInfo, LambdaContext
from lambdalet_runtime.errors import FaultError, error_doc, log_error
from lambdalet_runtime.handler import Handler, load_handler
from lambdalet_runtime.logs import setup


def main() -> int:
    request_ids = setup()
    env = os.environ
    api = RuntimeAPI(env["AWS_LAMBDA_RUNTIME_API"])
    info = FunctionInfo.from_env(env)
    task_root = env.get("LAMBDA_TASK_ROOT", "/var/task")
    if task_root not in sys.path:
        sys.path.insert(0, task_root)
    try:
        handler = load_handler(env.get("_HANDLER", ""))
    except Exception as exc:
        doc = error_doc(exc, "")
        log_error(doc)
        api.init_error(doc)
        return 1
    while True:
        invocation = api.next()
        request_ids.request_id = invocation.request_id
        serve(api, handler, info, invocation)


def serve(api: RuntimeAPI, handler: Handler, info: FunctionInfo, invocation: Invocation) -> None:
    request_id = invocation.request_id
    if invocation.trace_id:
        os.environ["_X_AMZN_TRACE_ID"] = invocation.trace_id
    else:
        os.environ.pop("_X_AMZN_TRACE_ID", None)
    try:
        event = decode(invocation.body)
        result = handler(event, LambdaContext(info, invocation))
        payload = encode(result)
    except Exception as exc:
        doc = error_doc(exc, request_id)
        log_error(doc)
        api.fail(request_id, doc)
        return
    api.respond(request_id, payload)


def decode(body: bytes) -> Any:
    if not body:
        return {}
    try:
        return json.loads(body)
    except ValueError as exc:
        raise FaultError("Runtime.UnmarshalError", f"Unable to unmarshal input: {exc}") from exc


def _jsonable(value: object) -> object:
    # Decimals are what boto3 gives for DynamoDB numbers; Lambda's runtime serialises them. A
    # Decimal exists only if its module was imported, so the runtime need not import it.
    decimal = sys.modules.get("decimal")
    if decimal is not None and isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def encode(result: Any) -> bytes:
    try:
        return json.dumps(result, ensure_ascii=False, default=_jsonable).encode()
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise FaultError("Runtime.MarshalError", f"Unable to marshal response: {exc}") from exc
