"""Warning Events about Functions whose pods fail their init, so `kubectl describe fn` says why
an invocation fails (reason ``InitError``, the pod, the runtime's error type and message).

Every activator gets each report of a failed init (one per failed round of the pod). An Event is
posted at most once per pod and error type every ``REPOST_SECONDS`` by one activator, and its
name is derived from the Function, the pod and the error type, so the activators of a release
post one Event between them: the second create finds it there and leaves it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Callable

from lambdalet.activator.model import FunctionConfig
from lambdalet.api.common import GROUP, VERSION
from lambdalet.contracts.events import post_warning
from lambdalet.contracts.problems import Problem
from lambdalet.k8s import KubeClient, KubeError

log = logging.getLogger("lambdalet.activator")

REASON = "InitError"
REPOST_SECONDS = 600.0
COMPONENT = "lambdalet-activator"
MAX_REMEMBERED = 10_000  # (pod, error type) pairs; the oldest go first


def event_name(config: FunctionConfig, pod: str, error_type: str) -> str:
    digest = hashlib.sha256(f"{config.uid}/{pod}/{error_type}".encode()).hexdigest()[:16]
    return f"{config.name}.init-error.{digest}"


def message(pod: str, error_type: str, error: bytes) -> str:
    """``pod <pod>: <errorType>: <errorMessage>`` from the runtime's error document."""
    try:
        text = json.loads(error).get("errorMessage")
    except (ValueError, AttributeError):
        text = None
    detail = f": {text}" if isinstance(text, str) and text else ""
    return f"pod {pod}: {error_type}{detail}"


class InitErrorEvents:
    def __init__(self, client: KubeClient, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._clock = clock
        self._posted: dict[tuple[str, str, str, str], float] = {}  # (ns, fn, pod, type) -> when
        self._tasks: set[asyncio.Task[None]] = set()

    def report(self, config: FunctionConfig, pod: str, error_type: str, error: bytes) -> None:
        """Post the Event in the background, unless posted for this pod and error lately."""
        key = (config.namespace, config.name, pod, error_type)
        now = self._clock()
        last = self._posted.get(key)
        if last is not None and now - last < REPOST_SECONDS:
            return
        self._posted.pop(key, None)
        self._posted[key] = now
        while len(self._posted) > MAX_REMEMBERED:
            del self._posted[next(iter(self._posted))]
        task = asyncio.create_task(self._post(config, pod, error_type, error))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, config: FunctionConfig, pod: str, error_type: str, error: bytes) -> None:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Function",
            "metadata": {"name": config.name, "namespace": config.namespace, "uid": config.uid},
        }
        try:
            await post_warning(
                self._client,
                body,
                Problem(REASON, message(pod, error_type, error)),
                name=event_name(config, pod, error_type),
                component=COMPONENT,
            )
        except KubeError as exc:
            log.warning("%s/%s: could not post an Event: %s", *config.key, exc)

    async def flush(self) -> None:
        """Wait for the Events being posted."""
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
