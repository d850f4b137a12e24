"""The HTTP endpoint MinIO's webhook target posts bucket events to, around ``events``.

Where it sits: one MinIO webhook target per S3 EventSource, its endpoint
``http://<dispatcher>/s3/<namespace>/<eventsource>`` and its auth token the EventSource's, with
the bucket notification pointing at ``arn:minio:sqs::<target id>:webhook``. The receiver checks
the token, normalises the records (``s3.select``) and invokes the EventSource's Function with one
``{"Records": [...]}`` payload through the injected ``invoke``; nothing else reads buckets.

At least once, nothing lost: the answer is 200 only after the invocation succeeded. Anything
else makes MinIO keep the event and send it again (with ``queue_dir`` set on the target, MinIO
stores each event on disk and retries every 3 s, in order: one event that keeps failing holds
back the ones behind it on that target; without ``queue_dir`` a failed delivery is dropped).

    no such EventSource bound here               404
    Authorization is not "Bearer <token>"        401   (compared in constant time)
    body larger than ``max_body``                413
    not JSON / not S3 records                    400
    nothing passes the filter                    200   (no invocation)
    invocations in flight at ``max_in_flight``   503
    invoke returns False, raises or times out    503   (MinIO redelivers)
    invoke returns True                          200

``prepare`` is the decision from the request's parts, pure; ``S3Receiver`` gathers them and
carries it out.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from lambdalet.contracts.keys import Key
from lambdalet.dispatcher.s3.events import (
    DEFAULT_REGION,
    S3EventError,
    S3Filter,
    event_payload,
    parse_records,
    select,
)

ROUTE = "/s3/{namespace}/{name}"
# A MinIO webhook body holds one record of ~1.5 KiB; keys reach 1 KiB (URL-encoded up to 3x)
# and user metadata 2 KiB. 256 KiB leaves room for a batch of records from S3-like senders.
MAX_BODY = 256 * 1024
MAX_IN_FLIGHT = 64  # invocations in progress, all EventSources together
READ_TIMEOUT = 30.0  # seconds to receive a body
SHUTDOWN_TIMEOUT = 5.0

log = logging.getLogger(__name__)

Invoke = Callable[[Key, bytes], Awaitable[bool]]


@dataclass(frozen=True)
class S3Binding:
    """What the receiver needs of one S3 EventSource."""

    function: Key
    token: str = field(repr=False)
    filter: S3Filter = field(default_factory=S3Filter)
    region: str = DEFAULT_REGION


@dataclass(frozen=True)
class Reject:
    status: int
    reason: str


@dataclass(frozen=True)
class Deliver:
    payload: bytes | None  # None: no record passed the filter
    count: int


def authorised(binding: S3Binding, authorization: str | None) -> bool:
    """Whether the Authorization header is ``Bearer <token>``, compared in constant time."""
    expected = f"Bearer {binding.token}".encode()
    return hmac.compare_digest((authorization or "").encode(), expected)


def prepare(binding: S3Binding, body: bytes) -> Reject | Deliver:
    """What to do with an authorised body: 400, or the payload for the Function (or none)."""
    try:
        records = select(parse_records(body), binding.filter, binding.region)
    except S3EventError as exc:
        return Reject(400, str(exc))
    if not records:
        return Deliver(None, 0)
    return Deliver(event_payload(records), len(records))


class S3Receiver:
    """Bindings of EventSources to Functions and the aiohttp app that serves them."""

    def __init__(
        self,
        invoke: Invoke,
        *,
        invoke_timeout: float,
        max_body: int = MAX_BODY,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        self._invoke = invoke
        self._invoke_timeout = invoke_timeout
        self._max_body = max_body
        self._max_in_flight = max_in_flight
        self._in_flight = 0
        self._bindings: dict[Key, S3Binding] = {}

    def bind(self, source: Key, binding: S3Binding) -> None:
        self._bindings[source] = binding

    def unbind(self, source: Key) -> None:
        self._bindings.pop(source, None)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self._max_body)
        app.router.add_post(ROUTE, self.handle)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        source = (request.match_info["namespace"], request.match_info["name"])
        binding = self._bindings.get(source)
        if binding is None:
            return _answer(404, f"no S3 EventSource {source[0]}/{source[1]} here")
        if not authorised(binding, request.headers.get("Authorization")):
            return web.Response(
                status=401,
                text="bad or missing bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if request.content_length is not None and request.content_length > self._max_body:
            return _answer(413, f"body larger than {self._max_body} bytes")
        try:
            async with asyncio.timeout(READ_TIMEOUT):
                body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _answer(413, f"body larger than {self._max_body} bytes")
        except TimeoutError:
            return _answer(408, f"body not received within {READ_TIMEOUT:g} s")
        decision = prepare(binding, body)
        if isinstance(decision, Reject):
            log.warning("S3 event for %s/%s rejected: %s", *source, decision.reason)
            return _answer(decision.status, decision.reason)
        if decision.payload is None:
            return _answer(200, "no record passed the filter")
        if self._in_flight >= self._max_in_flight:
            return _answer(503, "too many invocations in flight")
        self._in_flight += 1
        try:
            ok = await self._call(binding.function, decision.payload)
        finally:
            self._in_flight -= 1
        if not ok:
            return _answer(503, "the invocation failed; send the event again")
        return _answer(200, f"{decision.count} record(s) delivered")

    async def _call(self, function: Key, payload: bytes) -> bool:
        try:
            async with asyncio.timeout(self._invoke_timeout):
                return await self._invoke(function, payload)
        except TimeoutError:
            log.warning("invoking %s/%s took over %g s", *function, self._invoke_timeout)
        except Exception:
            log.exception("invoking %s/%s failed", *function)
        return False


async def serve(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start serving ``app`` (``S3Receiver.app()``) on host:port (0: any free port); returns the
    runner (``await runner.cleanup()`` stops it) and the bound port."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound: int = runner.addresses[0][1]
    return runner, bound


def _answer(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text)
