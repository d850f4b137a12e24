"""Running the activator: ``lambdalet activator`` builds every part from the settings and serves.

Parts, outermost first: ``http1`` servers on the public port (``app.Activator``) and on the
internal port (``internal``: announcements, metrics, health); ``proxy`` with its ``upstream``
pool; ``kube.ClusterView`` filling the proxy; ``peers`` splitting reserved concurrency with the
other activators (when ``LAMBDALET_PEERS_NAMESPACE`` is set) and ``forward`` handing each other
invocations over their shares; ``stats.Reporter`` talking to the autoscaler; and, when Redis is
configured (``LAMBDALET_REDIS_URL``), ``asyncinvoke`` taking Event invocations and working them off
through the same proxy.

Stopping (SIGTERM) is graceful, as a Service's endpoints change only after the pod is told to
stop: /readyz turns 503 at once and every connection closes after its next response
(``http1.Connections``), but the activator goes on accepting for ``drain_seconds`` while
kube-proxy and the EndpointSlices catch up; then it stops listening, closes the connections that
stayed idle, and gives the requests still in progress (a cold start may hold one for a while) up
to ``shutdown_timeout`` to finish. Last, it deletes its peer Lease, so the other activators
take its share of reserved concurrency at once — unless invocations of a capped Function were
still in progress (they run on in the pods): then the Lease lapses and the others wait out the
Function's timeout as after a crash.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Mapping

from redis.asyncio import Redis

from lambdalet.activator.app import Activator
from lambdalet.activator.asyncinvoke.options import AsyncQueueOptions
from lambdalet.activator.asyncinvoke.queue import AsyncMetrics, AsyncQueue
from lambdalet.activator.forward import Forwarder, serve_forwarded
from lambdalet.activator.http1 import Connections, ServerLimits, serve
from lambdalet.activator.internal import Internal
from lambdalet.activator.kube import ClusterView
from lambdalet.activator.metrics import Metrics
from lambdalet.activator.peers import PeerCollector, Peers
from lambdalet.activator.proxy import Proxy, ProxyLimits
from lambdalet.activator.settings import ActivatorSettings
from lambdalet.activator.stats import Reporter
from lambdalet.activator.upstream import Pool
from lambdalet.activator.warnings import InitErrorEvents
from lambdalet.contracts.secrets import SecretTokens
from lambdalet.k8s import KubeClient, load_connection
from lambdalet.signals import stop_on_signals

log = logging.getLogger("lambdalet.activator")


async def activate(env: Mapping[str, str], *, stop: asyncio.Event | None = None) -> None:
    settings = ActivatorSettings.from_env(env)
    client = KubeClient(load_connection(env), user_agent="lambdalet-activator")
    metrics = Metrics()
    pool = Pool()
    reporter: Reporter | None = None

    def poke(key: tuple[str, str]) -> None:
        if reporter is not None:
            reporter.poke(key)

    peers: Peers | None = None
    forwarder: Forwarder | None = None
    if settings.peers_namespace:
        # Invocations over this activator's share go to the peers that hold one, given the key.
        address = None
        if settings.peer_key and settings.pod_ip:
            address = (settings.pod_ip, settings.internal_port)
        peers = Peers(
            client,
            settings.pod_name,
            settings.peers_namespace,
            lease_seconds=settings.peer_lease_seconds,
            address=address,
        )
        metrics.registry.register(PeerCollector(peers))
        if settings.peer_key:
            forwarder = Forwarder(Pool(), settings.peer_key, peers.holders)
    proxy = Proxy(
        pool,
        poke=poke,
        metrics=metrics,
        limits=ProxyLimits(hold_limit=settings.hold_limit, hold_timeout=settings.hold_timeout),
        shares=peers,
        forwarder=forwarder,
    )
    metrics.watch_loads(proxy.loads)
    queue: AsyncQueue | None = None
    redis: Redis | None = None
    if settings.redis_url:
        # Reads block for up to the queue's poll interval: the socket timeout must be longer.
        redis = Redis.from_url(settings.redis_url, socket_timeout=10, socket_connect_timeout=5)
        queue = AsyncQueue(
            redis,
            proxy,
            proxy.config,
            consumer=settings.pod_name,
            options=AsyncQueueOptions(placement_wait=settings.hold_timeout),
            metrics=AsyncMetrics(metrics.registry),
            attempted=metrics.attempted,
        )
    reporter = Reporter(
        settings.autoscaler_url,
        settings.pod_name,
        snapshot=proxy.snapshot,
        queue_depth=queue.depth if queue is not None else None,
        cold_starts=proxy.cold_starts,
    )
    view = ClusterView(client, proxy, namespaces=settings.namespaces)
    front = functools.partial(
        Activator,
        proxy,
        proxy,
        tokens=SecretTokens(client),
        async_queue=queue,
        metrics=metrics,
        domain=settings.domain,
        default_namespace=settings.default_namespace,
    )
    activator = front()
    init_errors = InitErrorEvents(client)
    internal = Internal(
        client,
        proxy,
        metrics,
        view,
        verify_peer_ip=settings.verify_peer_ip,
        init_errors=init_errors,
        forwarded=functools.partial(
            serve_forwarded,
            key=settings.peer_key,
            invoke=proxy.invoke,
            hold_limit=settings.hold_timeout,
        )
        if forwarder is not None
        else None,
    )
    limits = ServerLimits(max_body_bytes=settings.max_body_bytes)
    connections = Connections()
    public = await serve(
        activator.handle, settings.host, settings.port, limits=limits, connections=connections
    )
    private = await serve(
        internal.handle, settings.host, settings.internal_port, connections=connections
    )
    outside = None
    if settings.public_port:
        # Only http.exposure: public Functions; the cluster-local ones are 404 here.
        exposed = front(public_only=True)
        outside = await serve(
            exposed.handle,
            settings.host,
            settings.public_port,
            limits=limits,
            connections=connections,
        )
    tasks = [asyncio.create_task(view.run()), asyncio.create_task(reporter.run())]
    if peers is not None:
        tasks.append(asyncio.create_task(peers.run(proxy.capped_loads)))
    if queue is not None:
        tasks.append(asyncio.create_task(queue.run()))
    log.info(
        "activator serving on :%d (internal :%d), autoscaler %s",
        settings.port,
        settings.internal_port,
        settings.autoscaler_url,
    )
    stop = stop or stop_on_signals()
    try:
        await stop.wait()
        internal.draining = True
        connections.drain()
        log.info(
            "stopping: not ready; accepting for %gs more while Services stop routing here",
            settings.drain_seconds,
        )
        await asyncio.sleep(settings.drain_seconds)
        for server in (public, outside):
            if server is not None:
                server.close()
        connections.close_idle()
        try:
            async with asyncio.timeout(settings.shutdown_timeout):
                await connections.wait_idle()
        except TimeoutError:
            log.warning(
                "stopping with %d requests still in progress after %gs",
                connections.busy(),
                settings.shutdown_timeout,
            )
        else:
            log.info("stopping: no request in progress")
    finally:
        # Invocations cut short still run in the pods: then let the Lease lapse (see above).
        idle = not any(load for _, load in proxy.capped_loads())
        public.close()
        private.close()
        if outside is not None:
            outside.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if peers is not None and idle:
            await peers.leave()  # after the last request: the others take the share now
        proxy.close()
        await init_errors.aclose()
        await reporter.aclose()
        if redis is not None:
            await redis.aclose()
        await client.aclose()


def run() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; plain asyncio still works
        asyncio.run(activate(os.environ))
    else:
        uvloop.run(activate(os.environ))
    return 0
