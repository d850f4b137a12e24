"""Running the operator: configuration from the environment, then kopf's main loop.

``lambdalet operator`` calls ``run``; the handlers in ``lambdalet.controller.handlers`` register
themselves with kopf on import.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping

import kopf

from lambdalet.controller import handlers
from lambdalet.k8s import KubeClient, load_connection
from lambdalet.settings import Settings


async def operate(env: Mapping[str, str], *, liveness: str | None = None) -> None:
    settings = Settings.from_env(env)
    client = KubeClient(load_connection(env))
    memo = kopf.Memo(state=handlers.OperatorState(settings=settings, client=client))
    await kopf.operator(
        memo=memo,
        standalone=True,
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
        liveness_endpoint=liveness,
    )


def run(*, verbose: bool = False, liveness: str | None = None) -> int:
    kopf.configure(verbose=verbose, log_prefix=True)
    asyncio.run(operate(os.environ, liveness=liveness))
    return 0
