"""The event dispatcher against a real kube-apiserver: its Lease, the EventSources assigned to
it, the Polling condition, queue depths to the autoscaler, hand-over to another replica, and
the schedule claim that lets one replica fire a tick.

The function side is real too: an in-process activator (``tests.activator.stack``) in front of a
real agent and Python runtime, reading a real redis-server. The operator's part (the assignment
in ``status.assignedReplica``) is written by the tests as the operator would write it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio
from aiohttp import web

from lambdalet.dispatcher.main import dispatch
from lambdalet.dispatcher.replica.status import SourceStatus
from lambdalet.k8s.client import APPLY, KubeClient, resource_path
from lambdalet.k8s.errors import NotFound
from tests.activator.stack import Stack, start_stack
from tests.kit.ports import free_port
from tests.kit.servers.agent import StartAgent
from tests.kit.servers.kube import Cluster
from tests.kit.servers.redis import RedisServer
from tests.kit.wait import wait_for_async

pytestmark = pytest.mark.controlplane

# The tests play the operator here, but the session's real operator (the ``operator`` fixture
# other modules start) serves every namespace and assigns EventSources among the Leases of its
# own dispatcher namespace (lambdalet-system): these replicas keep their Leases elsewhere, so
# that operator sees none of them and reads these sources as NoDispatcher, and the tests write
# assignedReplica under a field manager of their own, which the operator's applies (that leave
# assignedReplica out while no replica is live) do not remove.
LEASES = "lambdalet-dispatcher-tests"
ASSIGNER = "test-assigner"
WAIT = 30.0

HANDLER = """
import os

def handler(event, context):
    with open(os.environ["SEEN_LOG"], "a") as seen:
        for record in event["Records"]:
            seen.write(record["messageId"] + "\\n")
    return {}
"""


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    activator = await start_stack()
    try:
        yield activator
    finally:
        await activator.close()


@pytest.fixture
async def namespace(crds: Cluster, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    name = f"dsp-{request.node.name.replace('_', '-')[5:40].strip('-')}-{int(time.time()) % 10000}"
    crds.kubectl("create", "namespace", name)
    with contextlib.suppress(Exception):
        crds.kubectl("create", "namespace", LEASES)
    try:
        yield name
    finally:
        crds.kubectl("delete", "namespace", name, "--wait=false")


class Autoscaler:
    """Records the stats reports sent to it, as the operator's endpoint would receive them."""

    def __init__(self) -> None:
        self.reports: list[dict[str, Any]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        async def stats(request: web.Request) -> web.Response:
            self.reports.append(await request.json())
            return web.Response(text="{}")

        app = web.Application()
        app.router.add_post("/v1/stats", stats)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@contextlib.asynccontextmanager
async def running_dispatcher(
    cluster: Cluster, replica: str, *, activator: str, autoscaler: str, port: int
) -> AsyncIterator[None]:
    stop = asyncio.Event()
    env = {
        "KUBECONFIG": str(cluster.kubeconfig),
        "LAMBDALET_DISPATCHER_NAME": replica,
        "LAMBDALET_DISPATCHER_NAMESPACE": LEASES,
        "LAMBDALET_ACTIVATOR_URL": activator,
        "LAMBDALET_AUTOSCALER_URL": autoscaler,
        "LAMBDALET_DISPATCHER_HOST": "127.0.0.1",
        "LAMBDALET_DISPATCHER_PORT_NUMBER": str(port),
        "LAMBDALET_DISPATCHER_REPORT_SECONDS": "0.2",
    }
    task = asyncio.create_task(dispatch(env, stop=stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 40)


async def assign(client: KubeClient, namespace: str, name: str, replica: str) -> None:
    """Write status.assignedReplica as the operator does (server-side apply on the status)."""
    await client.request(
        "PATCH",
        resource_path("lambdalet.dev/v1alpha1", "EventSource", namespace, name) + "/status",
        what="assign",
        json={
            "apiVersion": "lambdalet.dev/v1alpha1",
            "kind": "EventSource",
            "metadata": {"name": name, "namespace": namespace},
            "status": {"assignedReplica": replica},
        },
        content_type=APPLY,
        params={"fieldManager": ASSIGNER, "force": "true"},
    )


def orders_source(namespace: str, function: str, redis_url: str, **spec: Any) -> dict[str, Any]:
    """EventSource ``orders``: stream ``orders`` of ``redis_url``, to Function ``function``."""
    return {
        "apiVersion": "lambdalet.dev/v1alpha1",
        "kind": "EventSource",
        "metadata": {"name": "orders", "namespace": namespace},
        "spec": {
            "function": {"name": function},
            "redisStreams": {"url": redis_url, "stream": "orders"},
            **spec,
        },
    }


async def event_source(client: KubeClient, namespace: str) -> dict[str, Any]:
    return await client.get("lambdalet.dev/v1alpha1", "EventSource", namespace, "orders")


def polling(obj: dict[str, Any]) -> dict[str, Any] | None:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == "Polling"), None)


async def test_dispatcher_runs_its_event_sources_and_hands_them_over(
    crds: Cluster,
    client: KubeClient,
    namespace: str,
    stack: Stack,
    start_agent: StartAgent,
    redis_server: RedisServer,
    redis_client: redis.asyncio.Redis,
    tmp_path: Path,
) -> None:
    seen_log = tmp_path / "seen.log"
    agent = start_agent({"app.py": HANDLER}, env={"SEEN_LOG": str(seen_log)})
    stack.function("orders", namespace, pods={"127.0.0.1": agent.port})
    await client.create(
        {
            "apiVersion": "lambdalet.dev/v1alpha1",
            "kind": "Function",
            "metadata": {"name": "orders", "namespace": namespace},
            "spec": {
                "runtime": "python3.11",
                "handler": "app.handler",
                "code": {"inline": {"app.py": HANDLER}},
            },
        }
    )
    await client.create(orders_source(namespace, "orders", redis_server.url, batchSize=10))
    await assign(client, namespace, "orders", "replica-a")
    ids = [(await redis_client.xadd("orders", {"body": f"m{n}"})).decode() for n in range(50)]
    autoscaler = Autoscaler()
    await autoscaler.start()
    port = free_port()

    async def group() -> dict[str, Any]:
        for info in await redis_client.xinfo_groups("orders"):
            return {str(k): v for k, v in info.items()}
        return {}

    async with running_dispatcher(
        crds, "replica-a", activator=stack.url, autoscaler=autoscaler.url, port=port
    ):

        async def drained() -> bool:
            info = await group()
            return bool(info) and info["pending"] == 0 and info["lag"] == 0

        await wait_for_async(drained, WAIT, what="the stream drained")
        assert sorted(seen_log.read_text().split()) == sorted(ids)  # every message, once

        async def polling_true() -> bool:
            condition = polling(await event_source(client, namespace))
            return condition is not None and condition["status"] == "True"

        await wait_for_async(polling_true, WAIT, what="Polling=True")
        lease = await client.get(
            "coordination.k8s.io/v1", "Lease", LEASES, "lambdalet-dispatcher-replica-a"
        )
        assert lease["spec"]["holderIdentity"] == "replica-a"

        async def reported_drained() -> bool:
            """The latest report says nothing waits. (One sent before the stream drained, e.g.
            on a busy machine, counted what waited then.)"""
            mine = [r for r in autoscaler.reports if r["activator"] == "dispatcher/replica-a"]
            return bool(mine) and [line["queueDepth"] for line in mine[-1]["functions"]] == [0]

        await wait_for_async(
            reported_drained, WAIT, what="a queue-depth report of the drained stream"
        )
        lines = [line for report in autoscaler.reports for line in report["functions"]]
        assert {(line["namespace"], line["name"]) for line in lines} == {(namespace, "orders")}
        assert all(0 <= line["queueDepth"] <= len(ids) for line in lines)
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200
            metrics = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
        assert 'lambdalet_dispatcher_sources{kind="queue"} 1.0' in metrics
        assert (
            f'lambdalet_dispatcher_messages_total{{eventsource="orders",namespace="{namespace}",'
            'outcome="acked"} 50.0' in metrics
        )

        # Moved to another replica: this one settles what it holds (its long poll may still
        # take a message) and stops reading.
        await assign(client, namespace, "orders", "replica-b")

        async def stopped() -> bool:
            async with httpx.AsyncClient() as http:
                text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
            return 'lambdalet_dispatcher_sources{kind="queue"}' not in text

        await wait_for_async(stopped, WAIT, what="the runner stopped after the hand-over")
        read = (await group())["entries-read"]
        for n in range(5):
            await redis_client.xadd("orders", {"body": f"late{n}"})
        await asyncio.sleep(2)
        assert (await group())["entries-read"] == read  # nobody here reads them any more
    await autoscaler.close()
    with pytest.raises(NotFound):  # a clean shutdown removes the Lease
        await client.get(
            "coordination.k8s.io/v1", "Lease", LEASES, "lambdalet-dispatcher-replica-a"
        )


async def test_a_source_of_a_missing_function_is_not_run(
    crds: Cluster,
    client: KubeClient,
    namespace: str,
    stack: Stack,
    redis_server: RedisServer,
    redis_client: redis.asyncio.Redis,
) -> None:
    await client.create(orders_source(namespace, "nowhere", redis_server.url))
    await assign(client, namespace, "orders", "replica-m")
    await redis_client.xadd("orders", {"body": "kept"})
    async with running_dispatcher(
        crds, "replica-m", activator=stack.url, autoscaler="", port=free_port()
    ):
        await asyncio.sleep(2)
    # Not consumed: it waits for the Function instead of being dead-lettered for nothing.
    assert await redis_client.xinfo_groups("orders") == []
    assert polling(await event_source(client, namespace)) is None


async def test_two_replicas_claiming_one_tick_fire_it_once(
    client: KubeClient, namespace: str
) -> None:
    await client.create(
        {
            "apiVersion": "lambdalet.dev/v1alpha1",
            "kind": "EventSource",
            "metadata": {"name": "orders", "namespace": namespace},
            "spec": {"function": {"name": "f"}, "schedule": {"expression": "* * * * *"}},
        }
    )
    obj = await event_source(client, namespace)
    generation = obj["metadata"]["generation"]
    a = SourceStatus(client, namespace, "orders", replica="a", generation=generation)
    b = SourceStatus(client, namespace, "orders", replica="b", generation=generation)
    tick = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)

    claims = await asyncio.gather(a.claim(tick), b.claim(tick))

    assert sorted(claims) == [False, True]
    winner, loser = (a, b) if claims[0] else (b, a)
    assert await winner.claim(tick)  # a replica may claim again (its next attempt)
    assert not await loser.claim(tick)
    await winner.set(tick)
    assert not await loser.claim(tick)  # recorded: nobody fires it again
    assert await loser.get() == tick
    status = (await event_source(client, namespace))["status"]
    assert status["lastScheduleTime"] == "2026-11-22T12:00:00Z"
    assert "firing" not in status

    # A claim whose replica died runs out: the next tick, claimed by "a" long ago, goes to "b".
    later = tick + timedelta(minutes=1)
    stale = SourceStatus(
        client, namespace, "orders", replica="b", generation=generation, claim_ttl=timedelta(0)
    )
    assert await a.claim(later)
    assert await stale.claim(later)
    firing = (await event_source(client, namespace))["status"]["firing"]
    assert firing["replica"] == "b"
    # The Polling condition and the schedule fields are written together, never erasing each
    # other (server-side apply drops a manager's fields it leaves out).
    await stale.polling(True, "Polling", "scheduled")
    status = (await event_source(client, namespace))["status"]
    assert json.dumps(status["firing"]) == json.dumps(firing)
    assert polling({"status": status}) is not None
