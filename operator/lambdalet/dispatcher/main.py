"""Running the event dispatcher: ``lambdalet dispatcher`` builds every part from the settings.

Parts: ``membership`` (this replica's Lease, so the operator assigns EventSources to it),
``supervisor`` (informers of EventSources and Functions, a runner per assigned EventSource,
queue depths to the autoscaler), the shared ``invoker`` (the activator's Invoke API), and one
HTTP endpoint (aiohttp): bucket notifications (``receiver``), ``/metrics``, ``/healthz``,
``/readyz`` (ready once the informers have listed and the Lease is written).

SIGTERM stops the runners gracefully (each settles the batch in hand), then deletes the Lease so
the operator moves the EventSources at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from lambdalet.contracts.invocation import InvokeResult
from lambdalet.contracts.keys import Key
from lambdalet.contracts.secrets import SecretTokens
from lambdalet.dispatcher.delivery.invoker import ActivatorInvoker, InvokerSettings, invoke_timeout
from lambdalet.dispatcher.metrics import DispatcherCollector
from lambdalet.dispatcher.replica.membership import Membership
from lambdalet.dispatcher.replica.runners import Context
from lambdalet.dispatcher.replica.supervisor import Supervisor
from lambdalet.dispatcher.s3.receiver import S3Receiver, serve
from lambdalet.dispatcher.settings import DispatcherSettings
from lambdalet.k8s import KubeClient, load_connection
from lambdalet.signals import stop_on_signals

log = logging.getLogger("lambdalet.dispatcher")

# The S3 receiver's deadline for one invocation: a cold start's hold and a 60 s Function.
S3_INVOKE_TIMEOUT = invoke_timeout(60.0)


async def dispatch(env: Mapping[str, str], *, stop: asyncio.Event | None = None) -> None:
    settings = DispatcherSettings.from_env(env)
    client = KubeClient(load_connection(env), user_agent="lambdalet-dispatcher")
    tokens = SecretTokens(client)
    supervisor: Supervisor | None = None

    async def authorization(function: Key) -> str | None:
        """A Function with http.auth asks the dispatcher for its token too (the activator
        checks the Invoke API as it checks HTTP routes); read from its Secret, cached 10 s."""
        ref = supervisor.auth_secret(function) if supervisor is not None else None
        return None if ref is None else await tokens.token(function[0], *ref)

    invoker = ActivatorInvoker(
        InvokerSettings(settings.activator_url, max_connections=settings.max_invocations),
        authorization=authorization,
    )

    async def invoke(function: Key, payload: bytes) -> bool:
        answer = await invoker.invoke(function, payload, timeout=S3_INVOKE_TIMEOUT)
        return isinstance(answer, InvokeResult) and not answer.failed

    receiver = S3Receiver(invoke, invoke_timeout=S3_INVOKE_TIMEOUT)
    context = Context(
        client=client,
        invoker=invoker,
        replica=settings.name,
        s3_url=settings.s3_url,
        webhook_key=settings.webhook_key,
        s3_queue_dir=settings.s3_queue_dir,
        s3_allow_restart=settings.s3_allow_restart,
    )
    supervisor = Supervisor(
        context,
        receiver,
        namespaces=settings.namespaces,
        autoscaler_url=settings.autoscaler_url,
        report_seconds=settings.report_seconds,
    )
    membership = Membership(client, settings.name, settings.namespace)
    registry = CollectorRegistry()
    registry.register(DispatcherCollector(supervisor.snapshot, lambda: invoker.outcomes))
    app = receiver.app()
    app.router.add_get("/healthz", _ok)

    async def ready(_: web.Request) -> web.Response:
        ok = supervisor.synced.is_set() and membership.joined.is_set()
        return web.Response(status=200 if ok else 503, text="ready" if ok else "starting")

    async def metrics(_: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(registry))
        response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return response

    app.router.add_get("/readyz", ready)
    app.router.add_get("/metrics", metrics)
    runner, port = await serve(app, settings.host, settings.port)
    tasks = [asyncio.create_task(supervisor.run()), asyncio.create_task(membership.run())]
    log.info(
        "dispatcher %s serving on :%d; activator %s, autoscaler %s",
        settings.name,
        port,
        settings.activator_url,
        settings.autoscaler_url,
    )
    stop = stop or stop_on_signals()
    try:
        await stop.wait()
    finally:
        await supervisor.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await membership.leave()
        await runner.cleanup()
        await invoker.aclose()
        await client.aclose()


async def _ok(_: web.Request) -> web.Response:
    return web.Response(text="ok")


def run() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    asyncio.run(dispatch(os.environ))
    return 0
