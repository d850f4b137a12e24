"""Operator configuration, built once from the environment and passed down (frozen).

Every knob is an environment variable of the operator's Deployment (the Helm chart sets them):

    LAMBDALET_RUNTIME_IMAGE_PREFIX   runtime images are <prefix><runtime>:<tag>
                                     (default localhost/lambdalet-runtime-)
    LAMBDALET_RUNTIME_IMAGE_TAG      (default: the package version)
    LAMBDALET_IMAGE_PULL_POLICY      for runtime images (default IfNotPresent)
    LAMBDALET_ACTIVATOR_URL          base URL of the activator Service, for status.url
                                     (default http://lambdalet-activator.lambdalet-system.svc)
    LAMBDALET_NAMESPACES             namespaces to watch, space-separated (default: all); each
                                     entry is a kopf namespace pattern: globs, and comma-joined
                                     exclusions such as "team-*,!team-test" or "!kube-*"
    LAMBDALET_RESYNC_SECONDS         how often every Function is re-checked (default 300)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from lambdalet import __version__
from lambdalet.api.function import PullPolicy, Runtime


class SettingsError(ValueError):
    """An environment variable holds a value the operator cannot use."""


@dataclass(frozen=True)
class Settings:
    runtime_image_prefix: str = "localhost/lambdalet-runtime-"
    runtime_image_tag: str = __version__
    image_pull_policy: PullPolicy = PullPolicy.IF_NOT_PRESENT
    activator_url: str = "http://lambdalet-activator.lambdalet-system.svc"
    namespaces: tuple[str, ...] = ()
    resync_seconds: float = 300.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        defaults = cls()
        try:
            pull_policy = PullPolicy(
                env.get("LAMBDALET_IMAGE_PULL_POLICY", defaults.image_pull_policy)
            )
            resync = float(env.get("LAMBDALET_RESYNC_SECONDS", defaults.resync_seconds))
        except ValueError as exc:
            raise SettingsError(str(exc)) from exc
        if not (0 < resync < math.inf):  # nan and inf would silently stop the resync loop
            raise SettingsError(
                f"LAMBDALET_RESYNC_SECONDS must be a positive, finite number, not {resync}"
            )
        namespaces = tuple(env.get("LAMBDALET_NAMESPACES", "").split())
        return cls(
            runtime_image_prefix=env.get(
                "LAMBDALET_RUNTIME_IMAGE_PREFIX", defaults.runtime_image_prefix
            ),
            runtime_image_tag=env.get("LAMBDALET_RUNTIME_IMAGE_TAG", defaults.runtime_image_tag),
            image_pull_policy=pull_policy,
            activator_url=env.get("LAMBDALET_ACTIVATOR_URL", defaults.activator_url).rstrip("/"),
            namespaces=namespaces,
            resync_seconds=resync,
        )

    def runtime_image(self, runtime: Runtime) -> str:
        """The image of a built-in runtime, e.g. localhost/lambdalet-runtime-python3.12:0.1.0."""
        return f"{self.runtime_image_prefix}{runtime.value}:{self.runtime_image_tag}"

    def function_url(self, namespace: str, name: str) -> str:
        return f"{self.activator_url}/fn/{namespace}/{name}"
