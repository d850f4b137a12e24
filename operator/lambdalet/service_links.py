"""The environment variables Kubernetes injects for Services ("service links"), and a guard for
the settings loaders.

Unless a pod says ``enableServiceLinks: false``, the kubelet gives each of its containers, for
every Service of the pod's namespace that has a cluster IP, Docker-link variables named after the
Service (``pkg/kubelet/envvars``): Service ``lambdalet-activator`` with port ``http`` 80 yields

    LAMBDALET_ACTIVATOR_SERVICE_HOST=10.96.35.181
    LAMBDALET_ACTIVATOR_SERVICE_PORT=80
    LAMBDALET_ACTIVATOR_SERVICE_PORT_HTTP=80
    LAMBDALET_ACTIVATOR_PORT=tcp://10.96.35.181:80
    LAMBDALET_ACTIVATOR_PORT_80_TCP=tcp://10.96.35.181:80
    LAMBDALET_ACTIVATOR_PORT_80_TCP_PROTO=tcp
    LAMBDALET_ACTIVATOR_PORT_80_TCP_PORT=80
    LAMBDALET_ACTIVATOR_PORT_80_TCP_ADDR=10.96.35.181

A setting with such a name is overwritten by whoever creates a Service of the matching name in
the namespace (the chart itself did: the activator read its own Service's ``tcp://…`` as its
port). Every pod Lambdalet makes turns the links off, and no setting any component reads has one
of these shapes (``tests/test_service_links.py`` checks both); :class:`LinkGuard` names the cause
should a link value reach a loader anyway.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

# A Service name (a DNS-1035 label) as the kubelet spells it: upper case, '-' → '_'.
_SERVICE = r"[A-Z](?:[A-Z0-9_]{0,61}[A-Z0-9])?"
# A port name (IANA service name: at most 15, at least one letter), spelled the same way.
_PORT_NAME = r"(?=[A-Z0-9_]*[A-Z])[A-Z0-9](?:[A-Z0-9_]{0,13}[A-Z0-9])?"
_PROTOCOL = r"(?:TCP|UDP|SCTP)"
INJECTED_SHAPE = re.compile(
    rf"{_SERVICE}_(?:SERVICE_HOST|SERVICE_PORT(?:_{_PORT_NAME})?"
    rf"|PORT(?:_[1-9][0-9]{{0,4}}_{_PROTOCOL}(?:_(?:PROTO|PORT|ADDR))?)?)"
)
# The value of <SVC>_PORT and <SVC>_PORT_<n>_<PROTO>.
LINK_VALUE = re.compile(r"(?:tcp|udp|sctp)://\S*:[0-9]+", re.IGNORECASE)


def may_be_injected(variable: str) -> bool:
    """Whether some Service, of some name, would inject a variable named ``variable``."""
    return INJECTED_SHAPE.fullmatch(variable) is not None


@dataclass(frozen=True)
class ServicePort:
    port: int
    name: str = ""
    protocol: str = "TCP"


def injected_names(service: str, ports: Iterable[ServicePort]) -> set[str]:
    """The names the kubelet injects for Service ``service`` with ``ports`` (in their order)."""
    prefix = service.upper().replace("-", "_")
    ports = list(ports)
    names = {f"{prefix}_SERVICE_HOST"}
    if ports:
        names |= {f"{prefix}_SERVICE_PORT", f"{prefix}_PORT"}
    for port in ports:
        if port.name:
            names.add(f"{prefix}_SERVICE_PORT_{port.name.upper().replace('-', '_')}")
        link = f"{prefix}_PORT_{port.port}_{port.protocol.upper()}"
        names |= {link, f"{link}_PROTO", f"{link}_PORT", f"{link}_ADDR"}
    return names


class LinkGuard(Mapping[str, str]):
    """An environment for a settings loader that refuses a service-link value with the reason,
    instead of a puzzling "must be a number, not 'tcp://10.96.35.181:80'". ``error`` is the
    loader's own error type."""

    def __init__(self, env: Mapping[str, str], error: type[Exception]) -> None:
        self._env = env
        self._error = error

    def __getitem__(self, variable: str) -> str:
        value = self._env[variable]
        if LINK_VALUE.fullmatch(value.strip()):
            raise self._error(
                f"{variable} is {value!r}: Kubernetes injected it for a Service of the pod's "
                "namespace (a Docker link); set enableServiceLinks: false on the pod"
            )
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._env)

    def __len__(self) -> int:
        return len(self._env)
