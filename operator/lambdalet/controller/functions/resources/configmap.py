"""The ConfigMap that holds a Function's inline code; the pod mounts it at /var/task."""

from __future__ import annotations

from lambdalet import names
from lambdalet.api.function import Function
from lambdalet.controller.functions.resources.meta import Manifest, child_metadata, stamped


def code_config_map(function: Function) -> Manifest | None:
    """The code ConfigMap, or None when the code does not come inline."""
    files = function.spec.code.inline
    if files is None:
        return None
    return stamped(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": child_metadata(
                function, names.code_config_map(function.metadata.name), "code"
            ),
            "data": dict(sorted(files.items())),
        }
    )
