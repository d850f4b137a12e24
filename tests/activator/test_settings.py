"""The activator's settings from its environment: defaults, every variable, clear errors."""

from __future__ import annotations

import pytest

from lambdalet.activator.settings import ActivatorSettings
from lambdalet.environment import SettingsError


def test_defaults() -> None:
    settings = ActivatorSettings.from_env({"LAMBDALET_POD_NAME": "activator-0"})

    assert settings == ActivatorSettings(pod_name="activator-0")
    assert (settings.port, settings.internal_port) == (8080, 8081)
    assert settings.max_body_bytes == 6 * 1024 * 1024
    assert settings.redis_url is None
    assert settings.namespaces == ()
    assert (settings.drain_seconds, settings.shutdown_timeout) == (5, 60)


def test_every_variable() -> None:
    settings = ActivatorSettings.from_env(
        {
            "LAMBDALET_ACTIVATOR_PORT_NUMBER": "18080",
            "LAMBDALET_ACTIVATOR_INTERNAL_PORT_NUMBER": "18081",
            "LAMBDALET_AUTOSCALER_URL": "http://127.0.0.1:8082/",
            "LAMBDALET_ACTIVATOR_DOMAIN": "fn.example.com",
            "LAMBDALET_DEFAULT_NAMESPACE": "apps",
            "LAMBDALET_HOLD_LIMIT": "10",
            "LAMBDALET_HOLD_TIMEOUT_SECONDS": "2.5",
            "LAMBDALET_MAX_BODY_BYTES": "1024",
            "LAMBDALET_REDIS_URL": "redis://127.0.0.1:6379/0",
            "LAMBDALET_POD_NAME": "a-1",
            "LAMBDALET_VERIFY_PEER_IP": "false",
            "LAMBDALET_NAMESPACES": "team-* ops",
            "LAMBDALET_DRAIN_SECONDS": "0",
            "LAMBDALET_SHUTDOWN_TIMEOUT_SECONDS": "20",
            "LAMBDALET_PEERS_NAMESPACE": "lambdalet-system",
            "LAMBDALET_PEER_LEASE_SECONDS": "6",
            "LAMBDALET_PEER_KEY": "k3y",
            "LAMBDALET_POD_IP": "10.0.0.7",
        }
    )

    assert settings == ActivatorSettings(
        port=18080,
        internal_port=18081,
        autoscaler_url="http://127.0.0.1:8082",
        domain="fn.example.com",
        default_namespace="apps",
        hold_limit=10,
        hold_timeout=2.5,
        max_body_bytes=1024,
        redis_url="redis://127.0.0.1:6379/0",
        pod_name="a-1",
        verify_peer_ip=False,
        namespaces=("team-*", "ops"),
        drain_seconds=0,
        shutdown_timeout=20,
        peers_namespace="lambdalet-system",
        peer_lease_seconds=6,
        peer_key="k3y",
        pod_ip="10.0.0.7",
    )


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("LAMBDALET_ACTIVATOR_PORT_NUMBER", "http", "must be a number"),
        ("LAMBDALET_ACTIVATOR_PORT_NUMBER", "70000", "between 0 and 65535"),
        ("LAMBDALET_HOLD_TIMEOUT_SECONDS", "0", "between 0.1 and 3600"),
        ("LAMBDALET_HOLD_TIMEOUT_SECONDS", "nan", "between 0.1 and 3600"),
        ("LAMBDALET_MAX_BODY_BYTES", "0", "between 1 and"),
        ("LAMBDALET_VERIFY_PEER_IP", "maybe", "true or false"),
        ("LAMBDALET_DRAIN_SECONDS", "-1", "between 0 and 3600"),
        ("LAMBDALET_SHUTDOWN_TIMEOUT_SECONDS", "forever", "must be a number"),
        ("LAMBDALET_PEER_LEASE_SECONDS", "0.5", "between 1 and 300"),
    ],
)
def test_bad_values_name_the_variable(variable: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message) as caught:
        ActivatorSettings.from_env({variable: value})
    assert variable in str(caught.value)
