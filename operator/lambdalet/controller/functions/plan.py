"""What to do about a Function, decided purely from the Function and the observed children.

``plan()`` compares each desired child's hash with the hash stamped on the child that exists and
lists only the applies that would change something: a restarted operator facing unchanged
Functions plans nothing, so it sends no writes. The kopf handlers gather the inputs and carry the
plan out (``lambdalet.controller.handlers``).
"""

from __future__ import annotations

from dataclasses import dataclass

from lambdalet import names
from lambdalet.api.conditions import FunctionReadyReason
from lambdalet.api.function import Function
from lambdalet.contracts.deployments import DeploymentState
from lambdalet.contracts.problems import Problem
from lambdalet.controller.functions import resources
from lambdalet.controller.functions.resources.meta import Manifest
from lambdalet.settings import Settings


@dataclass(frozen=True)
class ChildState:
    """A child as observed: who owns it and the hash of what the operator last applied."""

    name: str
    owner_uid: str | None
    applied_hash: str | None


@dataclass(frozen=True)
class Observed:
    deployment: DeploymentState | None = None
    service: ChildState | None = None
    code_config_map: ChildState | None = None
    # spec.code.configMap exists? None when the code does not come from a ConfigMap.
    user_config_map_exists: bool | None = None


@dataclass(frozen=True)
class Apply:
    manifest: Manifest
    # The child is not known to exist: make sure its name is not taken by someone else's object.
    create: bool = False
    # Set when the apply creates the Deployment: its replicas then pass to the autoscaler.
    claim_replicas: int | None = None


@dataclass(frozen=True)
class Delete:
    api_version: str
    kind: str
    name: str


@dataclass(frozen=True)
class Plan:
    applies: tuple[Apply, ...] = ()
    deletes: tuple[Delete, ...] = ()
    problem: Problem | None = None


def name_conflict(kind: str, name: str) -> Problem:
    return Problem(
        FunctionReadyReason.NAME_CONFLICT,
        f"{kind} {name} already exists and does not belong to this Function; "
        f"delete or rename that {kind}, or rename the Function.",
    )


def plan(
    function: Function, settings: Settings, observed: Observed, *, force: bool = False
) -> Plan:
    """The applies and deletes that bring the children in line with ``function``.

    ``force`` applies every child even when its hash matches (a periodic resync that also
    undoes edits made to the children by hand).
    """
    uid = function.metadata.uid
    name = function.metadata.name
    desired_map = resources.code_config_map(function)
    desired: list[tuple[Manifest, ChildState | None]] = []
    if desired_map is not None:
        desired.append((desired_map, observed.code_config_map))
    desired.append((resources.service(function), observed.service))
    deployment_state = observed.deployment
    deployment_child = (
        ChildState(deployment_state.name, deployment_state.owner_uid, deployment_state.applied_hash)
        if deployment_state
        else None
    )
    desired.append((resources.deployment(function, settings), deployment_child))

    for manifest, child in desired:
        if child is not None and child.owner_uid != uid:
            return Plan(problem=name_conflict(manifest["kind"], child.name))

    applies: list[Apply] = []
    for manifest, child in desired:
        stamp = manifest["metadata"]["annotations"][names.ANNOTATION_APPLIED_HASH]
        if child is None and manifest["kind"] == "Deployment":
            initial = function.spec.scaling.min_scale
            applies.append(
                Apply(resources.deployment(function, settings, replicas=initial), True, initial)
            )
        elif child is None or force or child.applied_hash != stamp:
            applies.append(Apply(manifest, create=child is None))

    deletes: list[Delete] = []
    stale_map = observed.code_config_map
    if desired_map is None and stale_map is not None and stale_map.owner_uid == uid:
        deletes.append(Delete("v1", "ConfigMap", names.code_config_map(name)))

    problem = None
    if observed.user_config_map_exists is False and function.spec.code.config_map is not None:
        problem = Problem(
            FunctionReadyReason.CODE_NOT_FOUND,
            f"ConfigMap {function.spec.code.config_map.name} named in spec.code.configMap does "
            f"not exist in namespace {function.metadata.namespace}; create it or fix the name.",
        )
    return Plan(applies=tuple(applies), deletes=tuple(deletes), problem=problem)
