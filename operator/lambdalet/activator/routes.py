"""Which Function a request is for: pure parsing of the path and the Host header.

Three ways in, tried in this order:

    /2015-03-31/functions/<FunctionName>/invocations   Lambda's Invoke API (AWS SDKs, the CLI)
    /fn/<namespace>/<name>[/<path>]                     HTTP, API Gateway-style event
    Host: <name>.<namespace>.<domain>                   HTTP, when the activator has a domain

``FunctionName`` in the Invoke API is ``<name>`` (in the default namespace), ``<namespace>:<name>``,
or either followed by ``:$LATEST`` (the only version there is), or a Lambda ARN
``arn:aws:lambda:<region>:<account>:function:<name>[:$LATEST]`` (default namespace). E.g.
``team:hello`` -> (team, hello); ``hello:$LATEST`` -> (default, hello).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lambdalet.activator.events import Route
from lambdalet.contracts.keys import Key

INVOKE_PREFIX = "/2015-03-31/functions/"
INVOKE_SUFFIX = "/invocations"
HTTP_PREFIX = "/fn/"
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
LATEST = "$LATEST"


@dataclass(frozen=True)
class InvokeRoute:
    key: Key


class RouteError(ValueError):
    """The path names no Function in a form the activator understands (-> 404 / 400)."""


def _label(value: str) -> bool:
    return _LABEL.fullmatch(value) is not None


def function_name(value: str, default_namespace: str) -> Key:
    """The Function an Invoke API ``FunctionName`` means (see the module docstring)."""
    text = value.replace("%3A", ":").replace("%3a", ":").replace("%24", "$")
    if text.startswith("arn:"):
        parts = text.split(":")
        if len(parts) not in (7, 8) or parts[2] != "lambda" or parts[5] != "function":
            raise RouteError(f"not a Lambda function ARN: {value}")
        if len(parts) == 8 and parts[7] != LATEST:
            raise RouteError(f"only the {LATEST} version exists: {value}")
        namespace, name = default_namespace, parts[6]
    else:
        parts = text.split(":")
        if parts[-1] == LATEST:
            parts = parts[:-1]
        if len(parts) == 1:
            namespace, name = default_namespace, parts[0]
        elif len(parts) == 2:
            namespace, name = parts
        else:
            raise RouteError(f"FunctionName must be name or namespace:name, not {value}")
    if not (_label(namespace) and _label(name)):
        raise RouteError(f"no such function: {value}")
    return (namespace, name)


def route(
    path: str,
    host: str | None,
    *,
    domain: str | None,
    default_namespace: str,
) -> InvokeRoute | Route | None:
    """The route of a request, or None when it is for no Function (-> 404)."""
    if path.startswith(INVOKE_PREFIX) and path.endswith(INVOKE_SUFFIX):
        name = path[len(INVOKE_PREFIX) : -len(INVOKE_SUFFIX)]
        return InvokeRoute(function_name(name, default_namespace))
    domain_name = _host_name(host)
    if path.startswith(HTTP_PREFIX):
        parts = path[len(HTTP_PREFIX) :].split("/", 2)
        if len(parts) < 2 or not (_label(parts[0]) and _label(parts[1])):
            return None
        rest = "/" + parts[2] if len(parts) == 3 else "/"
        return Route(key=(parts[0], parts[1]), raw_path=rest, domain_name=domain_name)
    if domain and domain_name.endswith("." + domain):
        labels = domain_name[: -len(domain) - 1].split(".")
        if len(labels) == 2 and _label(labels[0]) and _label(labels[1]):
            return Route(key=(labels[1], labels[0]), raw_path=path, domain_name=domain_name)
    return None


def _host_name(host: str | None) -> str:
    if not host:
        return "localhost"
    if host.startswith("["):  # [::1]:8080
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0].lower()
