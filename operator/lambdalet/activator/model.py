"""What the activator needs to know about a Function, built once per change of the Function.

``FunctionConfig.from_api`` reads it off the typed Function; every part of the request path
(routes, admission, the proxy, the asynchronous queue) takes it from the activator's view of the
Functions (``lambdalet.activator.kube``). How the parts invoke a function is the shared contract
``lambdalet.contracts.invocation``.
"""

from __future__ import annotations

from dataclasses import dataclass

from lambdalet.api.function import DestinationType, EventFormat, Exposure, Function
from lambdalet.contracts.keys import Key


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
    def key(self) -> Key:
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
