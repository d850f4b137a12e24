"""The shared typed view: a body is parsed once per change of what it says, not per status write."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from lambdalet.api.eventsource import EventSource
from lambdalet.api.function import Function
from lambdalet.contracts.views import eventsource_views, function_views, key_of
from tests.api.cases import function


def body(name: str = "hello", namespace: str = "team", **spec: Any) -> dict[str, Any]:
    manifest = function(**spec) if spec else function()
    manifest["metadata"] |= {"name": name, "namespace": namespace, "uid": f"uid-{name}"}
    return manifest


def test_a_body_is_parsed_into_the_typed_function() -> None:
    views = function_views()
    view = views.put(body())
    assert isinstance(view.model, Function)
    assert view.model.metadata.name == "hello"
    assert view.problem is None
    assert views[("team", "hello")] is view


def test_an_invalid_body_is_a_problem_that_names_the_field() -> None:
    broken = body()
    broken["spec"]["timeoutSeconds"] = -1
    view = function_views().put(broken)
    assert view.model is None
    assert view.problem is not None
    assert view.problem.reason == "InvalidSpec"
    assert "timeoutSeconds" in view.problem.message


def with_status(manifest: dict[str, Any], replicas: int) -> dict[str, Any]:
    changed = copy.deepcopy(manifest)
    changed["status"] = {"replicas": replicas}
    changed["metadata"]["resourceVersion"] = str(100 + replicas)
    return changed


def edit_spec(manifest: dict[str, Any]) -> dict[str, Any]:
    changed = copy.deepcopy(manifest)
    changed["spec"]["timeoutSeconds"] = 9
    return changed


def edit_labels(manifest: dict[str, Any]) -> dict[str, Any]:
    changed = copy.deepcopy(manifest)
    changed["metadata"]["labels"] = {"team": "payments"}
    return changed


def recreate(manifest: dict[str, Any]) -> dict[str, Any]:
    changed = copy.deepcopy(manifest)
    changed["metadata"]["uid"] = "uid-new"
    return changed


@pytest.mark.parametrize(
    ("change", "parsed_again"),
    [
        (lambda m: with_status(m, 1), False),  # a status write: the same model
        (lambda m: copy.deepcopy(m), False),  # an equal body, copied
        (edit_spec, True),
        (edit_labels, True),
        (recreate, True),  # deleted and created again under the same name
    ],
    ids=["status", "copy", "spec", "labels", "uid"],
)
def test_a_body_is_parsed_again_only_when_what_it_says_changed(
    change: Any, parsed_again: bool
) -> None:
    views = function_views()
    first = views.put(body())
    second = views.put(change(first.body))
    assert second.body is not first.body  # the body is always the latest
    assert (second.parsed is not first.parsed) == parsed_again


def test_a_spec_edit_shows_in_the_model() -> None:
    views = function_views()
    views.put(body())
    view = views.put(edit_spec(body()))
    assert view.model is not None
    assert view.model.spec.timeout_seconds == 9


def test_sync_of_a_namespace_removes_only_its_missing_objects() -> None:
    views = function_views()
    for name, namespace in [("a", "team"), ("b", "team"), ("c", "ops")]:
        views.put(body(name, namespace))
    gone = views.sync([body("a", "team")], namespace="team")
    assert gone == {("team", "b")}
    assert sorted(views) == [("ops", "c"), ("team", "a")]
    assert views.sync([], namespace=None) == {("ops", "c"), ("team", "a")}
    assert len(views) == 0


def test_remove_forgets_and_a_missing_key_is_no_error() -> None:
    views = function_views()
    views.put(body())
    views.remove(("team", "hello"))
    views.remove(("team", "hello"))
    assert ("team", "hello") not in views


def test_eventsources_have_views_too() -> None:
    source = {
        "apiVersion": "lambdalet.dev/v1alpha1",
        "kind": "EventSource",
        "metadata": {"name": "tick", "namespace": "team", "uid": "u"},
        "spec": {"function": {"name": "hello"}, "schedule": {"expression": "rate(5 minutes)"}},
    }
    view = eventsource_views().put(source)
    assert isinstance(view.model, EventSource)
    assert key_of(source) == ("team", "tick")
