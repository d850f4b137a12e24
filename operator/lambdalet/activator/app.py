"""The activator's request handling: route, authorise, shape, invoke, answer.

``Activator.handle`` is the application ``http1`` serves. For each request it finds the Function
(``routes``), checks the bearer token when the Function asks for one, then either

* shapes the HTTP request into an API Gateway event (``events``), invokes it through the
  ``Invoker`` (``proxy``) and shapes the function's result back into the HTTP response, or
* serves Lambda's Invoke API: ``RequestResponse`` answers with the function's payload as Lambda
  does, ``Event`` stores the event on the asynchronous queue and answers 202, ``DryRun`` 204.

Errors the activator raises itself get API Gateway's ``{"message": ...}`` bodies on HTTP routes
and Lambda's error shape (``x-amzn-ErrorType`` header + ``{"Type", "message"}``) on the Invoke
API. Trace context: a W3C ``traceparent`` from the client (or a new one) is passed to the pod as
the X-Ray header the runtime exposes as ``_X_AMZN_TRACE_ID``, unless the client sent one.
"""

from __future__ import annotations

import hmac
import json
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass
from typing import Protocol

from lambdalet.activator.events import (
    HttpRequest,
    HttpResponse,
    Route,
    build_event,
    error_response,
    http_response,
)
from lambdalet.activator.metrics import Metrics, Queued, Via
from lambdalet.activator.model import FunctionConfig
from lambdalet.activator.routes import InvokeRoute, RouteError, route
from lambdalet.contracts.invocation import Invoker, InvokeRejected
from lambdalet.contracts.keys import Key
from lambdalet.outcomes import Outcome, of_answer, of_refusal

SYNC_PAYLOAD_LIMIT = 6 * 1024 * 1024  # bytes, Lambda's RequestResponse limit


class Configs(Protocol):
    def config(self, key: Key) -> FunctionConfig | None: ...


class Tokens(Protocol):
    async def token(self, namespace: str, secret: str, key: str) -> str | None:
        """The bearer token in a Secret's key; None when the Secret or key does not exist."""
        ...


class AsyncQueue(Protocol):
    async def enqueue(
        self,
        config: FunctionConfig,
        payload: bytes,
        *,
        request_id: str,
        headers: Mapping[str, str],
    ) -> None: ...


@dataclass(eq=False)
class Activator:
    invoker: Invoker
    configs: Configs
    _: KW_ONLY
    tokens: Tokens
    async_queue: AsyncQueue | None
    metrics: Metrics
    domain: str | None = None
    default_namespace: str = "default"
    # The entry point behind an Ingress or a load balancer, which serves only Functions with
    # ``http.exposure: public``; the others do not exist there (404).
    public_only: bool = False

    async def handle(self, request: HttpRequest) -> HttpResponse:
        started = time.monotonic()
        host = _header(request, "host")
        try:
            found = route(
                request.path,
                host,
                domain=self.domain,
                default_namespace=self.default_namespace,
            )
        except RouteError as exc:
            return _lambda_error(404, "ResourceNotFoundException", str(exc))
        if found is None:
            if request.path in ("/healthz", "/readyz"):
                return HttpResponse(200, (("content-type", "text/plain"),), b"ok")
            return error_response(404, "Not Found")
        config = self.configs.config(found.key)
        if config is not None and self.public_only and not config.public:
            config = None  # cluster-local: not even its existence shows on the public port
        invoke_api = isinstance(found, InvokeRoute)
        if config is None:
            if invoke_api:
                return _lambda_error(
                    404, "ResourceNotFoundException", f"Function not found: {_name(found.key)}"
                )
            return error_response(404, "Not Found")
        denied = await self._authorise(request, config)
        path: Via = "invoke" if invoke_api else "http"
        outcome: Outcome | Queued
        if denied is not None:
            response, outcome = denied, Outcome.REJECTED
        elif isinstance(found, InvokeRoute):
            response, outcome = await self._invoke_api(request, config)
        else:
            response, outcome = await self._http(request, found, config)
        self.metrics.answered(
            found.key, response.status, time.monotonic() - started, path=path, outcome=outcome
        )
        return response

    async def _http(
        self, request: HttpRequest, found: Route, config: FunctionConfig
    ) -> tuple[HttpResponse, Outcome]:
        request_id, entropy = _request_id()
        event = build_event(
            request, found, config.event_format, request_id=request_id, now_ms=_now_ms()
        )
        try:
            result = await self.invoker.invoke(
                config.key, event, request_id=request_id, headers=_trace(request, entropy)
            )
        except InvokeRejected as exc:
            return error_response(exc.status, _http_message(exc)), of_refusal(exc.status)
        outcome = of_answer(result.status, result.function_error, result.body)
        if result.status == 413:
            return error_response(413, "Request Entity Too Large"), outcome
        return http_response(result, config.event_format), outcome

    async def _invoke_api(
        self, request: HttpRequest, config: FunctionConfig
    ) -> tuple[HttpResponse, Outcome | Queued]:
        if request.method != "POST":
            return _refused(405, "InvalidRequestContentException", "Invoke takes POST")
        kind = _header(request, "x-amz-invocation-type") or "RequestResponse"
        request_id, entropy = _request_id()
        if kind == "DryRun":
            return HttpResponse(204, (("x-amzn-requestid", request_id),), b""), "dry_run"
        if kind == "Event":
            if self.async_queue is None:
                return _refused(
                    400,
                    "InvalidParameterValueException",
                    "asynchronous invocation needs the activator's Redis (LAMBDALET_REDIS_URL)",
                )
            try:
                await self.async_queue.enqueue(
                    config,
                    request.body,
                    request_id=request_id,
                    headers=_trace(request, entropy),
                )
            except InvokeRejected as exc:
                return _refused(exc.status, exc.error_type, exc.message)
            return HttpResponse(202, (("x-amzn-requestid", request_id),), b""), "queued"
        if kind != "RequestResponse":
            return _refused(
                400,
                "InvalidParameterValueException",
                "X-Amz-Invocation-Type must be RequestResponse, Event or DryRun",
            )
        if len(request.body) > SYNC_PAYLOAD_LIMIT:
            return _refused(
                413,
                "RequestEntityTooLargeException",
                f"Request must be smaller than {SYNC_PAYLOAD_LIMIT} bytes for the Invoke operation",
            )
        headers = _trace(request, entropy)
        client_context = _header(request, "x-amz-client-context")
        if client_context:
            headers["x-amz-client-context"] = client_context
        try:
            result = await self.invoker.invoke(
                config.key, request.body, request_id=request_id, headers=headers
            )
        except InvokeRejected as exc:
            return _refused(exc.status, exc.error_type, exc.message)
        out = [
            ("content-type", "application/json"),
            ("x-amzn-requestid", result.request_id),
            ("x-amz-executed-version", result.headers.get("x-amz-executed-version", "$LATEST")),
        ]
        if result.function_error:
            out.append(("x-amz-function-error", result.function_error))
        outcome = of_answer(result.status, result.function_error, result.body)
        return HttpResponse(result.status, tuple(out), result.body), outcome

    async def _authorise(self, request: HttpRequest, config: FunctionConfig) -> HttpResponse | None:
        if config.auth_secret is None:
            return None
        secret, key = config.auth_secret
        expected = await self.tokens.token(config.namespace, secret, key)
        given = _header(request, "authorization") or ""
        scheme, _, token = given.partition(" ")
        if (
            expected
            and scheme.lower() == "bearer"
            and hmac.compare_digest(token.strip().encode(), expected.encode())
        ):
            return None
        return HttpResponse(
            401,
            (("content-type", "application/json"), ("www-authenticate", "Bearer")),
            b'{"message":"Unauthorized"}',
        )


def _header(request: HttpRequest, name: str) -> str | None:
    for key, value in request.headers:
        if key.lower() == name:
            return value
    return None


def _request_id() -> tuple[str, bytes]:
    """A new request id (a random UUID) and 24 more random bytes for a trace id, if needed.

    One read of the system's randomness per request instead of three (uuid4, trace, span).
    """
    raw = os.urandom(40)
    return str(uuid.UUID(bytes=raw[:16], version=4)), raw[16:]


def _trace(request: HttpRequest, entropy: bytes) -> dict[str, str]:
    """The X-Ray trace header for the pod: the client's, else derived from its traceparent
    (a new trace, from ``entropy``, when it sent none)."""
    given = _header(request, "x-amzn-trace-id")
    if given:
        return {"x-amzn-trace-id": given}
    parent = _header(request, "traceparent") or ""
    parts = parent.split("-")
    if len(parts) == 4 and len(parts[1]) == 32 and len(parts[2]) == 16:
        trace_id, span_id, flags = parts[1], parts[2], parts[3]
    else:
        trace_id, span_id, flags = entropy[:16].hex(), entropy[16:24].hex(), "01"
    sampled = "1" if flags == "01" else "0"
    root = f"1-{trace_id[:8]}-{trace_id[8:]}"
    return {"x-amzn-trace-id": f"Root={root};Parent={span_id};Sampled={sampled}"}


def _http_message(exc: InvokeRejected) -> str:
    """API Gateway's message for the status, then the activator's reason."""
    generic = {
        429: "Too Many Requests",
        503: "Service Unavailable",
        504: "Endpoint request timed out",
        502: "Internal Server Error",
        404: "Not Found",
    }.get(exc.status)
    return f"{generic}: {exc.message}" if generic else exc.message


def _refused(status: int, error_type: str, message: str) -> tuple[HttpResponse, Outcome]:
    """The Invoke API's error answer for an invocation that was not made, and its outcome."""
    return _lambda_error(status, error_type, message), of_refusal(status)


def _lambda_error(status: int, error_type: str, message: str) -> HttpResponse:
    kind = "Service" if status >= 500 else "User"
    body = json.dumps({"Type": kind, "message": message}).encode()
    return HttpResponse(
        status,
        (("content-type", "application/json"), ("x-amzn-errortype", error_type)),
        body,
    )


def _name(key: Key) -> str:
    return f"{key[0]}:{key[1]}"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
