"""An invocation this activator's share cannot take, handed to a peer whose share may.

Where it sits: when ``proxy`` would answer 429 because this activator's share of a Function's
reserved concurrency is used up (or is 0: a cap smaller than the number of activators), it asks
``Forwarder.forward`` first. That tries the peers that hold a share of the Function by this
activator's view (``quota.View.holders``: a hint, each peer enforces its own share), one after
the other, over the peers' internal ports, and returns the first answer that is not a 429. Only
the requests over the local share pay the extra hop; a request is forwarded once at most.

The exchange, on the peer's internal port (``internal``; the agent's invoke path, so the same
``upstream`` pool carries it):

    POST /2015-03-31/functions/function/invocations
    authorization: Bearer <LAMBDALET_PEER_KEY>        the activators' shared key
    lambdalet-forwarded-function: <namespace>/<name>
    lambdalet-hold-seconds: <how long it may wait for an instance>
    lambdalet-request-id, x-amzn-trace-id, ...       as the pod would get them

The peer invokes within its own share and answers as the pod did (status, body,
``x-amz-function-error``, ...), or with its refusal: the status and ``lambdalet-rejected:
<error type>``, the reason as the body.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable, Iterable

from lambdalet.activator.events import HttpRequest, HttpResponse
from lambdalet.activator.model import FunctionConfig
from lambdalet.activator.upstream import (
    INVOKE_PATH,
    ConnectFailed,
    ExchangeFailed,
    Pool,
    StaleConnection,
)
from lambdalet.contracts.invocation import InvokeRejected, InvokeResult
from lambdalet.contracts.keys import Key

log = logging.getLogger("lambdalet.activator")

FUNCTION_HEADER = "lambdalet-forwarded-function"
HOLD_HEADER = "lambdalet-hold-seconds"
REJECTED_HEADER = "lambdalet-rejected"
PATH = INVOKE_PATH.decode()
# Over the hold and the function's timeout: the peer's own margin for the pod's answer.
EXCHANGE_MARGIN = 10.0
_NOT_RELAYED = frozenset({"content-length", "connection", "transfer-encoding", "keep-alive"})

Holders = Callable[[FunctionConfig], Iterable[tuple[str, int]]]


class Forwarder:
    """Tries the peers holding a share of a Function, in order, until one takes the request."""

    def __init__(self, pool: Pool, key: str, holders: Holders) -> None:
        self._pool = pool
        self._key = key
        self._holders = holders

    async def forward(
        self,
        config: FunctionConfig,
        payload: bytes,
        headers: Iterable[tuple[str, str]],
        hold_seconds: float,
    ) -> InvokeResult | None:
        """The first peer's answer that is not a refusal for the cap; None when every peer
        holding a share refused (or none could be reached): the caller answers 429."""
        headers = list(headers)
        request_id = next((v for k, v in headers if k == "lambdalet-request-id"), "")
        sent = [
            *headers,
            ("authorization", f"Bearer {self._key}"),
            (FUNCTION_HEADER, f"{config.namespace}/{config.name}"),
            (HOLD_HEADER, f"{max(hold_seconds, 0.0):.3f}"),
        ]
        timeout = hold_seconds + config.timeout_seconds + EXCHANGE_MARGIN
        for address in self._holders(config):
            try:
                response = await self._pool.post(address, payload, sent, timeout=timeout)
            except (ConnectFailed, StaleConnection):
                self._pool.forget(address)
                continue  # nothing ran there; the next peer, or 429
            except ExchangeFailed as exc:
                status = 504 if exc.timed_out else 502
                raise InvokeRejected(status, "ServiceException", f"peer activator: {exc}") from exc
            rejected = response.headers.get(REJECTED_HEADER)
            if rejected is None:
                return InvokeResult.of_answer(
                    response.status, response.body, response.headers, request_id
                )
            if response.status == 429:
                continue
            if response.status == 401:  # the activators' keys differ: a misconfiguration
                log.warning("peer activator %s:%d refused the key", *address)
                continue
            raise InvokeRejected(response.status, rejected, response.body.decode(errors="replace"))
        return None


Invoke = Callable[..., Awaitable[InvokeResult]]


def is_forwarded(request: HttpRequest) -> bool:
    return (
        request.method == "POST"
        and request.path == PATH
        and bool(_header(request, FUNCTION_HEADER))
    )


async def serve_forwarded(
    request: HttpRequest, key: str | None, invoke: Invoke, hold_limit: float
) -> HttpResponse:
    """The peer's side: check the key, invoke within this activator's share, answer."""
    given = _header(request, "authorization")
    scheme, _, token = given.partition(" ")
    if not key or scheme.lower() != "bearer" or not hmac.compare_digest(token, key):
        return _refusal(InvokeRejected(401, "Unauthorized", "a forwarded invocation needs the key"))
    namespace, _, name = _header(request, FUNCTION_HEADER).partition("/")
    function: Key = (namespace, name)
    try:
        hold = min(float(_header(request, HOLD_HEADER) or hold_limit), hold_limit)
    except ValueError:
        hold = hold_limit
    passed = {
        k.lower(): v
        for k, v in request.headers
        if k.lower() in ("x-amzn-trace-id", "x-amz-client-context")
    }
    try:
        result = await invoke(
            function,
            request.body,
            request_id=_header(request, "lambdalet-request-id"),
            headers=passed,
            deadline=asyncio.get_running_loop().time() + hold,
            forwarded=True,
        )
    except InvokeRejected as exc:
        return _refusal(exc)
    out = [(k, v) for k, v in result.headers.items() if k.lower() not in _NOT_RELAYED]
    if "lambdalet-request-id" not in result.headers:
        out.append(("lambdalet-request-id", result.request_id))
    if result.function_error and "x-amz-function-error" not in result.headers:
        out.append(("x-amz-function-error", result.function_error))
    return HttpResponse(result.status, tuple(out), result.body)


def _refusal(exc: InvokeRejected) -> HttpResponse:
    return HttpResponse(
        exc.status,
        (("content-type", "text/plain"), (REJECTED_HEADER, exc.error_type)),
        exc.message.encode(),
    )


def _header(request: HttpRequest, name: str) -> str:
    for key, value in request.headers:
        if key.lower() == name:
            return value
    return ""
