"""parse_function() and plan(): what the operator decides for a Function and what it observed."""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType
from typing import Any

import pytest

from lambdalet.api.function import Function, PullPolicy
from lambdalet.contracts.deployments import DeploymentState
from lambdalet.contracts.problems import Problem, parse_function
from lambdalet.controller.functions.plan import Apply, ChildState, Delete, Observed, Plan, plan
from lambdalet.controller.functions.resources import code_config_map, deployment, service
from lambdalet.settings import Settings
from tests.api.cases import HELLO_PY, INVALID_FUNCTIONS, VALID_FUNCTIONS, function

NAMESPACE = "team"
UID = "0b6c1f52-uid-of-hello"
OTHER_UID = "7d1e0c3a-uid-of-someone-else"
SETTINGS = Settings(runtime_image_tag="9.9.9", image_pull_policy=PullPolicy.NEVER)
APPLIED_HASH = "lambdalet.dev/applied-hash"

Manifest = dict[str, Any]

CODE_SOURCES: list[tuple[str, dict[str, Any]]] = [
    ("inline", {"inline": {"app.py": HELLO_PY}}),
    ("configMap", {"configMap": {"name": "hello-code"}}),
    ("url", {"url": {"url": "https://example.test/fn.zip"}}),
    ("s3", {"s3": {"bucket": "functions", "key": "hello.zip"}}),
    ("image", {"image": {"image": "registry.local/echo:1"}}),
]


def body(**spec: Any) -> Manifest:
    manifest = function(**spec)
    manifest["metadata"] |= {"namespace": NAMESPACE, "uid": UID, "generation": 1}
    return manifest


def make(**spec: Any) -> Function:
    return Function.model_validate(body(**spec))


def stamp(manifest: Manifest | None) -> str | None:
    return manifest["metadata"]["annotations"][APPLIED_HASH] if manifest else None


def as_applied(
    fn: Function, *, owner: str | None = UID, user_config_map_exists: bool | None = None
) -> Observed:
    """What the operator observes once it has applied ``fn``'s children (owned by ``owner``)."""
    config_map = code_config_map(fn)
    return Observed(
        deployment=DeploymentState(
            "fn-hello", owner, stamp(deployment(fn, SETTINGS)), replicas=2, ready_replicas=2
        ),
        service=ChildState("fn-hello", owner, stamp(service(fn))),
        code_config_map=(
            ChildState("fn-hello-code", owner, stamp(config_map)) if config_map else None
        ),
        user_config_map_exists=(
            True if fn.spec.code.config_map is not None else user_config_map_exists
        ),
    )


def kinds(applies: tuple[Apply, ...]) -> list[str]:
    return [step.manifest["kind"] for step in applies]


# --------------------------------------------------------------------------- parse_function


@pytest.mark.parametrize(
    ("manifest"), [m for _, m in VALID_FUNCTIONS], ids=[i for i, _ in VALID_FUNCTIONS]
)
def test_parse_valid_body(manifest: Manifest) -> None:
    parsed = parse_function(MappingProxyType(manifest))  # kopf hands over a read-only Mapping

    assert isinstance(parsed, Function)
    assert parsed.metadata.name == manifest["metadata"]["name"]


@pytest.mark.parametrize(
    ("manifest", "names_field"),
    [
        *[(m, expected) for _, m, expected, _ in INVALID_FUNCTIONS],
        ({**function(), "spec": None}, "spec"),
        ({"apiVersion": "lambdalet.dev/v1alpha1", "kind": "Function", "spec": {}}, "metadata"),
    ],
    ids=[case_id for case_id, *_ in INVALID_FUNCTIONS] + ["spec-null", "no-metadata"],
)
def test_parse_invalid_body_is_an_invalid_spec_problem(
    manifest: Manifest, names_field: str
) -> None:
    parsed = parse_function(manifest)

    assert isinstance(parsed, Problem)
    assert parsed.reason == "InvalidSpec"
    assert parsed.message.startswith("The Function's spec is invalid: ")
    assert names_field in parsed.message


def test_parse_names_every_invalid_field() -> None:
    parsed = parse_function(function(memoryMiB=64, timeoutSeconds=0))

    assert isinstance(parsed, Problem)
    assert "spec.memoryMiB" in parsed.message
    assert "spec.timeoutSeconds" in parsed.message


# --------------------------------------------------------------------------- plan: at rest


@pytest.mark.parametrize(("code"), [c for _, c in CODE_SOURCES], ids=[i for i, _ in CODE_SOURCES])
def test_restart_over_unchanged_children_plans_nothing(code: dict[str, Any]) -> None:
    observed = as_applied(make(code=code))
    # A restarted operator: the same Function and configuration, parsed and built anew.
    restarted = Settings(runtime_image_tag="9.9.9", image_pull_policy=PullPolicy.NEVER)

    assert plan(make(code=code), restarted, observed) == Plan()


@pytest.mark.parametrize(
    ("stale", "kind"),
    [("code_config_map", "ConfigMap"), ("service", "Service"), ("deployment", "Deployment")],
)
def test_only_the_child_whose_hash_differs_is_applied(stale: str, kind: str) -> None:
    fn = make()
    observed = as_applied(fn)
    observed = replace(
        observed, **{stale: replace(getattr(observed, stale), applied_hash="0" * 16)}
    )

    decided = plan(fn, SETTINGS, observed)

    [step] = decided.applies
    assert step.manifest["kind"] == kind
    assert (step.create, step.claim_replicas) == (False, None)
    assert "replicas" not in step.manifest.get("spec", {})
    assert (decided.deletes, decided.problem) == ((), None)


@pytest.mark.parametrize(
    ("change", "applied"),
    [
        ({"memoryMiB": 512}, ["Deployment"]),
        ({"environment": {"LOG_LEVEL": "debug"}}, ["Deployment"]),
        ({"code": {"inline": {"app.py": HELLO_PY + "# v2\n"}}}, ["ConfigMap", "Deployment"]),
        ({"scaling": {"minScale": 2}}, []),  # the autoscaler's business
        ({"http": {"exposure": "public"}}, []),  # the activator's business
    ],
    ids=["memory", "environment", "inline-code", "min-scale", "exposure"],
)
def test_spec_change_applies_the_children_it_changes(
    change: dict[str, Any], applied: list[str]
) -> None:
    decided = plan(make(**change), SETTINGS, as_applied(make()))

    assert kinds(decided.applies) == applied
    for step in decided.applies:
        assert not step.create
        assert step.claim_replicas is None
        # The autoscaler owns replicas; a later apply must not reset them.
        assert "replicas" not in step.manifest.get("spec", {})


def test_applied_manifests_are_the_builders() -> None:
    fn = make(memoryMiB=512)

    decided = plan(fn, SETTINGS, as_applied(make()), force=True)

    assert [step.manifest for step in decided.applies] == [
        code_config_map(fn),
        service(fn),
        deployment(fn, SETTINGS),
    ]


# --------------------------------------------------------------------------- plan: creation


@pytest.mark.parametrize(("min_scale"), [0, 2])
def test_first_pass_creates_every_child_and_hands_replicas_over(min_scale: int) -> None:
    fn = make(scaling={"minScale": min_scale})

    decided = plan(fn, SETTINGS, Observed())

    assert kinds(decided.applies) == ["ConfigMap", "Service", "Deployment"]
    assert [step.create for step in decided.applies] == [True, True, True]
    assert [step.claim_replicas for step in decided.applies] == [None, None, min_scale]
    created = decided.applies[-1].manifest
    assert created["spec"]["replicas"] == min_scale
    # Stamped like the Deployment later applies build, so the next pass finds nothing to do.
    assert stamp(created) == stamp(deployment(fn, SETTINGS))


# (id, children missing from the observation, force, expected (kind, create) of each apply)
PARTIAL = [
    ("service-missing", {"service"}, False, [("Service", True)]),
    ("code-map-missing", {"code_config_map"}, False, [("ConfigMap", True)]),
    ("deployment-missing", {"deployment"}, False, [("Deployment", True)]),
    (
        "forced-service-missing",
        {"service"},
        True,
        [("ConfigMap", False), ("Service", True), ("Deployment", False)],
    ),
    (
        "forced-deployment-missing",
        {"deployment"},
        True,
        [("ConfigMap", False), ("Service", False), ("Deployment", True)],
    ),
]


@pytest.mark.parametrize(
    ("missing", "force", "expected"), [p[1:] for p in PARTIAL], ids=[p[0] for p in PARTIAL]
)
def test_create_exactly_for_children_not_observed(
    missing: set[str], force: bool, expected: list[tuple[str, bool]]
) -> None:
    fn = make(scaling={"minScale": 1})
    observed = replace(as_applied(fn), **dict.fromkeys(missing))

    decided = plan(fn, SETTINGS, observed, force=force)

    assert [(step.manifest["kind"], step.create) for step in decided.applies] == expected
    for step in decided.applies:
        creating_deployment = step.create and step.manifest["kind"] == "Deployment"
        assert step.claim_replicas == (1 if creating_deployment else None)
        assert step.manifest.get("spec", {}).get("replicas") == step.claim_replicas


# --------------------------------------------------------------------------- plan: force


@pytest.mark.parametrize(("code"), [c for _, c in CODE_SOURCES], ids=[i for i, _ in CODE_SOURCES])
def test_force_applies_every_child_without_replicas(code: dict[str, Any]) -> None:
    fn = make(code=code)

    decided = plan(fn, SETTINGS, as_applied(fn), force=True)

    expected = ["Service", "Deployment"]
    assert kinds(decided.applies) == (["ConfigMap", *expected] if "inline" in code else expected)
    for step in decided.applies:
        assert (step.create, step.claim_replicas) == (False, None)
        assert "replicas" not in step.manifest.get("spec", {})


# --------------------------------------------------------------------------- plan: problems


@pytest.mark.parametrize(
    ("foreign", "kind", "name"),
    [
        ("code_config_map", "ConfigMap", "fn-hello-code"),
        ("service", "Service", "fn-hello"),
        ("deployment", "Deployment", "fn-hello"),
    ],
)
@pytest.mark.parametrize(("owner"), [OTHER_UID, None], ids=["other-function", "no-owner"])
def test_child_owned_by_another_is_a_name_conflict(
    foreign: str, kind: str, name: str, owner: str | None
) -> None:
    fn = make()
    observed = as_applied(fn)
    observed = replace(observed, **{foreign: replace(getattr(observed, foreign), owner_uid=owner)})

    decided = plan(fn, SETTINGS, observed, force=True)

    assert decided.applies == ()
    assert decided.deletes == ()
    assert decided.problem is not None
    assert decided.problem.reason == "NameConflict"
    assert f"{kind} {name} already exists" in decided.problem.message


@pytest.mark.parametrize(
    ("code", "map_owner", "deletes"),
    [
        ({"configMap": {"name": "hello-code"}}, UID, (Delete("v1", "ConfigMap", "fn-hello-code"),)),
        (
            {"url": {"url": "https://example.test/fn.zip"}},
            UID,
            (Delete("v1", "ConfigMap", "fn-hello-code"),),
        ),
        ({"image": {"image": "echo:1"}}, UID, (Delete("v1", "ConfigMap", "fn-hello-code"),)),
        # Not ours: left alone (and no conflict, since no ConfigMap of that name is wanted).
        ({"configMap": {"name": "hello-code"}}, OTHER_UID, ()),
        ({"inline": {"app.py": HELLO_PY}}, UID, ()),  # still wanted
    ],
    ids=["to-configMap", "to-url", "to-image", "foreign-map", "still-inline"],
)
def test_code_config_map_deleted_when_code_leaves_inline(
    code: dict[str, Any], map_owner: str, deletes: tuple[Delete, ...]
) -> None:
    was_inline = as_applied(make())
    assert was_inline.code_config_map is not None
    observed = replace(
        as_applied(make(code=code)),
        code_config_map=replace(was_inline.code_config_map, owner_uid=map_owner),
    )

    decided = plan(make(code=code), SETTINGS, observed)

    assert decided.deletes == deletes
    assert decided.problem is None
    assert decided.applies == ()


@pytest.mark.parametrize(
    ("code", "exists", "reason"),
    [
        ({"configMap": {"name": "hello-code"}}, False, "CodeNotFound"),
        ({"configMap": {"name": "hello-code"}}, True, None),
        ({"configMap": {"name": "hello-code"}}, None, None),  # not looked up
        ({"inline": {"app.py": HELLO_PY}}, False, None),  # not about a user ConfigMap
    ],
    ids=["missing", "exists", "unknown", "inline"],
)
def test_missing_user_config_map_is_code_not_found(
    code: dict[str, Any], exists: bool | None, reason: str | None
) -> None:
    fn = make(code=code)
    observed = replace(as_applied(fn), user_config_map_exists=exists)

    decided = plan(fn, SETTINGS, observed)

    assert (decided.problem.reason if decided.problem else None) == reason
    if decided.problem is not None:
        assert "ConfigMap hello-code" in decided.problem.message
        assert f"namespace {NAMESPACE}" in decided.problem.message
