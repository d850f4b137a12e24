"""What the operator reads off its children: the slices of Deployments, Services and ConfigMaps
that kopf's indexes keep, keyed by the Function that owns them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lambdalet import names
from lambdalet.contracts.deployments import owner_uid
from lambdalet.contracts.keys import Key
from lambdalet.controller.functions.plan import ChildState

MANAGED = {names.LABEL_MANAGED_BY: names.MANAGED_BY}


def function_key(namespace: str | None, labels: Mapping[str, str]) -> Key | None:
    function = labels.get(names.LABEL_FUNCTION)
    return (namespace, function) if namespace and function else None


def child_state(body: Mapping[str, Any]) -> ChildState:
    meta = body["metadata"]
    return ChildState(
        name=meta["name"],
        owner_uid=owner_uid(body),
        applied_hash=meta.get("annotations", {}).get(names.ANNOTATION_APPLIED_HASH),
    )
