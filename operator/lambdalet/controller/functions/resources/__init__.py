"""Pure builders: a Function (and Settings) in, the manifests of its children out.

Nothing here talks to the API server; ``lambdalet.controller.functions.plan`` compares these
manifests with what exists and ``lambdalet.k8s`` applies them.
"""

from lambdalet.controller.functions.resources.configmap import code_config_map
from lambdalet.controller.functions.resources.deployment import deployment
from lambdalet.controller.functions.resources.meta import (
    applied_hash,
    child_labels,
    owner_reference,
)
from lambdalet.controller.functions.resources.service import service

__all__ = [
    "applied_hash",
    "child_labels",
    "code_config_map",
    "deployment",
    "owner_reference",
    "service",
]
