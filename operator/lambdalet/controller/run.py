"""Running the operator: configuration from the environment, then kopf's main loop.

``lambdalet operator`` calls ``run``; the handlers in ``lambdalet.controller.handlers`` register
themselves with kopf on import. With ``LAMBDALET_LEADER_ELECTION_NAMESPACE`` set, the replica
first waits to lead (``lambdalet.controller.leader``), answering the liveness probe meanwhile,
and stops, exiting 1, when it loses the lead.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import Coroutine, Mapping
from typing import Any
from urllib.parse import urlsplit

# kopf imports the `kubernetes` client library when it is installed, only to recognise its model
# objects (which the operator never hands to kopf); that import alone costs some 60 MiB.
sys.modules.setdefault("kubernetes", None)  # type: ignore[arg-type]

import kopf  # noqa: E402
from aiohttp import web  # noqa: E402
from kopf._core.engines import peering  # noqa: E402 - kopf exports no public name for it

from lambdalet import namespaces  # noqa: E402
from lambdalet.controller import handlers  # noqa: E402, F401 - registers the handlers
from lambdalet.controller.functions.reconciler import OperatorState  # noqa: E402
from lambdalet.controller.leader import LeaderElector, label_pod  # noqa: E402
from lambdalet.k8s import KubeClient, load_connection  # noqa: E402
from lambdalet.settings import Settings  # noqa: E402


async def operate(env: Mapping[str, str], *, liveness: str | None = None) -> int:
    """Run the operator; with leader election, only while this replica leads. Returns the exit
    status: 1 when leadership was lost (the pod restarts as a follower)."""
    settings = Settings.from_env(env)
    client = KubeClient(load_connection(env))
    memo = kopf.Memo(state=OperatorState(settings=settings, client=client))
    stop: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    elector: LeaderElector | None = None
    if settings.leader_election_namespace:
        elector = LeaderElector(
            KubeClient(load_connection(env)),
            settings.leader_election_namespace,
            settings.identity or f"{socket.gethostname()}/{os.getpid()}",
        )
        # kopf serves the liveness probe once it runs; a follower answers it itself meanwhile,
        # so its pod is not restarted for waiting.
        probe = await _serve_liveness(liveness)
        namespace, pod = settings.leader_election_namespace, settings.identity
        try:
            if pod:  # in a pod named so: its label routes the autoscaler Service
                await label_pod(client, namespace, pod, leading=False)
            await _until_signalled(elector.acquire())
            if pod:
                await label_pod(client, namespace, pod, leading=True)
        finally:
            if probe is not None:
                await probe.cleanup()
    specific = namespaces.specific(settings.namespaces)
    operator = asyncio.create_task(
        kopf.operator(
            memo=memo,
            # kopf would name itself after the login user, which a pod's bare uid does not have.
            identity=peering.Identity(f"{socket.gethostname()}/{os.getpid()}"),
            standalone=True,
            # Plain names: a watch per namespace (no cluster-wide permission needed). Patterns:
            # one cluster-wide watch per resource, and the handlers skip the namespaces the
            # patterns leave out (handlers.served). kopf's own pattern support watches each
            # matching namespace on its own, and a namespace deleted before its first listing
            # completed left kopf waiting for that listing for good, stalling every handler.
            clusterwide=specific is None,
            namespaces=list(specific or ()),
            liveness_endpoint=liveness,
            stop_flag=stop,
        )
    )
    if elector is None:
        await operator
        return 0
    holding = asyncio.create_task(elector.hold())
    done, _ = await asyncio.wait({operator, holding}, return_when=asyncio.FIRST_COMPLETED)
    lost = holding in done
    if lost:
        stop.set_result(None)  # stop working at once: another replica may lead already
    holding.cancel()
    await asyncio.gather(operator, holding, return_exceptions=True)
    if not lost:
        await elector.release()
    return 1 if lost else 0


async def _until_signalled(waiting: Coroutine[Any, Any, None]) -> None:
    """Wait for ``waiting``; SIGTERM / SIGINT while waiting end the process (a follower has
    nothing to clean up)."""
    loop = asyncio.get_running_loop()
    task = asyncio.create_task(waiting)
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        raise SystemExit(0) from None
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


async def _serve_liveness(url: str | None) -> web.AppRunner | None:
    if not url:
        return None
    parsed = urlsplit(url)

    async def ok(_: web.Request) -> web.Response:
        return web.json_response({"following": True})

    app = web.Application()
    app.router.add_get(parsed.path or "/", ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, parsed.hostname, parsed.port or 80).start()
    return runner


def run(*, verbose: bool = False, liveness: str | None = None) -> int:
    kopf.configure(verbose=verbose, log_prefix=True)
    return asyncio.run(operate(os.environ, liveness=liveness))
