"""What became of an invocation: one vocabulary for the activator's and the dispatcher's metrics.

Where it sits: the activator (HTTP routes, the Invoke API, the asynchronous workers) and the
event dispatcher (every EventSource kind) sort each invocation they made into one ``Outcome``
and count it (``lambdalet_activator_invocation_outcomes_total``,
``lambdalet_dispatcher_invocation_outcomes_total``). The HTTP status says little: the Invoke API
answers a function error, a timeout and an out-of-memory kill all with 200, as Lambda does, and
an HTTP route answers whatever status the handler chose. The pod's answer says more: the agent
sets ``X-Amz-Function-Error`` on every failed invocation and names the failure in the error
document's ``errorType`` (runtime-images/agent/README.md):

    no function error, 2xx                         success
    errorType Sandbox.Timedout                     timeout      the function's timeout ran out
    errorType Runtime.OutOfMemory                  oom          the kernel killed the runtime
    errorType Runtime.ExitError, status 200        runtime_exit the runtime exited under it
    any function error, status 502                 init_error   the runtime could not initialise
    any other function error                       error        the handler raised, a response
                                                                too large, ...
    429 without a function error                   throttled    reserved concurrency, the pod's
                                                                slots (the activator's 429s too)
    502, 503, 504 without a function error         unavailable  no pod in time, hold queue full,
                                                                the pod's connection broke,
                                                                stopping
    another 4xx                                    rejected     unauthorised, too large, bad
                                                                request, no such Function

Only a failed invocation's body is parsed, and only its first ``ERROR_DOC_LIMIT`` bytes.
"""

from __future__ import annotations

import json
from enum import StrEnum

ERROR_DOC_LIMIT = 64 * 1024  # bytes of an error document read for its errorType

TIMEOUT_ERROR = "Sandbox.Timedout"
OOM_ERROR = "Runtime.OutOfMemory"
EXIT_ERROR = "Runtime.ExitError"


class Outcome(StrEnum):
    SUCCESS = "success"
    ERROR = "error"
    TIMEOUT = "timeout"
    OOM = "oom"
    RUNTIME_EXIT = "runtime_exit"
    INIT_ERROR = "init_error"
    THROTTLED = "throttled"
    UNAVAILABLE = "unavailable"
    REJECTED = "rejected"


def of_answer(status: int, function_error: str | None, body: bytes) -> Outcome:
    """The outcome of a pod's answer (or the activator's, on the Invoke API)."""
    if function_error is None:
        if status < 300:
            return Outcome.SUCCESS
        return of_refusal(status)
    error_type = error_type_of(body)
    if error_type == OOM_ERROR:
        return Outcome.OOM
    if error_type == TIMEOUT_ERROR:
        return Outcome.TIMEOUT
    if status == 502:
        return Outcome.INIT_ERROR
    if error_type == EXIT_ERROR:
        return Outcome.RUNTIME_EXIT
    return Outcome.ERROR


def of_refusal(status: int) -> Outcome:
    """The outcome of an invocation refused with ``status`` before a handler ran."""
    if status == 429:
        return Outcome.THROTTLED
    if status >= 500:
        return Outcome.UNAVAILABLE
    return Outcome.REJECTED


def error_type_of(body: bytes) -> str | None:
    """``errorType`` of a Lambda error document, e.g. b'{"errorType": "ValueError", ...}'."""
    if len(body) > ERROR_DOC_LIMIT:
        return None
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return None
    kind = doc.get("errorType") if isinstance(doc, dict) else None
    return kind if isinstance(kind, str) else None
