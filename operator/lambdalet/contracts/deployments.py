"""A Function's Deployment as the operator observes it, shared by the reconciler and the autoscaler.

The reconciler reads it to decide what to apply and what status to show; the autoscaler reads it
to know the current replica count and whether the Deployment is the Function's own before it
writes ``spec.replicas``. Both take it from kopf's index of Deployments, where each is stored as
``deployment_state(body)`` under its Function's key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from lambdalet import names


@dataclass(frozen=True)
class DeploymentState:
    """The parts of a Function's Deployment that status and reconciliation depend on."""

    name: str
    owner_uid: str | None
    applied_hash: str | None
    generation: int = 0
    observed_generation: int = 0
    replicas: int = 0  # spec.replicas: what the autoscaler asked for
    ready_replicas: int = 0
    updated_replicas: int = 0
    failure: str | None = None  # message of ReplicaFailure=True or Progressing=False


def owner_uid(body: Mapping[str, Any]) -> str | None:
    """The uid of the Function that controls the object, from its ownerReferences."""
    for ref in body.get("metadata", {}).get("ownerReferences", []):
        if ref.get("kind") == "Function" and ref.get("controller"):
            uid = ref.get("uid")
            return str(uid) if uid else None
    return None


def deployment_state(body: Mapping[str, Any]) -> DeploymentState:
    meta, spec, status = body["metadata"], body.get("spec", {}), body.get("status", {})
    failure = None
    for condition in status.get("conditions", []):
        kind, value = condition.get("type"), condition.get("status")
        if (kind == "ReplicaFailure" and value == "True") or (
            kind == "Progressing" and value == "False"
        ):
            failure = condition.get("message") or condition.get("reason")
    return DeploymentState(
        name=meta["name"],
        owner_uid=owner_uid(body),
        applied_hash=meta.get("annotations", {}).get(names.ANNOTATION_APPLIED_HASH),
        generation=meta.get("generation", 0),
        observed_generation=status.get("observedGeneration", 0),
        replicas=spec.get("replicas", 0),
        ready_replicas=status.get("readyReplicas", 0),
        updated_replicas=status.get("updatedReplicas", 0),
        failure=failure,
    )


class _Named(Protocol):
    @property
    def name(self) -> str: ...


Child = TypeVar("Child", bound=_Named)


def named(children: Iterable[Child], name: str) -> Child | None:
    """The child called ``name`` among those indexed for one Function (others are strays)."""
    return next((child for child in children if child.name == name), None)
