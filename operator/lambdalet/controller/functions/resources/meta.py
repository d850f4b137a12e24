"""Metadata every child of a Function shares: labels, owner reference, the applied-hash stamp."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from lambdalet import names
from lambdalet.api.common import API_VERSION
from lambdalet.api.function import Function

Manifest = dict[str, Any]


def selector_labels(function: Function) -> dict[str, str]:
    """The labels a Service and a Deployment select the function's pods by (never change)."""
    return {names.LABEL_FUNCTION: function.metadata.name}


def child_labels(function: Function, component: str) -> dict[str, str]:
    """Labels of a child: the recommended app.kubernetes.io set, and nothing copied from the
    parent (GitOps tools track objects by labels such as argocd.argoproj.io/instance; a child
    carrying its parent's tracking label would be pruned as a stray)."""
    return {
        **selector_labels(function),
        names.LABEL_NAME: function.metadata.name,
        names.LABEL_INSTANCE: function.metadata.name,
        names.LABEL_COMPONENT: component,
        names.LABEL_PART_OF: "lambdalet",
        names.LABEL_MANAGED_BY: names.MANAGED_BY,
    }


def owner_reference(function: Function) -> dict[str, Any]:
    """Makes the child garbage-collected with its Function."""
    if not function.metadata.uid:
        raise ValueError("a Function without metadata.uid cannot own children")
    return {
        "apiVersion": API_VERSION,
        "kind": "Function",
        "name": function.metadata.name,
        "uid": function.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def child_metadata(function: Function, name: str, component: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": function.metadata.namespace,
        "labels": child_labels(function, component),
        "ownerReferences": [owner_reference(function)],
    }


def applied_hash(manifest: Manifest) -> str:
    """A short, stable digest of a manifest (keys sorted, so dict order does not matter)."""
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def stamped(manifest: Manifest) -> Manifest:
    """``manifest`` with its own hash in the applied-hash annotation."""
    digest = applied_hash(manifest)
    metadata = manifest["metadata"]
    annotations = {**metadata.get("annotations", {}), names.ANNOTATION_APPLIED_HASH: digest}
    return {**manifest, "metadata": {**metadata, "annotations": annotations}}
