"""How a component invokes a Function, and what it gets back.

The activator's HTTP front, its Invoke API and its asynchronous queue all reach a function through
an ``Invoker``: they hand over an event (the request body the agent's invoke API takes) and get
the pod's answer as an ``InvokeResult``, or an ``InvokeRejected`` that says why the invocation
could not be placed. The event dispatcher invokes through the activator's Invoke API and reads the
answer into the same ``InvokeResult``, so what the dispatcher decides from an answer
(acknowledge, retry, dead-letter) and what the activator returns are the same values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from lambdalet.contracts.keys import Key


@dataclass(frozen=True)
class InvokeResult:
    """A pod's answer to one invocation (the agent's invoke API, see runtime-images/agent)."""

    status: int  # 200 for a result or a function error; 502 for an init error
    body: bytes  # the handler's payload, or the error document
    request_id: str
    function_error: str | None = None  # X-Amz-Function-Error ("Unhandled") when the handler failed
    headers: Mapping[str, str] = field(default_factory=dict)  # other headers of the answer

    @classmethod
    def of_answer(
        cls, status: int, body: bytes, headers: Mapping[str, str], request_id: str
    ) -> InvokeResult:
        """An answer of the agent's invoke API, or of a peer activator passing one on: the
        request id and the function error come in its headers (lower-cased names)."""
        return cls(
            status=status,
            body=body,
            request_id=headers.get("lambdalet-request-id", request_id),
            function_error=headers.get("x-amz-function-error"),
            headers=headers,
        )

    @property
    def failed(self) -> bool:
        """The invocation did not succeed: a function error, or the pod could not run it."""
        return self.function_error is not None or self.status >= 300


class InvokeRejected(Exception):
    """The activator could not place an invocation; ``status`` and ``error_type`` say why.

    429 TooManyRequestsException (reserved concurrency), 503 ServiceUnavailable (cold-start
    buffer full, no such function, shutting down), 504 (no pod became ready before the deadline),
    502 (the pod's connection failed).
    """

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message


class Invoker(Protocol):
    """Invoke a function with an event (the request body the agent's invoke API takes)."""

    async def invoke(
        self,
        key: Key,
        payload: bytes,
        *,
        request_id: str,
        headers: Mapping[str, str] | None = None,
        deadline: float | None = None,  # loop.time() by which a pod must have taken it
    ) -> InvokeResult: ...
