"""Invokes a Function through the activator's Lambda Invoke API, for the delivery loops.

Where it sits: ``delivery`` hands over an encoded event; this module POSTs it to
``{activator}/2015-03-31/functions/{namespace}:{name}/invocations`` (``RequestResponse``, see
``lambdalet.activator.app``) over a bounded pool of keep-alive connections shared by all the
dispatcher's loops, and returns either the Function's answer (``InvokeResult``: a result, a
function error, an init error) or an ``InvokeFailed`` that ``outcome`` does not count against
the Function:

    429, 503, 504 (reserved concurrency, no pod yet / cold-start buffer full, hold deadline)
                                                    -> THROTTLED
    502 from the activator itself (x-amzn-ErrorType: the pod's connection broke), a transport
    error, or no answer within the timeout          -> UNREACHABLE
    any other answer carrying x-amzn-ErrorType (404 no such function, 400, 413), and 401 / 403
    (a bearer token missing or wrong)
                                                    -> REJECTED

Every call is counted by its ``lambdalet.outcomes.Outcome`` in ``outcomes`` (per Function; the
dispatcher's ``/metrics`` shows them): ``THROTTLED`` answers are ``throttled`` (429) or
``unavailable`` (503, 504), ``UNREACHABLE`` ones ``unavailable``, ``REJECTED`` ones ``rejected``,
and the Function's answers are sorted by their error type.

The timeout of one call is the caller's: the Function's own timeout plus the activator's
cold-start hold (``invoke_timeout``), so a batch that waits for a pod from zero is not given up
while the activator still holds it. It bounds the whole call: waiting for a free connection,
connecting, and the exchange.

The HTTP/1.1 client is the one the activator uses for its pods (``lambdalet.http1client``), with
one timer per call; its CPU per invocation is what bounds small batches
(benchmarks/dispatcher.py). A kept-alive connection the activator closed while idle (its idle
timeout, a restart) is dialled afresh once, as long as no byte of an answer came on it.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from lambdalet.contracts.invocation import InvokeResult
from lambdalet.contracts.keys import Key
from lambdalet.dispatcher.delivery.outcome import Answer, FailureKind, InvokeFailed
from lambdalet.http1client import Broken, Connection, Response, expire, take_idle
from lambdalet.outcomes import Outcome, of_answer, of_refusal

# The bearer token a Function asks its callers for (http.auth), or None.
Authorization = Callable[[Key], Awaitable[str | None]]

INVOKE_PATH = "/2015-03-31/functions/{namespace}:{name}/invocations"
THROTTLE_STATUSES = frozenset({429, 503, 504})
CONNECT_TIMEOUT = 5.0  # seconds to open a connection to the activator
MAX_RESPONSE_BYTES = 8 * 1024 * 1024  # the Invoke API answers at most 6 MB plus an error document
# The activator's hold timeout for a cold start (ProxyLimits.hold_timeout) and its margin over
# the Function's timeout for a pod's answer (proxy.EXCHANGE_MARGIN).
ACTIVATOR_HOLD_SECONDS = 60.0
ACTIVATOR_EXCHANGE_MARGIN = 5.0
# The answer's headers classify() reads; the others are not kept.
_KEPT_HEADERS = frozenset({"x-amzn-requestid", "x-amz-function-error", "x-amzn-errortype"})


def invoke_timeout(function_timeout: float, hold: float = ACTIVATOR_HOLD_SECONDS) -> float:
    """Seconds to wait for one invocation: hold for a pod, then the Function's run and margin.

    E.g. a 3 s Function behind the default 60 s hold: 60 + 3 + 5 = 68 s.
    """
    return hold + function_timeout + ACTIVATOR_EXCHANGE_MARGIN


@dataclass(frozen=True)
class InvokerSettings:
    activator_url: str  # e.g. http://lambdalet-activator.lambdalet-system.svc
    max_connections: int = 64  # at most this many invocations in flight, all loops together


class _TimedOut(Exception):
    pass


class _ActivatorConnection(Connection):
    PEER = "the activator"
    MAX_RESPONSE_BYTES = MAX_RESPONSE_BYTES
    KEPT_HEADERS = _KEPT_HEADERS  # what classify() reads


class ActivatorInvoker:
    """One client of the activator for all delivery loops of a dispatcher (module docstring)."""

    def __init__(
        self, settings: InvokerSettings, *, authorization: Authorization | None = None
    ) -> None:
        """``authorization`` gives the bearer token a Function asks its callers for (None: it
        asks for none); it is awaited per call only when given, and should cache."""
        url = urlsplit(settings.activator_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"the activator URL must be http(s)://host[:port]: {url.geturl()}")
        secure = url.scheme == "https"
        self._address = (url.hostname, url.port or (443 if secure else 80))
        self._ssl = ssl.create_default_context() if secure else None
        self._authority = url.netloc.rpartition("@")[2]
        self._prefix = url.path.rstrip("/")
        self._heads: dict[Key, tuple[str | None, bytes]] = {}  # per Function: token, head
        self._authorization = authorization
        self._idle: list[Connection] = []
        self._slots = asyncio.Semaphore(settings.max_connections)
        self._closed = False
        self.outcomes: dict[tuple[Key, Outcome], int] = {}  # calls, since the start
        # asyncio.get_running_loop() costs a getpid() system call on every call (Python 3.11).
        self._loop: asyncio.AbstractEventLoop | None = None

    async def invoke(
        self,
        function: Key,
        payload: bytes,
        *,
        timeout: float,  # noqa: ASYNC109 - a deadline timer on the whole call, not a scope
    ) -> Answer:
        """Invoke ``function`` with ``payload``; never raises for what the activator answers."""
        answer = await self._invoke(function, payload, timeout)
        counted = (function, outcome_of(answer))
        self.outcomes[counted] = self.outcomes.get(counted, 0) + 1
        return answer

    async def _invoke(
        self,
        function: Key,
        payload: bytes,
        timeout: float,  # noqa: ASYNC109 - as in invoke
    ) -> Answer:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        token = await self._authorization(function) if self._authorization is not None else None
        known = self._heads.get(function)
        head = known[1] if known is not None and known[0] == token else self._head(function, token)
        request = b"%s%d\r\n\r\n%s" % (head, len(payload), payload)
        try:
            if self._slots.locked():
                async with asyncio.timeout_at(deadline):
                    await self._slots.acquire()
            else:
                await self._slots.acquire()  # free: returns without suspending
        except TimeoutError:
            return _late(timeout, "no free connection")
        if loop.time() >= deadline:  # a slot came free only as the time ran out
            self._slots.release()
            return _late(timeout, "no free connection")
        try:
            response = await self._exchange(request, deadline, loop)
        except _TimedOut:
            return _late(timeout, "the activator did not answer")
        except Broken as exc:
            return InvokeFailed(FailureKind.UNREACHABLE, str(exc))
        except TimeoutError:  # connecting took CONNECT_TIMEOUT, or what was left of timeout
            if loop.time() >= deadline:
                return _late(timeout, "connecting to the activator took the rest of it")
            return InvokeFailed(
                FailureKind.UNREACHABLE, f"cannot connect to {self._authority}: timed out"
            )
        except OSError as exc:
            return InvokeFailed(
                FailureKind.UNREACHABLE, f"cannot connect to {self._authority}: {exc!r}"
            )
        finally:
            self._slots.release()
        headers = response.headers
        return classify(
            response.status,
            response.body,
            request_id=headers.get("x-amzn-requestid", ""),
            function_error=headers.get("x-amz-function-error"),
            error_type=headers.get("x-amzn-errortype"),
        )

    async def aclose(self) -> None:
        """Close the idle connections; those in use close when their call ends."""
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    async def _exchange(
        self, request: bytes, deadline: float, loop: asyncio.AbstractEventLoop
    ) -> Response:
        fresh = False
        while True:
            connection = None if fresh else self._take()
            if connection is None:
                connection = await self._connect(deadline, loop)
            waiter = connection.send(request, loop)
            timer = loop.call_at(deadline, expire, waiter, _TimedOut)
            try:
                response = await waiter
            except Broken as exc:
                connection.close()
                if exc.stale and not fresh:
                    fresh = True  # nothing was answered: dial anew, once
                    continue
                raise
            except BaseException:
                connection.close()
                raise
            finally:
                timer.cancel()
            if connection.reusable and not connection.closed and not self._closed:
                self._idle.append(connection)  # at most max_connections: one per slot
            else:
                connection.close()
            return response

    def _take(self) -> Connection | None:
        return take_idle(self._idle)

    async def _connect(self, deadline: float, loop: asyncio.AbstractEventLoop) -> Connection:
        host, port = self._address
        async with asyncio.timeout(min(CONNECT_TIMEOUT, deadline - loop.time())):
            _, connection = await loop.create_connection(
                _ActivatorConnection,
                host,
                port,
                ssl=self._ssl,
                server_hostname=host if self._ssl else None,
            )
        return connection

    def _head(self, function: Key, token: str | None) -> bytes:
        """The request's bytes up to the Content-Length value, made once per Function (and
        again when its token changes)."""
        path = self._prefix + INVOKE_PATH.format(namespace=function[0], name=function[1])
        authorization = f"authorization: Bearer {token}\r\n" if token else ""
        head = (
            f"POST {path} HTTP/1.1\r\n"
            f"host: {self._authority}\r\n"
            "content-type: application/json\r\n"
            "x-amz-invocation-type: RequestResponse\r\n"
            f"{authorization}"
            "content-length: "
        ).encode()
        self._heads[function] = (token, head)
        return head


def _late(timeout: float, what: str) -> InvokeFailed:
    return InvokeFailed(FailureKind.UNREACHABLE, f"no answer within {timeout:g} s: {what}")


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
    if status in (401, 403):  # the activator's bearer-token check answers without an error type
        return InvokeFailed(FailureKind.REJECTED, _message(body, None), status)
    return InvokeResult(
        status=status, body=body, request_id=request_id, function_error=function_error
    )


def outcome_of(answer: Answer) -> Outcome:
    """What became of an invocation (module docstring)."""
    if isinstance(answer, InvokeResult):
        return of_answer(answer.status, answer.function_error, answer.body)
    if answer.kind is FailureKind.THROTTLED:
        return of_refusal(answer.status or 503)
    if answer.kind is FailureKind.UNREACHABLE:
        return Outcome.UNAVAILABLE
    return Outcome.REJECTED


def _message(body: bytes, error_type: str | None) -> str:
    text = body[:300].decode("utf-8", "replace")
    return f"{error_type}: {text}" if error_type else text
