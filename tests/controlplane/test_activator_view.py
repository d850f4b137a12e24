"""The activator's view of a real kube-apiserver: Functions and their EndpointSlices reach the
proxy through the informers (``kube.ClusterView``), and bearer tokens come from Secrets
(``kube.SecretTokens``)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from lambdalet.activator.kube import ClusterView
from lambdalet.activator.metrics import Metrics
from lambdalet.activator.proxy import Proxy
from lambdalet.activator.upstream import Pool
from lambdalet.contracts.secrets import SecretTokens
from lambdalet.k8s.client import KubeClient
from tests.controlplane import objects
from tests.kit.servers.kube import Cluster
from tests.kit.wait import wait_for_async

pytestmark = pytest.mark.controlplane


def function(name: str, **spec: Any) -> dict[str, Any]:
    return objects.function(
        name,
        runtime="python3.11",
        code={"inline": {"app.py": "def handler(e, c): return e\n"}},
        **spec,
    )


def endpoint_slice(name: str, fn: str, addresses: dict[str, bool]) -> dict[str, Any]:
    """An EndpointSlice as Kubernetes makes it for a Function's Service (labels copied)."""
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/service-name": f"fn-{fn}",
                "app.kubernetes.io/managed-by": "lambdalet",
                "lambdalet.dev/function": fn,
            },
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": [ip], "conditions": {"ready": ready}} for ip, ready in addresses.items()
        ],
    }


async def test_functions_and_ready_endpoints_reach_the_proxy(
    crds: Cluster, cp_namespace: str, client: KubeClient
) -> None:
    ns = cp_namespace
    crds.apply([function("early", concurrency={"perInstance": 4, "reserved": 7})], "-n", ns)
    proxy = Proxy(Pool(), poke=lambda key: None, metrics=Metrics())
    view = ClusterView(client, proxy)
    task = asyncio.create_task(view.run())
    try:
        await asyncio.wait_for(view.synced.wait(), 15)
        config = proxy.config((ns, "early"))
        assert config is not None
        assert (config.per_instance, config.reserved) == (4, 7)

        # Created after the listing: seen through the watch.
        crds.apply([function("late", http={"eventFormat": "v1"})], "-n", ns)
        await wait_for_async(lambda: proxy.config((ns, "late")) is not None, 15.0)
        crds.apply(
            [endpoint_slice("fn-late-a", "late", {"10.0.0.1": True, "10.0.0.2": False})],
            "-n",
            ns,
        )
        await wait_for_async(lambda: _pods(proxy, ns, "late") == {"10.0.0.1": 8080}, 15.0)

        crds.apply([endpoint_slice("fn-late-b", "late", {"10.0.0.3": True})], "-n", ns)
        await wait_for_async(
            lambda: _pods(proxy, ns, "late") == {"10.0.0.1": 8080, "10.0.0.3": 8080}, 15.0
        )
        crds.kubectl("delete", "endpointslice", "fn-late-a", "-n", ns)
        await wait_for_async(lambda: _pods(proxy, ns, "late") == {"10.0.0.3": 8080}, 15.0)

        crds.kubectl("delete", "function", "late", "-n", ns)
        await wait_for_async(lambda: proxy.config((ns, "late")) is None, 15.0)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        proxy.close()


async def test_bearer_tokens_come_from_secrets(
    controlplane: Cluster, cp_namespace: str, client: KubeClient
) -> None:
    ns = cp_namespace
    controlplane.kubectl(
        "create", "secret", "generic", "hello-auth", "-n", ns, "--from-literal=token=s3cret\n"
    )
    tokens = SecretTokens(client, ttl=0.0)

    assert await tokens.token(ns, "hello-auth", "token") == "s3cret"
    assert await tokens.token(ns, "hello-auth", "other-key") is None
    assert await tokens.token(ns, "missing", "token") is None

    controlplane.kubectl(
        "create", "secret", "generic", "rotated", "-n", ns, "--from-literal=token=one"
    )
    assert await tokens.token(ns, "rotated", "token") == "one"
    controlplane.kubectl("delete", "secret", "rotated", "-n", ns)
    controlplane.kubectl(
        "create", "secret", "generic", "rotated", "-n", ns, "--from-literal=token=two"
    )
    assert await tokens.token(ns, "rotated", "token") == "two"


def _pods(proxy: Proxy, namespace: str, name: str) -> dict[str, int]:
    target = proxy._targets.get((namespace, name))
    return {ip: pod.port for ip, pod in target.pods.items()} if target else {}
