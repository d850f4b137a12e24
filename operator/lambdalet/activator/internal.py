"""The activator's internal port: pod announcements, Prometheus metrics, health.

    POST   /v1/announce   a function pod's runtime is ready: verify it (``announce``), then route
                          to it at once (``Proxy.announce``) -> 204; 400/403/503 with a reason
    DELETE /v1/announce   the pod is stopping: verified the same way, then no new invocations
    POST   /v1/init-error a function pod's init failed: verified the same way; requests held for
                          the Function while no pod can serve get the error at once
                          (``Proxy.init_failed``), and a Warning Event says why on the
                          Function (``warnings``) -> 204
    POST   /2015-03-31/functions/function/invocations  with lambdalet-forwarded-function: an
                          invocation a peer activator could not take within its share of the
                          Function's reserved concurrency (``forward``; the activators' key)
    GET    /metrics       Prometheus exposition (``metrics``)
    GET    /healthz       the process serves
    GET    /readyz        the Functions and endpoints have been listed once (until then the
                          activator would answer 404 for Functions that exist), and the
                          activator is not stopping (``draining``)

Served by the same ``http1`` server as the public port, on a port that only the cluster reaches
(the Helm chart exposes it through the headless Service the agents announce to).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import KW_ONLY, dataclass, field

from lambdalet.activator.announce import (
    AnnounceError,
    Announcement,
    InitErrorReport,
    ReviewCache,
    VerifiedPod,
    verify,
)
from lambdalet.activator.events import HttpRequest, HttpResponse
from lambdalet.activator.forward import is_forwarded
from lambdalet.activator.kube import ClusterView
from lambdalet.activator.metrics import CONTENT_TYPE, Metrics
from lambdalet.activator.proxy import Proxy
from lambdalet.activator.warnings import InitErrorEvents
from lambdalet.k8s import KubeClient

log = logging.getLogger("lambdalet.activator")

_JSON = (("content-type", "application/json"),)


@dataclass(eq=False)
class Internal:
    client: KubeClient
    proxy: Proxy
    metrics: Metrics
    view: ClusterView
    _: KW_ONLY
    verify_peer_ip: bool = True
    init_errors: InitErrorEvents | None = None
    forwarded: Callable[[HttpRequest], Awaitable[HttpResponse]] | None = None
    # Set on SIGTERM: not ready, so Services stop routing here.
    draining: bool = field(init=False, default=False)
    _cache: ReviewCache = field(init=False, default_factory=ReviewCache)

    async def handle(self, request: HttpRequest) -> HttpResponse:
        path, method = request.path, request.method
        if self.forwarded is not None and is_forwarded(request):
            return await self.forwarded(request)
        if path == "/v1/announce" and method in ("POST", "DELETE"):
            return await self._announce(request, leaving=method == "DELETE")
        if path == "/v1/init-error" and method == "POST":
            return await self._init_error(request)
        if path == "/metrics" and method == "GET":
            return HttpResponse(200, (("content-type", CONTENT_TYPE),), self.metrics.exposition())
        if path == "/healthz":
            return HttpResponse(200, (("content-type", "text/plain"),), b"ok")
        if path == "/readyz":
            if self.draining:
                return HttpResponse(503, (("content-type", "text/plain"),), b"stopping")
            if self.view.synced.is_set():
                return HttpResponse(200, (("content-type", "text/plain"),), b"ok")
            return HttpResponse(503, (("content-type", "text/plain"),), b"listing Functions")
        return _error(404, "Not Found")

    async def _verified(
        self, request: HttpRequest, announcement: Announcement, *, leaving: bool = False
    ) -> VerifiedPod | HttpResponse:
        """The pod that made ``request``, or the response refusing it."""
        authorization = next(
            (value for name, value in request.headers if name.lower() == "authorization"), ""
        )
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return _error(401, "an announcement needs Authorization: Bearer <token>")
        try:
            return await verify(
                self.client,
                token.strip(),
                announcement,
                request.source_ip,
                check_peer=self.verify_peer_ip,
                cache=self._cache,
                leaving=leaving,
            )
        except AnnounceError as exc:
            log.warning("announcement from %s refused: %s", request.source_ip, exc.reason)
            return _error(exc.status, exc.reason)

    async def _init_error(self, request: HttpRequest) -> HttpResponse:
        try:
            report = InitErrorReport.from_json(request.body)
        except AnnounceError as exc:
            log.warning("init-error report from %s refused: %s", request.source_ip, exc.reason)
            return _error(exc.status, exc.reason)
        pod = await self._verified(request, report.announcement)
        if isinstance(pod, HttpResponse):
            return pod
        if not self.proxy.init_failed(pod.key, pod.ip, report.error):
            return _error(404, f"no Function {pod.key[0]}/{pod.key[1]} here (yet)")
        log.info("pod %s of %s/%s failed its init: %s", pod.pod, *pod.key, report.error_type)
        config = self.proxy.config(pod.key)
        if self.init_errors is not None and config is not None:
            self.init_errors.report(config, pod.pod, report.error_type, report.error)
        return HttpResponse(204, (), b"")

    async def _announce(self, request: HttpRequest, *, leaving: bool) -> HttpResponse:
        try:
            announcement = Announcement.from_json(request.body)
        except AnnounceError as exc:
            log.warning("announcement from %s refused: %s", request.source_ip, exc.reason)
            return _error(exc.status, exc.reason)
        pod = await self._verified(request, announcement, leaving=leaving)
        if isinstance(pod, HttpResponse):
            return pod
        if leaving:
            self.proxy.withdraw(pod.key, pod.ip)
            log.info("pod %s of %s/%s is stopping", pod.pod, *pod.key)
        elif not self.proxy.announce(pod.key, pod.ip, pod.port):
            return _error(404, f"no Function {pod.key[0]}/{pod.key[1]} here (yet)")
        else:
            log.info("pod %s (%s) of %s/%s announced itself ready", pod.pod, pod.ip, *pod.key)
        return HttpResponse(204, (), b"")


def _error(status: int, message: str) -> HttpResponse:
    return HttpResponse(status, _JSON, json.dumps({"message": message}).encode())
