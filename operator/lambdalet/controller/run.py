"""Running the operator: configuration from the environment, then kopf's main loop.

``lambdalet operator`` calls ``run``; the handlers in ``lambdalet.controller.handlers`` register
themselves with kopf on import.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import Mapping

# kopf imports the `kubernetes` client library when it is installed, only to recognise its model
# objects (which the operator never hands to kopf); that import alone costs some 60 MiB.
sys.modules.setdefault("kubernetes", None)  # type: ignore[arg-type]

import kopf  # noqa: E402
from kopf._core.engines import peering  # noqa: E402 - kopf exports no public name for it

from lambdalet.controller import handlers  # noqa: E402, F401 - registers the handlers
from lambdalet.controller.reconciler import OperatorState  # noqa: E402
from lambdalet.k8s import KubeClient, load_connection  # noqa: E402
from lambdalet.settings import Settings  # noqa: E402


async def operate(env: Mapping[str, str], *, liveness: str | None = None) -> None:
    settings = Settings.from_env(env)
    client = KubeClient(load_connection(env))
    memo = kopf.Memo(state=OperatorState(settings=settings, client=client))
    await kopf.operator(
        memo=memo,
        # kopf would name itself after the login user, which a pod's bare uid does not have.
        identity=peering.Identity(f"{socket.gethostname()}/{os.getpid()}"),
        standalone=True,
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
        liveness_endpoint=liveness,
    )


def run(*, verbose: bool = False, liveness: str | None = None) -> int:
    kopf.configure(verbose=verbose, log_prefix=True)
    asyncio.run(operate(os.environ, liveness=liveness))
    return 0
