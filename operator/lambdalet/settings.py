"""Operator configuration, built once from the environment and passed down (frozen).

Every knob is an environment variable of the operator's Deployment (the Helm chart sets them):

    LAMBDALET_RUNTIME_IMAGE_PREFIX   runtime images are <prefix><runtime>:<tag>
                                     (default localhost/lambdalet-runtime-)
    LAMBDALET_RUNTIME_IMAGE_TAG      (default: the package version)
    LAMBDALET_IMAGE_PULL_POLICY      for runtime images (default IfNotPresent)
    LAMBDALET_ACTIVATOR_URL          base URL of the activator Service, for status.url
                                     (default http://lambdalet-activator.lambdalet-system.svc)
    LAMBDALET_ANNOUNCE_URL           where a function pod announces itself once its runtime is
                                     initialised; the agent sends it to every address the host
                                     resolves to (default http://lambdalet-activator-peers.
                                     lambdalet-system.svc:8081/v1/announce, a headless Service)
    LAMBDALET_NAMESPACES             namespaces to watch, space-separated (default: all); each
                                     entry is a kopf namespace pattern: globs, and comma-joined
                                     exclusions such as "team-*,!team-test" or "!kube-*"
    LAMBDALET_RESYNC_SECONDS         how often every Function is re-checked (default 300)
    LAMBDALET_LEADER_ELECTION_NAMESPACE
                                     run as one of several replicas: the one holding Lease
                                     lambdalet-operator in this namespace works, the others wait
                                     (default: none, a single replica that always works)
    LAMBDALET_POD_NAME               this replica's name in that Lease (default: host/pid)
    LAMBDALET_DISPATCHER_NAMESPACE   namespace of the event dispatcher replicas, whose Leases
                                     tell which replicas are live; EventSources are assigned
                                     among those (default lambdalet-system)

The autoscaler (``lambdalet.autoscaler``), inside the operator process:

    LAMBDALET_AUTOSCALER_PORT_NUMBER port of the stats/poke endpoint the activators call
                                     (default 8082; 0 serves no endpoint)
    LAMBDALET_AUTOSCALER_HOST        address it listens on (default: all interfaces)
    LAMBDALET_AUTOSCALER_TICK_SECONDS
                                     how often every Function's count is decided (default 1;
                                     a cold-start poke decides for its Function at once)
    LAMBDALET_AUTOSCALER_STABLE_WINDOW_SECONDS
                                     window of the stable concurrency average (default 60)
    LAMBDALET_AUTOSCALER_PANIC_WINDOW_SECONDS
                                     window of the panic average, at least 1 and at most the
                                     stable window (default 6)
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from lambdalet import __version__
from lambdalet.api.function import PullPolicy, Runtime
from lambdalet.service_links import LinkGuard

# A namespace name (DNS-1123 label).
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


class SettingsError(ValueError):
    """An environment variable holds a value the operator cannot use."""


@dataclass(frozen=True)
class Settings:
    runtime_image_prefix: str = "localhost/lambdalet-runtime-"
    runtime_image_tag: str = __version__
    image_pull_policy: PullPolicy = PullPolicy.IF_NOT_PRESENT
    activator_url: str = "http://lambdalet-activator.lambdalet-system.svc"
    announce_url: str = "http://lambdalet-activator-peers.lambdalet-system.svc:8081/v1/announce"
    namespaces: tuple[str, ...] = ()
    resync_seconds: float = 300.0
    dispatcher_namespace: str = "lambdalet-system"
    leader_election_namespace: str | None = None
    identity: str = ""
    autoscaler_port: int = 8082
    autoscaler_host: str = ""  # all interfaces
    autoscaler_tick_seconds: float = 1.0
    autoscaler_stable_window_seconds: float = 60.0
    autoscaler_panic_window_seconds: float = 6.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        env = LinkGuard(env, SettingsError)
        defaults = cls()
        try:
            pull_policy = PullPolicy(
                env.get("LAMBDALET_IMAGE_PULL_POLICY", defaults.image_pull_policy)
            )
            resync = _seconds(env, "LAMBDALET_RESYNC_SECONDS", defaults.resync_seconds)
            port = _port(env, "LAMBDALET_AUTOSCALER_PORT_NUMBER", defaults.autoscaler_port)
            tick = _seconds(
                env, "LAMBDALET_AUTOSCALER_TICK_SECONDS", defaults.autoscaler_tick_seconds
            )
            stable = _seconds(
                env,
                "LAMBDALET_AUTOSCALER_STABLE_WINDOW_SECONDS",
                defaults.autoscaler_stable_window_seconds,
            )
            panic = _seconds(
                env,
                "LAMBDALET_AUTOSCALER_PANIC_WINDOW_SECONDS",
                defaults.autoscaler_panic_window_seconds,
            )
        except ValueError as exc:
            raise SettingsError(str(exc)) from exc
        if not 1 <= panic <= stable:
            raise SettingsError(
                "LAMBDALET_AUTOSCALER_PANIC_WINDOW_SECONDS must be at least 1 and at most "
                f"LAMBDALET_AUTOSCALER_STABLE_WINDOW_SECONDS, not {panic} (stable: {stable})"
            )
        namespaces = tuple(env.get("LAMBDALET_NAMESPACES", "").split())
        dispatcher_namespace = env.get(
            "LAMBDALET_DISPATCHER_NAMESPACE", defaults.dispatcher_namespace
        ).strip()
        if not DNS_LABEL.fullmatch(dispatcher_namespace):
            raise SettingsError(
                "LAMBDALET_DISPATCHER_NAMESPACE must be a namespace name (lowercase letters, "
                f"digits and '-', at most 63), not {dispatcher_namespace!r}"
            )
        election = env.get("LAMBDALET_LEADER_ELECTION_NAMESPACE", "").strip() or None
        if election is not None and not DNS_LABEL.fullmatch(election):
            raise SettingsError(
                f"LAMBDALET_LEADER_ELECTION_NAMESPACE must be a namespace name, not {election!r}"
            )
        return cls(
            runtime_image_prefix=env.get(
                "LAMBDALET_RUNTIME_IMAGE_PREFIX", defaults.runtime_image_prefix
            ),
            runtime_image_tag=env.get("LAMBDALET_RUNTIME_IMAGE_TAG", defaults.runtime_image_tag),
            image_pull_policy=pull_policy,
            activator_url=env.get("LAMBDALET_ACTIVATOR_URL", defaults.activator_url).rstrip("/"),
            announce_url=env.get("LAMBDALET_ANNOUNCE_URL", defaults.announce_url),
            namespaces=namespaces,
            resync_seconds=resync,
            dispatcher_namespace=dispatcher_namespace,
            leader_election_namespace=election,
            identity=env.get("LAMBDALET_POD_NAME", ""),
            autoscaler_port=port,
            autoscaler_host=env.get("LAMBDALET_AUTOSCALER_HOST", defaults.autoscaler_host),
            autoscaler_tick_seconds=tick,
            autoscaler_stable_window_seconds=stable,
            autoscaler_panic_window_seconds=panic,
        )

    def runtime_image(self, runtime: Runtime) -> str:
        """The image of a built-in runtime, e.g. localhost/lambdalet-runtime-python3.12:0.1.0."""
        return f"{self.runtime_image_prefix}{runtime.value}:{self.runtime_image_tag}"

    def function_url(self, namespace: str, name: str) -> str:
        return f"{self.activator_url}/fn/{namespace}/{name}"


def _seconds(env: Mapping[str, str], variable: str, default: float) -> float:
    """A positive, finite number of seconds: nan and inf would silently stop a loop that sleeps
    that long, and 0 would make it spin."""
    raw = env.get(variable)
    try:
        value = default if raw is None else float(raw)
    except ValueError:
        value = math.nan
    if not (0 < value < math.inf):
        raise SettingsError(f"{variable} must be a positive, finite number, not {raw!r}")
    return value


def _port(env: Mapping[str, str], variable: str, default: int) -> int:
    raw = env.get(variable)
    try:
        value = default if raw is None else int(raw)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise SettingsError(f"{variable} must be a port number (0 to 65535), not {raw!r}")
    return value
