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

import math
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from lambdalet.service_links import LinkGuard


class SettingsError(ValueError):
    """An environment variable holds a value the activator cannot use."""


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
        env = LinkGuard(env, SettingsError)
        d = cls()

        def number(name: str, default: float, low: float, high: float) -> float:
            raw = env.get(name)
            if raw is None or raw == "":
                return default
            try:
                value = float(raw)
            except ValueError as exc:
                raise SettingsError(f"{name} must be a number, not {raw!r}") from exc
            if not (low <= value <= high) or math.isnan(value):
                raise SettingsError(f"{name} must be between {low:g} and {high:g}, not {raw}")
            return value

        verify = env.get("LAMBDALET_VERIFY_PEER_IP", "true").strip().lower()
        if verify not in ("true", "false", "1", "0", "yes", "no"):
            raise SettingsError(f"LAMBDALET_VERIFY_PEER_IP must be true or false, not {verify}")
        return cls(
            port=int(number("LAMBDALET_ACTIVATOR_PORT_NUMBER", d.port, 0, 65535)),
            internal_port=int(
                number("LAMBDALET_ACTIVATOR_INTERNAL_PORT_NUMBER", d.internal_port, 0, 65535)
            ),
            public_port=int(
                number("LAMBDALET_ACTIVATOR_PUBLIC_PORT_NUMBER", d.public_port, 0, 65535)
            ),
            host=env.get("LAMBDALET_ACTIVATOR_HOST", d.host),
            autoscaler_url=env.get("LAMBDALET_AUTOSCALER_URL", d.autoscaler_url).rstrip("/"),
            domain=env.get("LAMBDALET_ACTIVATOR_DOMAIN") or None,
            default_namespace=env.get("LAMBDALET_DEFAULT_NAMESPACE", d.default_namespace),
            hold_limit=int(number("LAMBDALET_HOLD_LIMIT", d.hold_limit, 0, 1_000_000)),
            hold_timeout=number("LAMBDALET_HOLD_TIMEOUT_SECONDS", d.hold_timeout, 0.1, 3600),
            max_body_bytes=int(
                number("LAMBDALET_MAX_BODY_BYTES", d.max_body_bytes, 1, 64 * 1024 * 1024)
            ),
            redis_url=env.get("LAMBDALET_REDIS_URL") or None,
            pod_name=env.get("LAMBDALET_POD_NAME") or socket.gethostname(),
            verify_peer_ip=verify in ("true", "1", "yes"),
            namespaces=tuple(env.get("LAMBDALET_NAMESPACES", "").split()),
            peers_namespace=env.get("LAMBDALET_PEERS_NAMESPACE", "").strip() or None,
            peer_lease_seconds=number("LAMBDALET_PEER_LEASE_SECONDS", d.peer_lease_seconds, 1, 300),
            peer_key=env.get("LAMBDALET_PEER_KEY", "").strip() or None,
            pod_ip=env.get("LAMBDALET_POD_IP", "").strip() or None,
            drain_seconds=number("LAMBDALET_DRAIN_SECONDS", d.drain_seconds, 0, 3600),
            shutdown_timeout=number(
                "LAMBDALET_SHUTDOWN_TIMEOUT_SECONDS", d.shutdown_timeout, 0, 3600
            ),
        )
