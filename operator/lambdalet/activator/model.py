"""Values shared along the activator's request path, and the one seam every part invokes through.

``FunctionConfig`` is what the activator needs of a Function's spec, built once per change of the
Function (``FunctionConfig.from_api``); ``Invoker`` is how the HTTP front, the invoke API and the
asynchronous queue all reach a function: they hand over an event and get the pod's answer, or an
``InvokeRejected`` that says why the activator could not place it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from lambdalet.api.function import DestinationType, EventFormat, Exposure, Function

# (namespace, name) of a Function.
FunctionKey = tuple[str, str]


@dataclass(frozen=True)
class FailureDestination:
    """Where an asynchronous event goes after its last failed attempt (``spec.async.onFailure``)."""

    type: DestinationType
    name: str  # a Redis stream name, or a Function in the same namespace


@dataclass(frozen=True)
class FunctionConfig:
    """What the activator needs to know about one Function."""

    namespace: str
    name: str
    per_instance: int = 1  # concurrent invocations one pod takes (the agent 429s beyond)
    reserved: int | None = None  # function-wide cap; None = unlimited, 0 = disabled
    timeout_seconds: float = 3.0  # the function's own timeout (the agent enforces it)
    event_format: EventFormat = EventFormat.V2
    auth_secret: tuple[str, str] | None = None  # (Secret name, key) holding the bearer token
    max_retries: int = 2
    max_event_age_seconds: float = 21600.0
    on_failure: FailureDestination | None = None
    public: bool = False  # http.exposure: public (served on the activator's public port too)
    uid: str = ""  # the Function's, for the Events about it

    @property
    def key(self) -> FunctionKey:
        return (self.namespace, self.name)

    @classmethod
    def from_api(cls, function: Function) -> FunctionConfig:
        spec = function.spec
        auth = spec.http.auth.secret_ref
        on_failure = spec.async_.on_failure
        return cls(
            namespace=function.metadata.namespace or "default",
            name=function.metadata.name,
            per_instance=spec.concurrency.per_instance,
            reserved=spec.concurrency.reserved,
            timeout_seconds=float(spec.timeout_seconds),
            event_format=spec.http.event_format,
            auth_secret=(auth.name, auth.key) if auth is not None else None,
            max_retries=spec.async_.max_retries,
            max_event_age_seconds=float(spec.async_.max_event_age_seconds),
            on_failure=(
                FailureDestination(on_failure.type, on_failure.name) if on_failure else None
            ),
            public=spec.http.exposure == Exposure.PUBLIC,
            uid=function.metadata.uid or "",
        )


@dataclass(frozen=True)
class InvokeResult:
    """A pod's answer to one invocation (the agent's invoke API, see runtime-images/agent)."""

    status: int  # 200 for a result or a function error; 502 for an init error
    body: bytes  # the handler's payload, or the error document
    request_id: str
    function_error: str | None = None  # X-Amz-Function-Error ("Unhandled") when the handler failed
    headers: Mapping[str, str] = field(default_factory=dict)  # other headers of the answer

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
        key: FunctionKey,
        payload: bytes,
        *,
        request_id: str,
        headers: Mapping[str, str] | None = None,
        deadline: float | None = None,  # loop.time() by which a pod must have taken it
    ) -> InvokeResult: ...
