"""What the operator reads off its children: the slices of Deployments, Services and ConfigMaps
that kopf's indexes keep, keyed by the Function that owns them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from lambdalet import names
from lambdalet.controller.reconcile import ChildState
from lambdalet.controller.status import DeploymentState

Key = tuple[str, str]  # (namespace, function name)
MANAGED = {names.LABEL_MANAGED_BY: names.MANAGED_BY}
Child = TypeVar("Child", ChildState, DeploymentState)


def function_key(namespace: str | None, labels: Mapping[str, str]) -> Key | None:
    function = labels.get(names.LABEL_FUNCTION)
    return (namespace, function) if namespace and function else None


def owner_uid(body: Mapping[str, Any]) -> str | None:
    for ref in body.get("metadata", {}).get("ownerReferences", []):
        if ref.get("kind") == "Function" and ref.get("controller"):
            uid = ref.get("uid")
            return str(uid) if uid else None
    return None


def child_state(body: Mapping[str, Any]) -> ChildState:
    meta = body["metadata"]
    return ChildState(
        name=meta["name"],
        owner_uid=owner_uid(body),
        applied_hash=meta.get("annotations", {}).get(names.ANNOTATION_APPLIED_HASH),
    )


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


def named(children: Iterable[Child], name: str) -> Child | None:
    """The child called ``name`` among those indexed for one Function (others are strays)."""
    return next((child for child in children if child.name == name), None)
