"""S3 EventSources on this replica: the receiver's bindings, and the clean-up of deleted ones.

Every replica serves bucket notifications for every S3 EventSource (the S3 server posts to the
dispatcher Service, whichever replica answers), so the S3 receiver's bindings follow all of them;
the bucket's notification setup is the assigned replica's runner. A deleted S3 EventSource's rule
and webhook target are taken off the server by the replica that ran it
(``lambdalet.dispatcher.s3.notifications.remove``), best effort.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from lambdalet.api.eventsource import EventSource
from lambdalet.contracts.keys import Key
from lambdalet.contracts.views import View
from lambdalet.dispatcher.replica.runners import (
    Assignment,
    Context,
    SecretMissing,
    aws_credentials,
    webhook_token,
)
from lambdalet.dispatcher.s3 import notifications
from lambdalet.dispatcher.s3.events import DEFAULT_REGION, S3Filter
from lambdalet.dispatcher.s3.receiver import S3Binding, S3Receiver
from lambdalet.dispatcher.sources.source import SourceError
from lambdalet.k8s import KubeError

log = logging.getLogger("lambdalet.dispatcher")


class Buckets:
    def __init__(self, context: Context, receiver: S3Receiver) -> None:
        self._context = context
        self._receiver = receiver
        self._bound: set[Key] = set()
        self._cleanups: set[asyncio.Task[None]] = set()

    def bind(self, s3: Mapping[Key, Assignment]) -> None:
        """Bind the receiver to exactly these S3 EventSources."""
        context = self._context
        for key in self._bound - s3.keys():
            self._receiver.unbind(key)
        for key, a in s3.items():
            spec = a.spec.s3
            assert spec is not None
            self._receiver.bind(
                key,
                S3Binding(
                    function=a.function,
                    token=webhook_token(context.webhook_key, a.namespace, a.name, a.uid),
                    filter=S3Filter.from_spec(spec),
                    region=DEFAULT_REGION,
                ),
            )
        self._bound = set(s3)

    def clean_up(self, view: View[EventSource]) -> None:
        """A deleted S3 EventSource this replica ran: take its notification rule and webhook
        target off the server (best effort: without its credentials, e.g. when the whole
        namespace went, the server keeps them; an unknown target's events then get 404)."""
        if (view.body.get("status") or {}).get("assignedReplica") != self._context.replica:
            return
        source = view.model
        if source is None or source.spec.s3 is None:
            return
        task = asyncio.create_task(self._remove(source))
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    async def _remove(self, source: EventSource) -> None:
        spec = source.spec.s3
        assert spec is not None
        namespace, name = source.metadata.namespace or "default", source.metadata.name or ""
        try:
            credentials = None
            if spec.credentials_secret is not None:
                credentials = await aws_credentials(
                    self._context.client, namespace, spec.credentials_secret.name
                )
            await notifications.remove(
                spec, namespace=namespace, name=name, credentials=credentials
            )
            log.info("removed the bucket notification of EventSource %s/%s", namespace, name)
        except (SecretMissing, SourceError, KubeError) as exc:
            log.warning(
                "EventSource %s/%s is gone, its bucket notification stays: %s",
                namespace,
                name,
                exc,
            )
