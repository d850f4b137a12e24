"""Event dispatcher configuration, built once from the environment and passed down (frozen).

LAMBDALET_DISPATCHER_NAME         this replica's name: its Lease and the EventSources'
                                  status.assignedReplica (default: the host name; the chart
                                  passes the pod name)
LAMBDALET_DISPATCHER_NAMESPACE    where its Lease lives, the namespace the operator watches for
                                  dispatcher Leases (default lambdalet-system)
LAMBDALET_ACTIVATOR_URL           where Functions are invoked (Lambda's Invoke API)
                                  (default http://lambdalet-activator.lambdalet-system.svc)
LAMBDALET_AUTOSCALER_URL          where queue depths are reported
                                  (default http://lambdalet-autoscaler.lambdalet-system.svc:8082)
LAMBDALET_NAMESPACES              the operator's namespaces, read as the operator reads them
LAMBDALET_DISPATCHER_HOST         address of the HTTP endpoint (default 0.0.0.0)
LAMBDALET_DISPATCHER_PORT_NUMBER  its port: bucket notifications /s3/<namespace>/<name>,
                                  /metrics, /healthz, /readyz (default 8080)
LAMBDALET_DISPATCHER_S3_URL       the endpoint's URL as S3 servers reach it, for the webhook
                                  targets set up on them (default: none; S3 EventSources then
                                  report SourceMisconfigured)
LAMBDALET_DISPATCHER_WEBHOOK_KEY  secret the per-EventSource webhook tokens are derived from
                                  (required for S3 EventSources)
LAMBDALET_DISPATCHER_S3_QUEUE_DIR an absolute directory on the MinIO server where its webhook
                                  targets keep undelivered events (default: none; MinIO then
                                  drops an event the dispatcher did not take)
LAMBDALET_DISPATCHER_S3_ALLOW_RESTART
                                  true: restart MinIO to load a new webhook target (MinIO loads
                                  targets only at start); false (default): the EventSource says
                                  SourceMisconfigured until an administrator restarts it
LAMBDALET_DISPATCHER_REPORT_SECONDS
                                  how often queue depths go to the autoscaler (default 1)
LAMBDALET_MAX_INVOCATIONS         invocations in flight at once, all sources together
                                  (default 64)
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass, field

from lambdalet.environment import Environment, SettingsError


@dataclass(frozen=True)
class DispatcherSettings:
    name: str = ""
    namespace: str = "lambdalet-system"
    activator_url: str = "http://lambdalet-activator.lambdalet-system.svc"
    autoscaler_url: str = "http://lambdalet-autoscaler.lambdalet-system.svc:8082"
    namespaces: tuple[str, ...] = ()
    host: str = "0.0.0.0"
    port: int = 8080
    s3_url: str | None = None
    webhook_key: bytes = field(default=b"", repr=False)
    s3_queue_dir: str | None = None
    s3_allow_restart: bool = False
    report_seconds: float = 1.0
    max_invocations: int = 64

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> DispatcherSettings:
        # An empty number or namespace is the default: the chart may leave a value empty.
        read = Environment(env, empty="unset")
        key = read.text("LAMBDALET_DISPATCHER_WEBHOOK_KEY", "")
        if key and len(key) < 16:
            raise SettingsError("LAMBDALET_DISPATCHER_WEBHOOK_KEY must be at least 16 characters")
        return cls(
            name=read.optional("LAMBDALET_DISPATCHER_NAME") or socket.gethostname(),
            namespace=read.namespace("LAMBDALET_DISPATCHER_NAMESPACE", cls.namespace),
            activator_url=read.url("LAMBDALET_ACTIVATOR_URL", cls.activator_url),
            autoscaler_url=read.url("LAMBDALET_AUTOSCALER_URL", cls.autoscaler_url),
            namespaces=read.words("LAMBDALET_NAMESPACES"),
            host=read.text("LAMBDALET_DISPATCHER_HOST", cls.host),
            port=read.port("LAMBDALET_DISPATCHER_PORT_NUMBER", cls.port),
            s3_url=(read.optional("LAMBDALET_DISPATCHER_S3_URL") or "").rstrip("/") or None,
            webhook_key=key.encode(),
            s3_queue_dir=read.optional("LAMBDALET_DISPATCHER_S3_QUEUE_DIR"),
            s3_allow_restart=read.flag(
                "LAMBDALET_DISPATCHER_S3_ALLOW_RESTART", cls.s3_allow_restart
            ),
            report_seconds=read.number(
                "LAMBDALET_DISPATCHER_REPORT_SECONDS", cls.report_seconds, 0.1, 300
            ),
            max_invocations=read.whole("LAMBDALET_MAX_INVOCATIONS", cls.max_invocations, 1, 10_000),
        )
