"""Settings.from_env: the operator's configuration, built once from its environment."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from lambdalet import __version__
from lambdalet.api.function import PullPolicy, Runtime
from lambdalet.environment import SettingsError
from lambdalet.settings import Settings


def test_defaults() -> None:
    settings = Settings.from_env({"PATH": "/usr/bin", "LAMBDALET_UNKNOWN": "ignored"})

    assert settings == Settings(
        runtime_image_prefix="localhost/lambdalet-runtime-",
        runtime_image_tag=__version__,
        image_pull_policy=PullPolicy.IF_NOT_PRESENT,
        activator_url="http://lambdalet-activator.lambdalet-system.svc",
        namespaces=(),
        resync_seconds=300.0,
        dispatcher_namespace="lambdalet-system",
        autoscaler_port=8082,
        autoscaler_host="",
        autoscaler_tick_seconds=1.0,
        autoscaler_stable_window_seconds=60.0,
        autoscaler_panic_window_seconds=6.0,
    )


@pytest.mark.parametrize(
    ("variable", "value", "field", "expected"),
    [
        (
            "LAMBDALET_RUNTIME_IMAGE_PREFIX",
            "ghcr.io/acme/rt-",
            "runtime_image_prefix",
            "ghcr.io/acme/rt-",
        ),
        ("LAMBDALET_RUNTIME_IMAGE_TAG", "2.0.1", "runtime_image_tag", "2.0.1"),
        ("LAMBDALET_IMAGE_PULL_POLICY", "Always", "image_pull_policy", PullPolicy.ALWAYS),
        ("LAMBDALET_IMAGE_PULL_POLICY", "Never", "image_pull_policy", PullPolicy.NEVER),
        (
            "LAMBDALET_ACTIVATOR_URL",
            "http://activator.ops.svc:8080/",
            "activator_url",
            "http://activator.ops.svc:8080",
        ),
        ("LAMBDALET_NAMESPACES", "team-a", "namespaces", ("team-a",)),
        ("LAMBDALET_NAMESPACES", " team-a  team-b ", "namespaces", ("team-a", "team-b")),
        ("LAMBDALET_NAMESPACES", "team-*,!team-test", "namespaces", ("team-*,!team-test",)),
        ("LAMBDALET_NAMESPACES", "", "namespaces", ()),
        ("LAMBDALET_RESYNC_SECONDS", "12.5", "resync_seconds", 12.5),
        ("LAMBDALET_RESYNC_SECONDS", "60", "resync_seconds", 60.0),
        ("LAMBDALET_AUTOSCALER_PORT_NUMBER", "9090", "autoscaler_port", 9090),
        ("LAMBDALET_AUTOSCALER_PORT_NUMBER", "0", "autoscaler_port", 0),
        ("LAMBDALET_AUTOSCALER_HOST", "127.0.0.1", "autoscaler_host", "127.0.0.1"),
        ("LAMBDALET_AUTOSCALER_TICK_SECONDS", "0.5", "autoscaler_tick_seconds", 0.5),
        (
            "LAMBDALET_AUTOSCALER_STABLE_WINDOW_SECONDS",
            "30",
            "autoscaler_stable_window_seconds",
            30.0,
        ),
        ("LAMBDALET_AUTOSCALER_STABLE_WINDOW_SECONDS", "6", "autoscaler_stable_window_seconds", 6),
        ("LAMBDALET_AUTOSCALER_PANIC_WINDOW_SECONDS", "2", "autoscaler_panic_window_seconds", 2),
        ("LAMBDALET_AUTOSCALER_PANIC_WINDOW_SECONDS", "1", "autoscaler_panic_window_seconds", 1),
        ("LAMBDALET_DISPATCHER_NAMESPACE", "events", "dispatcher_namespace", "events"),
        ("LAMBDALET_LEADER_ELECTION_NAMESPACE", "ops", "leader_election_namespace", "ops"),
        ("LAMBDALET_POD_NAME", "operator-7d9f", "identity", "operator-7d9f"),
    ],
    ids=[
        "image-prefix",
        "image-tag",
        "pull-always",
        "pull-never",
        "activator-trailing-slash",
        "one-namespace",
        "namespaces-trimmed",
        "namespace-pattern",
        "namespaces-empty-is-all",
        "resync-fraction",
        "resync-integer",
        "autoscaler-port",
        "autoscaler-port-zero-serves-nothing",
        "autoscaler-host",
        "autoscaler-tick",
        "stable-window",
        "stable-window-as-short-as-panic",
        "panic-window",
        "panic-window-shortest",
        "dispatcher-namespace",
        "leader-election",
        "pod-name",
    ],
)
def test_override(variable: str, value: str, field: str, expected: Any) -> None:
    settings = Settings.from_env({variable: value})

    assert getattr(settings, field) == expected
    others = {f.name for f in dataclasses.fields(Settings)} - {field}
    assert {f: getattr(settings, f) for f in others} == {f: getattr(Settings(), f) for f in others}


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("LAMBDALET_IMAGE_PULL_POLICY", "always"),
        ("LAMBDALET_IMAGE_PULL_POLICY", "Sometimes"),
        ("LAMBDALET_RESYNC_SECONDS", "five"),
        ("LAMBDALET_RESYNC_SECONDS", ""),
        ("LAMBDALET_RESYNC_SECONDS", "0"),
        ("LAMBDALET_RESYNC_SECONDS", "-30"),
        # asyncio.sleep(nan) never returns and sleep(inf) is forever: both would stop resyncs.
        ("LAMBDALET_RESYNC_SECONDS", "nan"),
        ("LAMBDALET_RESYNC_SECONDS", "inf"),
        ("LAMBDALET_AUTOSCALER_PORT_NUMBER", "http"),
        ("LAMBDALET_AUTOSCALER_PORT_NUMBER", "-1"),
        ("LAMBDALET_AUTOSCALER_PORT_NUMBER", "65536"),
        ("LAMBDALET_AUTOSCALER_PORT_NUMBER", "80.5"),
        ("LAMBDALET_AUTOSCALER_TICK_SECONDS", "0"),
        ("LAMBDALET_AUTOSCALER_TICK_SECONDS", "nan"),
        ("LAMBDALET_AUTOSCALER_STABLE_WINDOW_SECONDS", "inf"),
        # The panic window must fit in the stable one (default 60) and be at least a second.
        ("LAMBDALET_AUTOSCALER_PANIC_WINDOW_SECONDS", "61"),
        ("LAMBDALET_AUTOSCALER_PANIC_WINDOW_SECONDS", "0.5"),
        ("LAMBDALET_AUTOSCALER_STABLE_WINDOW_SECONDS", "5"),
        ("LAMBDALET_DISPATCHER_NAMESPACE", ""),
        ("LAMBDALET_DISPATCHER_NAMESPACE", "Lambdalet-System"),
        ("LAMBDALET_DISPATCHER_NAMESPACE", "a" * 64),
        ("LAMBDALET_LEADER_ELECTION_NAMESPACE", "Ops_Team"),
    ],
)
def test_unusable_value_is_a_settings_error(variable: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({variable: value})
    if variable != "LAMBDALET_IMAGE_PULL_POLICY":  # the enum's own message names the value
        assert variable in str(caught.value)


@pytest.mark.parametrize(
    ("runtime", "image"),
    [
        (Runtime.PYTHON_3_12, "ghcr.io/acme/rt-python3.12:2.0.1"),
        (Runtime.NODEJS_22, "ghcr.io/acme/rt-nodejs22:2.0.1"),
        (Runtime.PROVIDED, "ghcr.io/acme/rt-provided:2.0.1"),
    ],
)
def test_runtime_image(runtime: Runtime, image: str) -> None:
    settings = Settings.from_env(
        {
            "LAMBDALET_RUNTIME_IMAGE_PREFIX": "ghcr.io/acme/rt-",
            "LAMBDALET_RUNTIME_IMAGE_TAG": "2.0.1",
        }
    )

    assert settings.runtime_image(runtime) == image


@pytest.mark.parametrize(
    ("activator", "url"),
    [
        (None, "http://lambdalet-activator.lambdalet-system.svc/fn/team/hello"),
        ("https://fn.example.test/", "https://fn.example.test/fn/team/hello"),
    ],
    ids=["default", "custom-with-slash"],
)
def test_function_url(activator: str | None, url: str) -> None:
    env = {"LAMBDALET_ACTIVATOR_URL": activator} if activator else {}

    assert Settings.from_env(env).function_url("team", "hello") == url


def test_settings_are_frozen() -> None:
    settings = Settings.from_env({})

    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.resync_seconds = 1.0  # type: ignore[misc]
