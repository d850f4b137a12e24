"""The activator's invoker: places each invocation on a ready pod, holding it while none can serve.

Where it sits: ``app`` (HTTP front and invoke API) and ``asyncinvoke`` call ``Proxy.invoke`` with an
event; ``kube`` and the announcement endpoint keep each Function's config and pods current
(``set_config``, ``set_ready``, ``announce``, ``withdraw``); ``stats`` reads ``snapshot`` once a
second for the autoscaler. ``admission`` decides; this module keeps the counts and the waiters.
Reserved concurrency is admitted up to this activator's share of the cap (``Shares``: ``peers``
splits it among the live activators; ``WholeCap`` when there is only one).

A held request waits on a future in its Function's bounded FIFO. Whenever a slot frees up (an
invocation ends, a pod appears) the slot is handed to the oldest waiter directly, already counted
as in flight, so there is no stampede and no request is overtaken. A waiter that reaches its
deadline gets 504; a cold start (no pod at all) pokes the autoscaler at once.

Pods come from two sources: the EndpointSlices' ready addresses, and announcements of pods whose
runtime has just initialised (verified in ``announce``), which arrive about half a second before
the kubelet reports the pod ready. An announced pod is trusted until the EndpointSlices have
listed it and then dropped it, or for ``ANNOUNCED_GRACE`` seconds if they never list it. A pod
that refuses a connection is skipped for a while (``DOWN_FIRST_SECONDS``, doubling) and then tried
again; the request goes to another pod or waits, as nothing of it ran.

A pod whose init failed reports it (``init_failed``, from the agent through the announcement
endpoint). While the Function has no pod to route to, the requests held for it and those that
come after get that init error at once, as the pod itself would answer them (502,
``X-Amz-Function-Error: Unhandled``, the runtime's error document), instead of waiting until their
deadline. The report counts until a pod of the Function is ready, the failed pod stops, or
``INIT_FAILURE_SECONDS`` pass without another (the agent reports every failed round).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from lambdalet.activator.admission import Verdict, admit, least_loaded
from lambdalet.activator.forward import Forwarder
from lambdalet.activator.metrics import Metrics
from lambdalet.activator.model import FunctionConfig
from lambdalet.activator.upstream import ConnectFailed, ExchangeFailed, Pool, StaleConnection
from lambdalet.backoff import backoff
from lambdalet.contracts.invocation import InvokeRejected, InvokeResult
from lambdalet.contracts.keys import Key

log = logging.getLogger("lambdalet.activator")

ANNOUNCED_GRACE = 30.0
# Extra time over the function's own timeout for the pod's answer (the agent itself answers a
# timed-out invocation with Lambda's Sandbox.Timedout error).
EXCHANGE_MARGIN = 5.0
# An agent answers 429 when all its slots are busy: another activator filled them. Retry after
# this long, until the request's deadline.
BUSY_RETRY_SECONDS = 0.01
# A pod that refused a connection is skipped for a while, doubling from the first to the last
# value; the EndpointSlices remove pods that are really gone.
DOWN_FIRST_SECONDS = 0.5
DOWN_MAX_SECONDS = 10.0
# The agent retries a failed init at most 5 minutes apart and reports each failure.
INIT_FAILURE_SECONDS = 330.0


class Shares(Protocol):
    """This activator's part of a Function's reserved concurrency (``peers``); None: no cap."""

    def share(self, config: FunctionConfig) -> int | None: ...


class WholeCap:
    """The one activator there is: its share is the whole cap."""

    def share(self, config: FunctionConfig) -> int | None:
        return config.reserved


@dataclass(frozen=True)
class ProxyLimits:
    hold_limit: int = 1000  # held requests per Function
    hold_timeout: float = 60.0  # seconds a request may wait for a pod


@dataclass(eq=False)
class Pod:
    ip: str
    port: int
    capacity: int
    in_flight: int = 0
    in_slice: bool = False  # listed ready by the EndpointSlices at least once
    announced_at: float | None = None
    failures: int = 0  # connections refused in a row
    down_until: float = 0.0  # skipped until then after a refused connection

    @property
    def address(self) -> tuple[str, int]:
        return (self.ip, self.port)


@dataclass(frozen=True)
class InitFailure:
    """The last init failure a pod of a Function reported."""

    ip: str  # of the pod that reported it
    error: bytes  # the error document
    until: float  # loop time it stops counting


class _Throttled(Exception):
    """This activator's share of the Function's reserved concurrency is in use."""

    def __init__(self, rejection: InvokeRejected) -> None:
        super().__init__(rejection.message)
        self.rejection = rejection


class _InitFailed(Exception):
    def __init__(self, failure: InitFailure) -> None:
        super().__init__("init failed")
        self.failure = failure


@dataclass(eq=False)
class Target:
    """One Function as the activator sees it: config, pods, counts and waiters."""

    config: FunctionConfig
    pods: dict[str, Pod] = field(default_factory=dict)
    in_flight: int = 0
    waiters: deque[asyncio.Future[Pod]] = field(default_factory=deque)
    # Time-weighted in-flight + held since the last snapshot, for the autoscaler.
    area: float = 0.0
    changed_at: float = 0.0
    busy_in_period: bool = False
    cold_since: float | None = None  # first held request of a cold start
    cold_start: float | None = None  # seconds the latest cold start took, until reported
    poked_at: float | None = None
    init_failure: InitFailure | None = None

    @property
    def load(self) -> int:
        return self.in_flight + len(self.waiters)


class Proxy:
    def __init__(
        self,
        pool: Pool,
        *,
        poke: Callable[[Key], None],
        metrics: Metrics,
        limits: ProxyLimits | None = None,
        shares: Shares | None = None,
        forwarder: Forwarder | None = None,
    ) -> None:
        """``forwarder``: where an invocation over this activator's share goes before it gets
        429 (the peers holding shares); None: 429 at once."""
        self._pool = pool
        self._shares = shares or WholeCap()
        self._forwarder = forwarder
        self._metrics = metrics
        self._poke = poke
        self._limits = limits or ProxyLimits()
        self._targets: dict[Key, Target] = {}
        # Ready addresses seen before their Function (the watches are independent).
        self._early_ready: dict[Key, dict[str, int]] = {}
        self._loop = asyncio.get_running_loop()

    # -- what kube and the announcement endpoint tell us ----------------------------------------

    def config(self, key: Key) -> FunctionConfig | None:
        target = self._targets.get(key)
        return target.config if target else None

    def set_config(self, config: FunctionConfig) -> None:
        target = self._targets.get(config.key)
        if target is None:
            self._targets[config.key] = Target(config=config, changed_at=self._loop.time())
            early = self._early_ready.pop(config.key, None)
            if early:
                self.set_ready(config.key, early)
            return
        target.config = config
        for pod in target.pods.values():
            pod.capacity = config.per_instance
        self._dispatch(target)

    def remove(self, key: Key) -> None:
        target = self._targets.pop(key, None)
        if target is None:
            return
        for pod in target.pods.values():
            self._pool.forget(pod.address)
        self._metrics.forget(key)
        self._reject_waiters(target, InvokeRejected(404, "ResourceNotFoundException", "deleted"))

    def set_ready(self, key: Key, ready: Mapping[str, int]) -> None:
        """The EndpointSlices' ready addresses (ip -> port) of the Function, all of them."""
        target = self._targets.get(key)
        if target is None:
            if ready:
                self._early_ready[key] = dict(ready)
            else:
                self._early_ready.pop(key, None)
            return
        now = self._loop.time()
        if ready:
            target.init_failure = None
        for ip, port in ready.items():
            pod = target.pods.get(ip)
            if pod is None:
                pod = target.pods[ip] = Pod(ip, port, target.config.per_instance)
            pod.in_slice = True
        for ip, pod in list(target.pods.items()):
            if ip in ready:
                continue
            announced_recently = (
                pod.announced_at is not None and now - pod.announced_at < ANNOUNCED_GRACE
            )
            if pod.in_slice or not announced_recently:
                self._drop(target, pod)
        self._dispatch(target)

    def announce(self, key: Key, ip: str, port: int) -> bool:
        """A verified pod whose runtime is ready; False when the Function is unknown."""
        target = self._targets.get(key)
        if target is None:
            return False
        pod = target.pods.get(ip)
        if pod is None:
            pod = target.pods[ip] = Pod(ip, port, target.config.per_instance)
        pod.announced_at = self._loop.time()
        target.init_failure = None
        self._dispatch(target)
        return True

    def withdraw(self, key: Key, ip: str) -> None:
        """A pod that is stopping: no new invocations."""
        target = self._targets.get(key)
        if target is None:
            return
        if target.init_failure is not None and target.init_failure.ip == ip:
            target.init_failure = None  # the next pod tries its init afresh
        pod = target.pods.get(ip)
        if pod is not None:
            self._drop(target, pod)

    def init_failed(self, key: Key, ip: str, error: bytes) -> bool:
        """A verified pod whose init failed with ``error``; False when the Function is
        unknown. With no pod to route to, the held requests get the error now."""
        target = self._targets.get(key)
        if target is None:
            return False
        failure = InitFailure(ip, error, self._loop.time() + INIT_FAILURE_SECONDS)
        target.init_failure = failure
        if not target.pods:
            self._reject_waiters(target, _InitFailed(failure))
            target.cold_since = None
        return True

    # -- invoking -------------------------------------------------------------------------------

    async def invoke(
        self,
        key: Key,
        payload: bytes,
        *,
        request_id: str,
        headers: Mapping[str, str] | None = None,
        deadline: float | None = None,
        forwarded: bool = False,
    ) -> InvokeResult:
        """``forwarded``: a peer's invocation (``forward``): within this share or 429, never
        forwarded again."""
        target = self._targets.get(key)
        if target is None:
            raise InvokeRejected(
                404, "ResourceNotFoundException", f"Function not found: {key[0]}/{key[1]}"
            )
        if deadline is None:
            deadline = self._loop.time() + self._limits.hold_timeout
        sent = [("lambdalet-request-id", request_id), *(headers or {}).items()]
        timeout = target.config.timeout_seconds + EXCHANGE_MARGIN
        while True:
            try:
                pod = await self._acquire(target, deadline)
            except _Throttled as throttled:
                if not forwarded and self._forwarder is not None:
                    hold = deadline - self._loop.time()
                    result = await self._forwarder.forward(target.config, payload, sent, hold)
                    if result is not None:
                        return result
                if not forwarded:  # a peer's refusal counts where the request came in
                    self._metrics.throttled(key)
                raise throttled.rejection from None
            except _InitFailed as failed:
                return InvokeResult(
                    status=502,
                    body=failed.failure.error,
                    request_id=request_id,
                    function_error="Unhandled",
                )
            try:
                response = await self._pool.post(pod.address, payload, sent, timeout=timeout)
            except StaleConnection:
                continue  # nothing ran; dial the same or another pod afresh
            except ConnectFailed as exc:
                self._mark_down(target, pod, exc)
                continue
            except ExchangeFailed as exc:
                status = 504 if exc.timed_out else 502
                raise InvokeRejected(status, "ServiceException", str(exc)) from exc
            finally:
                self._release(target, pod)
            pod.failures = 0
            if response.status == 429 and self._loop.time() < deadline:
                await asyncio.sleep(BUSY_RETRY_SECONDS)
                continue
            return InvokeResult.of_answer(
                response.status, response.body, response.headers, request_id
            )

    async def _acquire(self, target: Target, deadline: float) -> Pod:
        config = target.config
        pod = least_loaded(self._usable(target))
        share = self._shares.share(config) if config.reserved is not None else None
        verdict = admit(
            in_flight=target.in_flight,
            held=len(target.waiters),
            reserved=share,
            hold_limit=self._limits.hold_limit,
            free_slot=pod is not None,
        )
        if verdict is Verdict.PROXY and pod is not None:
            self._account(target)
            pod.in_flight += 1
            target.in_flight += 1
            return pod
        if verdict is Verdict.THROTTLED:
            raise _Throttled(
                InvokeRejected(
                    429,
                    "TooManyRequestsException",
                    f"Rate Exceeded: {config.namespace}/{config.name} is at its reserved "
                    f"concurrency of {config.reserved}"
                    + ("" if share == config.reserved else f" (this activator's share: {share})"),
                )
            )
        failure = target.init_failure
        if failure is not None and not target.pods:
            if self._loop.time() < failure.until:
                raise _InitFailed(failure)
            target.init_failure = None
        if verdict is Verdict.OVERFLOW:
            self._metrics.overflowed(config.key)
            raise InvokeRejected(
                503,
                "ServiceUnavailable",
                f"{len(target.waiters)} requests are already waiting for "
                f"{config.namespace}/{config.name} to scale up; try again later",
            )
        return await self._hold(target, deadline)

    async def _hold(self, target: Target, deadline: float) -> Pod:
        now = self._loop.time()
        self._account(target)
        waiter: asyncio.Future[Pod] = self._loop.create_future()
        target.waiters.append(waiter)
        if not target.pods:
            if target.cold_since is None:
                target.cold_since = now
                self._metrics.cold_start(target.config.key)
            if target.poked_at is None or now - target.poked_at >= 1.0:
                target.poked_at = now
                self._poke(target.config.key)
        timer = self._loop.call_at(deadline, self._expire, target, waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            # The caller went away. A pod already handed over must be given back.
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._release(target, waiter.result())
            raise
        finally:
            timer.cancel()
            if not waiter.done() or waiter.cancelled():
                self._forget_waiter(target, waiter)

    def _expire(self, target: Target, waiter: asyncio.Future[Pod]) -> None:
        if waiter.done():
            return
        self._forget_waiter(target, waiter)
        config = target.config
        reason = "no instance became ready" if not target.pods else "every instance stayed busy"
        waiter.set_exception(
            InvokeRejected(
                504,
                "ServiceException",
                f"{config.namespace}/{config.name}: {reason} before the request's deadline",
            )
        )

    def _forget_waiter(self, target: Target, waiter: asyncio.Future[Pod]) -> None:
        if waiter in target.waiters:
            self._account(target)
            target.waiters.remove(waiter)

    def _release(self, target: Target, pod: Pod) -> None:
        self._account(target)
        pod.in_flight -= 1
        target.in_flight -= 1
        self._dispatch(target)

    def _dispatch(self, target: Target) -> None:
        """Hand free slots to the oldest waiters."""
        if target.waiters and target.cold_since is not None and target.pods:
            took = self._loop.time() - target.cold_since
            self._metrics.cold_start_done(target.config.key, took)
            target.cold_start = took
            target.cold_since = None
        while target.waiters:
            pod = least_loaded(self._usable(target))
            if pod is None:
                return
            waiter = target.waiters.popleft()
            if waiter.done():
                continue
            pod.in_flight += 1
            target.in_flight += 1
            waiter.set_result(pod)
        if target.cold_since is not None and not target.waiters:
            target.cold_since = None

    def _usable(self, target: Target) -> Iterator[Pod]:
        now = self._loop.time()
        return (pod for pod in target.pods.values() if pod.down_until <= now)

    def _mark_down(self, target: Target, pod: Pod, error: ConnectFailed) -> None:
        """Skip a pod that refused a connection for a while, then try it again."""
        pod.failures += 1
        delay = backoff(pod.failures, DOWN_FIRST_SECONDS, DOWN_MAX_SECONDS)
        pod.down_until = self._loop.time() + delay
        self._pool.forget(pod.address)
        log.info("pod %s of %s/%s unreachable, skipped for %.1f s: %s", pod.ip, *target.config.key,
                 delay, error)  # fmt: skip
        # Held requests may be waiting for exactly this pod.
        self._loop.call_at(pod.down_until, self._dispatch, target)

    def _drop(self, target: Target, pod: Pod) -> None:
        if target.pods.pop(pod.ip, None) is not None:
            self._pool.forget(pod.address)

    def _reject_waiters(self, target: Target, error: Exception) -> None:
        self._account(target)
        while target.waiters:
            waiter = target.waiters.popleft()
            if not waiter.done():
                waiter.set_exception(error)

    # -- what the autoscaler and metrics read ---------------------------------------------------

    def _account(self, target: Target) -> None:
        """Add the load since the last change to the period's area (call before changing it)."""
        now = self._loop.time()
        load = target.load
        target.area += load * (now - target.changed_at)
        target.changed_at = now
        if load:
            target.busy_in_period = True

    def snapshot(self, period: float) -> list[tuple[Key, float, int]]:
        """Per Function with load in the last ``period`` seconds: (key, average load, held now).

        The average is in-flight plus held, weighted by time, over the period. E.g. in a 1 s
        period, one request held for 0.25 s, then 3 in flight for 0.5 s, then none:
        (1 x 0.25 + 3 x 0.5) / 1 = 1.75.
        """
        out = []
        for key, target in self._targets.items():
            self._account(target)
            if target.busy_in_period or target.load:
                out.append((key, target.area / period, len(target.waiters)))
            target.area = 0.0
            target.busy_in_period = target.load > 0
        return out

    def cold_starts(self) -> dict[Key, float]:
        """The cold starts that ended since the last call: seconds from a Function's first held
        request to an instance taking it (the latest one, when there were several)."""
        out = {}
        for key, target in self._targets.items():
            if target.cold_start is not None:
                out[key] = target.cold_start
                target.cold_start = None
        return out

    def capped_loads(self) -> Iterator[tuple[FunctionConfig, int]]:
        """(config, in flight + held) of every Function with reserved concurrency, for
        ``peers`` to know when this activator is within new shares."""
        return ((t.config, t.load) for t in self._targets.values() if t.config.reserved is not None)

    def loads(self) -> Iterable[tuple[Key, int, int]]:
        """(key, in flight, held) for every Function, for the metrics endpoint."""
        return ((key, t.in_flight, len(t.waiters)) for key, t in self._targets.items())

    def close(self) -> None:
        for target in self._targets.values():
            self._reject_waiters(
                target, InvokeRejected(503, "ServiceUnavailable", "the activator is stopping")
            )
        self._pool.close()
