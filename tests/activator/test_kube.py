"""The activator's cluster view without an API server: which Functions it serves, and how an
EndpointSlice becomes ready addresses (the informers themselves run against a real API server
in tests/controlplane/test_activator_view.py)."""

from __future__ import annotations

from typing import Any

import pytest

from lambdalet.activator.kube import ClusterView, _ready_endpoints
from lambdalet.activator.metrics import Metrics
from lambdalet.activator.proxy import Proxy
from lambdalet.activator.upstream import Pool


def function(namespace: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "lambdalet.dev/v1alpha1",
        "kind": "Function",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "runtime": "python3.11",
            "handler": "app.handler",
            "code": {"inline": {"app.py": "def handler(e, c): return e\n"}},
        },
    }


async def test_functions_outside_the_served_namespaces_are_not_served() -> None:
    proxy = Proxy(Pool(), poke=lambda key: None, metrics=Metrics())
    view = ClusterView(None, proxy, namespaces=("team-*,!team-test",))  # type: ignore[arg-type]

    view._sync_functions(
        None,
        [function("team-a", "hello"), function("team-test", "hello"), function("ops", "hello")],
    )
    view._function_changed("ADDED", function("team-b", "late"))
    view._function_changed("ADDED", function("elsewhere", "late"))

    assert proxy.config(("team-a", "hello")) is not None
    assert proxy.config(("team-b", "late")) is not None
    assert proxy.config(("team-test", "hello")) is None
    assert proxy.config(("ops", "hello")) is None
    assert proxy.config(("elsewhere", "late")) is None
    proxy.close()


async def test_a_namespace_listing_replaces_only_that_namespace() -> None:
    """With plain names the view lists each namespace on its own (no cluster-wide read)."""
    proxy = Proxy(Pool(), poke=lambda key: None, metrics=Metrics())
    view = ClusterView(None, proxy, namespaces=("a", "b"))  # type: ignore[arg-type]

    view._sync_functions("a", [function("a", "one"), function("a", "two")])
    view._sync_functions("b", [function("b", "one")])
    assert not view.synced.is_set()  # slices not listed yet
    view._sync_slices("a", [])
    view._sync_slices("b", [])
    assert view.synced.is_set()
    view._sync_functions("a", [function("a", "two")])  # "one" was deleted while unwatched

    assert proxy.config(("a", "one")) is None
    assert proxy.config(("a", "two")) is not None
    assert proxy.config(("b", "one")) is not None  # b's listing is not a's business
    proxy.close()


def endpoint_slice(endpoints: list[dict[str, Any]], port_name: str = "http") -> dict[str, Any]:
    return {
        "metadata": {
            "name": "fn-hello-abc",
            "namespace": "team",
            "labels": {"lambdalet.dev/function": "hello"},
        },
        "ports": [{"name": port_name, "port": 8080}],
        "endpoints": endpoints,
    }


@pytest.mark.parametrize(
    ("endpoints", "ready"),
    [
        ([{"addresses": ["10.0.0.1"], "conditions": {"ready": True}}], {"10.0.0.1": 8080}),
        ([{"addresses": ["10.0.0.1"], "conditions": {}}], {"10.0.0.1": 8080}),  # unknown = ready
        ([{"addresses": ["10.0.0.1"], "conditions": {"ready": False}}], {}),
        ([{"addresses": ["10.0.0.1"], "conditions": {"ready": True, "terminating": True}}], {}),
        ([{"addresses": ["10.0.0.1", "10.0.0.9"]}], {"10.0.0.1": 8080}),  # one pod, one address
        ([], {}),
    ],
)
def test_ready_endpoints_of_a_slice(endpoints: list[dict[str, Any]], ready: dict[str, int]) -> None:
    assert _ready_endpoints(endpoint_slice(endpoints)) == (("team", "hello"), ready)


def test_a_slice_without_the_http_port_has_no_ready_address() -> None:
    slice_ = endpoint_slice([{"addresses": ["10.0.0.1"]}], port_name="metrics")
    assert _ready_endpoints(slice_) == (("team", "hello"), {})


def test_a_slice_of_no_function_is_ignored() -> None:
    slice_ = endpoint_slice([{"addresses": ["10.0.0.1"]}])
    slice_["metadata"]["labels"] = {}
    assert _ready_endpoints(slice_) is None
