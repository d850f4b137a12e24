"""Activator configuration, built once from the environment and passed down (frozen).

LAMBDALET_ACTIVATOR_PORT_NUMBER   requests to functions (default 8080)
LAMBDALET_ACTIVATOR_INTERNAL_PORT_NUMBER
                                  announcements, /metrics, /healthz, /readyz (default 8081)
LAMBDALET_ACTIVATOR_PUBLIC_PORT_NUMBER
                                  requests from outside the cluster (behind an Ingress or a load
                                  balancer): only Functions with http.exposure public are served
                                  there (default 0: no public port)
LAMBDALET_AUTOSCALER_URL          the operator's autoscaler endpoint
                                  (default http://lambdalet-autoscaler.lambdalet-system.svc:8082)
LAMBDALET_ACTIVATOR_DOMAIN        host routes <name>.<namespace>.<domain> (default: none)
LAMBDALET_DEFAULT_NAMESPACE       of an Invoke API FunctionName without one (default default)
LAMBDALET_HOLD_LIMIT              requests held per Function while it scales (default 1000)
LAMBDALET_HOLD_TIMEOUT_SECONDS    longest a request waits for an instance (default 60)
LAMBDALET_MAX_BODY_BYTES          request body limit (default 6291456, Lambda's 6 MB)
LAMBDALET_REDIS_URL               Redis for asynchronous invocations (default: none, so
                                  Event invocations are refused with a reason)
LAMBDALET_POD_NAME                this activator's name in reports and its Lease (default: the
                                  host name)
LAMBDALET_PEERS_NAMESPACE         where the activators keep their Leases to split each Function's
                                  reserved concurrency among themselves (``peers``; the chart: the
                                  release namespace); empty (the default): this activator is the
                                  only one and admits the whole cap
LAMBDALET_PEER_LEASE_SECONDS      the Leases' duration (default 15; renewed every third of it)
LAMBDALET_PEER_KEY                the key the activators share to hand each other invocations
                                  over their shares (``forward``); with LAMBDALET_POD_IP, this
                                  activator takes them on its internal port (default: none, so
                                  an invocation over this activator's share gets 429 at once)
LAMBDALET_POD_IP                  this activator's address as its peers reach it
LAMBDALET_VERIFY_PEER_IP          announcements must come from the announced pod IP
                                  (default true; false behind SNAT)
LAMBDALET_DRAIN_SECONDS           on SIGTERM, how long the activator goes on accepting requests
                                  while /readyz says 503 and Services stop routing to it
                                  (default 5)
LAMBDALET_SHUTDOWN_TIMEOUT_SECONDS then, how long requests in progress may take to finish
                                  (default 60; keep drain + this below the pod's
                                  terminationGracePeriodSeconds)

No name has the shape of a variable Kubernetes injects for a Service (``lambdalet.service_links``:
a ``…_PORT`` setting is what a Service ``…`` overwrites).
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass

from lambdalet.environment import Environment


@dataclass(frozen=True)
class ActivatorSettings:
    port: int = 8080
    internal_port: int = 8081
    public_port: int = 0
    host: str = "0.0.0.0"
    autoscaler_url: str = "http://lambdalet-autoscaler.lambdalet-system.svc:8082"
    domain: str | None = None
    default_namespace: str = "default"
    hold_limit: int = 1000
    hold_timeout: float = 60.0
    max_body_bytes: int = 6 * 1024 * 1024
    redis_url: str | None = None
    pod_name: str = ""
    verify_peer_ip: bool = True
    namespaces: tuple[str, ...] = ()
    peers_namespace: str | None = None
    peer_lease_seconds: float = 15.0
    peer_key: str | None = None
    pod_ip: str | None = None
    drain_seconds: float = 5.0
    shutdown_timeout: float = 60.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ActivatorSettings:
        # An empty number is the default: the chart may leave a value empty.
        read = Environment(env, empty="unset")
        return cls(
            port=read.port("LAMBDALET_ACTIVATOR_PORT_NUMBER", cls.port),
            internal_port=read.port("LAMBDALET_ACTIVATOR_INTERNAL_PORT_NUMBER", cls.internal_port),
            public_port=read.port("LAMBDALET_ACTIVATOR_PUBLIC_PORT_NUMBER", cls.public_port),
            host=read.text("LAMBDALET_ACTIVATOR_HOST", cls.host),
            autoscaler_url=read.url("LAMBDALET_AUTOSCALER_URL", cls.autoscaler_url),
            domain=read.optional("LAMBDALET_ACTIVATOR_DOMAIN"),
            default_namespace=read.text("LAMBDALET_DEFAULT_NAMESPACE", cls.default_namespace),
            hold_limit=read.whole("LAMBDALET_HOLD_LIMIT", cls.hold_limit, 0, 1_000_000),
            hold_timeout=read.number("LAMBDALET_HOLD_TIMEOUT_SECONDS", cls.hold_timeout, 0.1, 3600),
            max_body_bytes=read.whole(
                "LAMBDALET_MAX_BODY_BYTES", cls.max_body_bytes, 1, 64 * 1024 * 1024
            ),
            redis_url=read.optional("LAMBDALET_REDIS_URL"),
            pod_name=read.optional("LAMBDALET_POD_NAME") or socket.gethostname(),
            verify_peer_ip=read.flag("LAMBDALET_VERIFY_PEER_IP", cls.verify_peer_ip),
            namespaces=read.words("LAMBDALET_NAMESPACES"),
            peers_namespace=read.optional_namespace("LAMBDALET_PEERS_NAMESPACE"),
            peer_lease_seconds=read.number(
                "LAMBDALET_PEER_LEASE_SECONDS", cls.peer_lease_seconds, 1, 300
            ),
            peer_key=read.optional("LAMBDALET_PEER_KEY"),
            pod_ip=read.optional("LAMBDALET_POD_IP"),
            drain_seconds=read.number("LAMBDALET_DRAIN_SECONDS", cls.drain_seconds, 0, 3600),
            shutdown_timeout=read.number(
                "LAMBDALET_SHUTDOWN_TIMEOUT_SECONDS", cls.shutdown_timeout, 0, 3600
            ),
        )
