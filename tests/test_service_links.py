"""No setting can be overwritten by a Kubernetes service link (issue: the chart's own Service
``lambdalet-activator`` injected ``LAMBDALET_ACTIVATOR_PORT=tcp://…`` and the activator
crash-looped), and a link value that reaches a loader anyway is refused with the reason."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pytest

from lambdalet.activator.settings import ActivatorSettings
from lambdalet.dispatcher.settings import DispatcherSettings
from lambdalet.environment import SettingsError
from lambdalet.service_links import ServicePort, injected_names, may_be_injected
from lambdalet.settings import Settings
from tests.component_settings import all_settings


@pytest.mark.parametrize(
    "name",
    [
        # Service lambdalet-activator, port http 80, as the kubelet names them.
        "LAMBDALET_ACTIVATOR_SERVICE_HOST",
        "LAMBDALET_ACTIVATOR_SERVICE_PORT",
        "LAMBDALET_ACTIVATOR_SERVICE_PORT_HTTP",
        "LAMBDALET_ACTIVATOR_PORT",
        "LAMBDALET_ACTIVATOR_PORT_80_TCP",
        "LAMBDALET_ACTIVATOR_PORT_80_TCP_PROTO",
        "LAMBDALET_ACTIVATOR_PORT_80_TCP_PORT",
        "LAMBDALET_ACTIVATOR_PORT_80_TCP_ADDR",
        "LAMBDALET_PORT",  # Service lambdalet
        "LAMBDALET_RUNTIME_API_PORT",  # Service lambdalet-runtime-api
        "X_PORT_53_UDP",
        "A1_SERVICE_PORT_METRICS_2",
    ],
)
def test_injected_shapes_are_recognised(name: str) -> None:
    assert may_be_injected(name)


@pytest.mark.parametrize(
    "name",
    [
        "LAMBDALET_ACTIVATOR_PORT_NUMBER",
        "LAMBDALET_ACTIVATOR_HOST",
        "LAMBDALET_ACTIVATOR_URL",
        "LAMBDALET_PORT_80_HTTP",  # no such protocol
        "LAMBDALET_PORT_0_TCP",  # no port 0
        "LAMBDALET_SERVICE_PORT_",
        "_PORT",
        "PORT",
    ],
)
def test_other_names_are_not(name: str) -> None:
    assert not may_be_injected(name)


@pytest.mark.parametrize("service", ["lambdalet-activator", "a", "x-y-z", "lam-autoscaler"])
def test_every_name_a_service_injects_has_an_injected_shape(service: str) -> None:
    ports = [ServicePort(80, "http"), ServicePort(53, "dns-udp", "UDP"), ServicePort(8081)]
    names = injected_names(service, ports)
    prefix = service.upper().replace("-", "_")
    expected = {f"{prefix}_PORT", f"{prefix}_SERVICE_PORT_DNS_UDP", f"{prefix}_PORT_53_UDP_ADDR"}
    assert expected <= names
    assert len(names) == 3 + 2 + 3 * 4
    assert all(may_be_injected(name) for name in names), sorted(names)


def test_the_collection_finds_what_each_component_reads() -> None:
    """Guards the next test against an empty collection."""
    read = all_settings()
    assert "LAMBDALET_ACTIVATOR_PORT_NUMBER" in read["activator"]
    assert "LAMBDALET_AUTOSCALER_PORT_NUMBER" in read["operator"]
    assert "LAMBDALET_DISPATCHER_PORT_NUMBER" in read["dispatcher"]
    assert {"LAMBDALET_PORT_NUMBER", "LAMBDALET_RUNTIME_API_PORT_NUMBER"} <= read["agent"]
    assert "LAMBDALET_TEST_FUNCTION" in read["helm test"]
    assert sum(len(names) for names in read.values()) > 60


def test_no_component_reads_a_name_a_service_could_inject() -> None:
    offending = {
        component: sorted(name for name in names if may_be_injected(name))
        for component, names in all_settings().items()
    }
    assert not any(offending.values()), offending


LINK = "tcp://10.96.35.181:80"


@pytest.mark.parametrize(
    ("load", "variable"),
    [
        (Settings.from_env, "LAMBDALET_AUTOSCALER_PORT_NUMBER"),
        (Settings.from_env, "LAMBDALET_ACTIVATOR_URL"),
        (ActivatorSettings.from_env, "LAMBDALET_ACTIVATOR_PORT_NUMBER"),
        (ActivatorSettings.from_env, "LAMBDALET_AUTOSCALER_URL"),
        (DispatcherSettings.from_env, "LAMBDALET_DISPATCHER_PORT_NUMBER"),
    ],
)
def test_a_link_value_is_refused_with_the_reason(
    load: Callable[[Mapping[str, str]], object], variable: str
) -> None:
    with pytest.raises(SettingsError) as raised:
        load({variable: LINK})
    message = str(raised.value)
    assert variable in message
    assert LINK in message
    assert "enableServiceLinks: false" in message


def test_an_ordinary_url_is_not_a_link() -> None:
    settings = ActivatorSettings.from_env({"LAMBDALET_REDIS_URL": "redis://10.0.0.1:6379"})
    assert settings.redis_url == "redis://10.0.0.1:6379"
