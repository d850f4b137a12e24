"""The only package that talks to the Kubernetes API (besides kopf's own watching)."""

from lambdalet.k8s.client import Connection, KubeClient, load_connection
from lambdalet.k8s.errors import (
    AlreadyExists,
    Conflict,
    KubeError,
    NotFound,
    PermanentKubeError,
    TransientKubeError,
)

__all__ = [
    "AlreadyExists",
    "Conflict",
    "Connection",
    "KubeClient",
    "KubeError",
    "NotFound",
    "PermanentKubeError",
    "TransientKubeError",
    "load_connection",
]
