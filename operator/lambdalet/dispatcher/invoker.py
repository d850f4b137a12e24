"""Invokes a Function through the activator's Lambda Invoke API, for the delivery loops.

Where it sits: ``delivery`` hands over an encoded event; this module POSTs it to
``{activator}/2015-03-31/functions/{namespace}:{name}/invocations`` (``RequestResponse``, see
``lambdalet.activator.app``) over a bounded pool of keep-alive connections (httpx) shared by all
the dispatcher's loops, and returns either the Function's answer (``InvokeResult``: a result, a
function error, an init error) or an ``InvokeFailed`` that ``outcome`` does not count against
the Function:

    429, 503, 504 (reserved concurrency, no pod yet / cold-start buffer full, hold deadline)
                                                    -> THROTTLED
    502 from the activator itself (x-amzn-ErrorType: the pod's connection broke), a transport
    error, or no answer within the timeout          -> UNREACHABLE
    any other answer carrying x-amzn-ErrorType (404 no such function, 401, 400, 413)
                                                    -> REJECTED

The timeout of one call is the caller's: the Function's own timeout plus the activator's
cold-start hold (``invoke_timeout``), so a batch that waits for a pod from zero is not given up
while the activator still holds it.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from lambdalet.activator.model import FunctionKey, InvokeResult
from lambdalet.dispatcher.outcome import Answer, FailureKind, InvokeFailed

INVOKE_PATH = "/2015-03-31/functions/{namespace}:{name}/invocations"
THROTTLE_STATUSES = frozenset({429, 503, 504})
CONNECT_TIMEOUT = 5.0  # seconds to open a connection to the activator
# The activator's hold timeout for a cold start (ProxyLimits.hold_timeout) and its margin over
# the Function's timeout for a pod's answer (proxy.EXCHANGE_MARGIN).
ACTIVATOR_HOLD_SECONDS = 60.0
ACTIVATOR_EXCHANGE_MARGIN = 5.0
_HEADERS = {
    "content-type": "application/json",
    "x-amz-invocation-type": "RequestResponse",
}


def invoke_timeout(function_timeout: float, hold: float = ACTIVATOR_HOLD_SECONDS) -> float:
    """Seconds to wait for one invocation: hold for a pod, then the Function's run and margin.

    E.g. a 3 s Function behind the default 60 s hold: 60 + 3 + 5 = 68 s.
    """
    return hold + function_timeout + ACTIVATOR_EXCHANGE_MARGIN


@dataclass(frozen=True)
class InvokerSettings:
    activator_url: str  # e.g. http://lambdalet-activator.lambdalet-system.svc
    max_connections: int = 64  # at most this many invocations in flight, all loops together


class ActivatorInvoker:
    """One client of the activator for all delivery loops of a dispatcher.

    It sends through an httpx transport (httpx's pool of keep-alive connections) rather than an
    ``httpx.AsyncClient``: the client's layers (cookie jar, redirects, auth, URL merging) are
    of no use here and cost several times the CPU the activator spends on an invocation, which
    is what limits small batches (benchmarks/dispatcher.py).
    """

    def __init__(self, settings: InvokerSettings) -> None:
        limits = httpx.Limits(
            max_connections=settings.max_connections,
            max_keepalive_connections=settings.max_connections,
        )
        self._transport = httpx.AsyncHTTPTransport(limits=limits)
        self._base = settings.activator_url.rstrip("/")
        self._urls: dict[FunctionKey, httpx.URL] = {}

    async def invoke(
        self,
        function: FunctionKey,
        payload: bytes,
        *,
        timeout: float,  # noqa: ASYNC109 - the HTTP call's deadline, passed to httpx
    ) -> Answer:
        """Invoke ``function`` with ``payload``; never raises for what the activator answers."""
        url = self._urls.get(function)
        if url is None:
            path = INVOKE_PATH.format(namespace=function[0], name=function[1])
            url = self._urls[function] = httpx.URL(self._base + path)
        deadline = httpx.Timeout(timeout, connect=min(CONNECT_TIMEOUT, timeout))
        request = httpx.Request(
            "POST",
            url,
            content=payload,
            headers=_HEADERS,
            extensions={"timeout": deadline.as_dict()},
        )
        try:
            response = await self._transport.handle_async_request(request)
            try:
                body = await response.aread()
            finally:
                await response.aclose()
        except httpx.TimeoutException as exc:
            return InvokeFailed(
                FailureKind.UNREACHABLE, f"no answer within {timeout:g} s: {type(exc).__name__}"
            )
        except httpx.TransportError as exc:
            return InvokeFailed(FailureKind.UNREACHABLE, f"{type(exc).__name__}: {exc}")
        headers = response.headers
        return classify(
            response.status_code,
            body,
            request_id=headers.get("x-amzn-requestid", ""),
            function_error=headers.get("x-amz-function-error"),
            error_type=headers.get("x-amzn-errortype"),
        )

    async def aclose(self) -> None:
        await self._transport.aclose()


def classify(
    status: int,
    body: bytes,
    *,
    request_id: str,
    function_error: str | None,
    error_type: str | None,
) -> Answer:
    """The Invoke API's answer as the Function's result or as a failure (module docstring)."""
    if status in THROTTLE_STATUSES:
        return InvokeFailed(FailureKind.THROTTLED, _message(body, error_type), status)
    if error_type is not None:
        kind = FailureKind.UNREACHABLE if status == 502 else FailureKind.REJECTED
        return InvokeFailed(kind, _message(body, error_type), status)
    return InvokeResult(
        status=status, body=body, request_id=request_id, function_error=function_error
    )


def _message(body: bytes, error_type: str | None) -> str:
    text = body[:300].decode("utf-8", "replace")
    return f"{error_type}: {text}" if error_type else text
