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

from collections.abc import Mapping
from dataclasses import dataclass

from lambdalet import __version__
from lambdalet.api.function import PullPolicy, Runtime
from lambdalet.environment import Environment, SettingsError


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
        # An empty number or namespace is a mistake in the Deployment, not the default.
        read = Environment(env, empty="invalid")
        stable = read.seconds(
            "LAMBDALET_AUTOSCALER_STABLE_WINDOW_SECONDS", cls.autoscaler_stable_window_seconds
        )
        panic = read.seconds(
            "LAMBDALET_AUTOSCALER_PANIC_WINDOW_SECONDS", cls.autoscaler_panic_window_seconds
        )
        if not 1 <= panic <= stable:
            raise SettingsError(
                "LAMBDALET_AUTOSCALER_PANIC_WINDOW_SECONDS must be at least 1 and at most "
                f"LAMBDALET_AUTOSCALER_STABLE_WINDOW_SECONDS, not {panic} (stable: {stable})"
            )
        return cls(
            runtime_image_prefix=read.text(
                "LAMBDALET_RUNTIME_IMAGE_PREFIX", cls.runtime_image_prefix
            ),
            runtime_image_tag=read.text("LAMBDALET_RUNTIME_IMAGE_TAG", cls.runtime_image_tag),
            image_pull_policy=read.choice("LAMBDALET_IMAGE_PULL_POLICY", cls.image_pull_policy),
            activator_url=read.url("LAMBDALET_ACTIVATOR_URL", cls.activator_url),
            announce_url=read.text("LAMBDALET_ANNOUNCE_URL", cls.announce_url),
            namespaces=read.words("LAMBDALET_NAMESPACES"),
            resync_seconds=read.seconds("LAMBDALET_RESYNC_SECONDS", cls.resync_seconds),
            dispatcher_namespace=read.namespace(
                "LAMBDALET_DISPATCHER_NAMESPACE", cls.dispatcher_namespace
            ),
            leader_election_namespace=read.optional_namespace(
                "LAMBDALET_LEADER_ELECTION_NAMESPACE"
            ),
            identity=read.text("LAMBDALET_POD_NAME", ""),
            autoscaler_port=read.port("LAMBDALET_AUTOSCALER_PORT_NUMBER", cls.autoscaler_port),
            autoscaler_host=read.text("LAMBDALET_AUTOSCALER_HOST", cls.autoscaler_host),
            autoscaler_tick_seconds=read.seconds(
                "LAMBDALET_AUTOSCALER_TICK_SECONDS", cls.autoscaler_tick_seconds
            ),
            autoscaler_stable_window_seconds=stable,
            autoscaler_panic_window_seconds=panic,
        )

    def runtime_image(self, runtime: Runtime) -> str:
        """The image of a built-in runtime, e.g. localhost/lambdalet-runtime-python3.12:0.1.0."""
        return f"{self.runtime_image_prefix}{runtime.value}:{self.runtime_image_tag}"

    def function_url(self, namespace: str, name: str) -> str:
        return f"{self.activator_url}/fn/{namespace}/{name}"
