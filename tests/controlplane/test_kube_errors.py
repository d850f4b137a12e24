"""The Kubernetes error tree against a real kube-apiserver: what the API server answers to a
create of a taken name and to a write with a stale resourceVersion, as the classes callers catch
(``AlreadyExists``, ``Conflict``), and the Warning Event that several replicas post once."""

from __future__ import annotations

from typing import Any

import pytest

from lambdalet.contracts.events import post_warning
from lambdalet.contracts.problems import Problem
from lambdalet.k8s import AlreadyExists, Conflict, KubeClient, NotFound, TransientKubeError
from lambdalet.k8s.client import resource_path

pytestmark = pytest.mark.controlplane


def config_map(namespace: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "racy", "namespace": namespace},
        "data": data,
    }


async def test_a_create_of_a_taken_name_is_already_exists(
    client: KubeClient, cp_namespace: str
) -> None:
    await client.create(config_map(cp_namespace, {"a": "1"}))
    with pytest.raises(AlreadyExists) as raised:
        await client.create(config_map(cp_namespace, {"a": "2"}))
    assert raised.value.status == 409
    assert isinstance(raised.value, TransientKubeError)


async def test_a_write_with_a_stale_resource_version_is_a_conflict_only(
    client: KubeClient, cp_namespace: str
) -> None:
    await client.create(config_map(cp_namespace, {"a": "1"}))
    path = resource_path("v1", "ConfigMap", cp_namespace, "racy")
    stale = await client.get("v1", "ConfigMap", cp_namespace, "racy")
    fresh = {**stale, "data": {"a": "2"}}
    await client.request("PUT", path, what="first writer", json=fresh)

    with pytest.raises(Conflict) as raised:
        await client.request("PUT", path, what="second writer", json={**stale, "data": {"a": "3"}})
    assert not isinstance(raised.value, AlreadyExists)
    stored = await client.get("v1", "ConfigMap", cp_namespace, "racy")
    assert stored["data"] == {"a": "2"}


async def test_a_named_warning_posted_twice_is_one_event(
    client: KubeClient, cp_namespace: str
) -> None:
    body = await client.create(config_map(cp_namespace, {"a": "1"}))
    problem = Problem("InitError", "the runtime exited during init")
    for _ in range(2):  # two replicas reporting the same thing
        await post_warning(client, body, problem, name="racy.init-error")
    events = await client.list_objects("v1", "Event", cp_namespace)
    assert [(e["metadata"]["name"], e["reason"]) for e in events["items"]] == [
        ("racy.init-error", "InitError")
    ]
    with pytest.raises(NotFound):
        await client.get("v1", "ConfigMap", cp_namespace, "gone")
