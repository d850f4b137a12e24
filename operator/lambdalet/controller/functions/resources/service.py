"""The ClusterIP Service in front of a Function's pods: its EndpointSlices tell the activator
which pod IPs can take invocations."""

from __future__ import annotations

from lambdalet import names
from lambdalet.api.function import Function
from lambdalet.controller.functions.resources.meta import (
    Manifest,
    child_metadata,
    selector_labels,
    stamped,
)


def service(function: Function) -> Manifest:
    return stamped(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": child_metadata(function, names.service(function.metadata.name), "function"),
            "spec": {
                "type": "ClusterIP",
                "selector": selector_labels(function),
                "ports": [
                    {
                        "name": names.FUNCTION_PORT_NAME,
                        "port": 80,
                        "targetPort": names.FUNCTION_PORT_NAME,
                        "protocol": "TCP",
                        "appProtocol": "http",
                    }
                ],
            },
        }
    )
