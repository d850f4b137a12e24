"""Reserved concurrency holds function-wide across activators (``activator.peers``/``quota``).

Everything is real: two or three ``lambdalet activator`` processes, each keeping its Lease in the
test's namespace of a real kube-apiserver and reading the Function and its EndpointSlice from it;
one agent process (the Go agent and the Python runtime, ten runtimes, so the pod side could run
ten at once) serves a handler that counts how many invocations run at once — at the handler, not
in the activators — and holds each until the test opens a gate. So no timing is assumed: a round
sends 40 requests spread over the activators, waits for the refusals, reads the count, then opens
the gate.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.controlplane.test_activator_view import endpoint_slice, function
from tests.kit.ports import free_port
from tests.kit.servers.activator import ActivatorProcess
from tests.kit.servers.agent import Agent, StartAgent
from tests.kit.servers.kube import Cluster
from tests.kit.wait import wait_for

pytestmark = pytest.mark.controlplane

RESERVED = 5
TIMEOUT = 30  # the Function's timeoutSeconds: a gate left shut ends an invocation by then
LEASE_SECONDS = 6  # renewed every 2 s; fenced after 4 s without a renewal
REQUESTS = 40

# Counts the invocations running at once in a file under the event's "dir" (an exclusive lock
# around each change, as runtimes are separate processes), then waits for the gate file.
HANDLER = f"""
import fcntl, os, time

def _count(path, delta):
    with open(os.path.join(path, "count"), "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        words = f.read().split()
        now, peak = (int(words[0]), int(words[1])) if words else (0, 0)
        now += delta
        f.seek(0)
        f.truncate()
        f.write(f"{{now}} {{max(peak, now)}}")

def handler(event, context):
    path = event["dir"]
    _count(path, 1)
    try:
        deadline = time.monotonic() + {TIMEOUT - 2}
        while not os.path.exists(os.path.join(path, "open")) and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        _count(path, -1)
    return {{"ok": True}}
"""


@dataclass
class Round:
    ok: int
    throttled: int
    peak: int  # most invocations running at once, at the handler
    other: list[int]


def _counts(path: Path) -> tuple[int, int]:
    words = (path / "count").read_text().split() if (path / "count").exists() else []
    return (int(words[0]), int(words[1])) if words else (0, 0)


async def burst(urls: list[str], ns: str, name: str, workdir: Path) -> Round:
    """``REQUESTS`` invocations at once, spread evenly over ``urls``; the gate opens when every
    refused one has been answered and the admitted ones are all running (or after 25 s, before
    the handlers stop waiting at 28 s)."""
    workdir.mkdir(parents=True)  # noqa: ASYNC240 (a local directory, at once)
    payload = json.dumps({"dir": str(workdir)}).encode()
    path = f"/2015-03-31/functions/{ns}:{name}/invocations"
    limits = httpx.Limits(max_connections=REQUESTS)
    async with httpx.AsyncClient(timeout=TIMEOUT + 30, limits=limits) as client:
        calls = [
            asyncio.create_task(client.post(urls[i % len(urls)] + path, content=payload))
            for i in range(REQUESTS)
        ]
        deadline = time.monotonic() + 25
        while time.monotonic() < deadline:
            answered = sum(call.done() for call in calls)
            running, _ = _counts(workdir)
            if answered + running == REQUESTS:
                break
            await asyncio.sleep(0.05)
        (workdir / "open").touch()
        responses = await asyncio.gather(*calls)
    codes = [r.status_code for r in responses]
    throttled = [r for r in responses if r.status_code == 429]
    for refused in throttled:
        assert refused.headers["x-amzn-errortype"] == "TooManyRequestsException"
    return Round(
        ok=codes.count(200),
        throttled=len(throttled),
        peak=_counts(workdir)[1],
        other=[c for c in codes if c not in (200, 429)],
    )


def gauge(activator: ActivatorProcess, name: str) -> float | None:
    found = re.search(rf"^{name} (\S+)$", activator.metrics(), re.M)
    return float(found.group(1)) if found else None


def activator(cluster: Cluster, ns: str, pod: str, logs: Path) -> ActivatorProcess:
    return ActivatorProcess(
        cluster.kubeconfig,
        logs / f"{pod}.log",
        port=free_port(),
        internal_port=free_port(),
        env={
            "LAMBDALET_POD_NAME": pod,
            "LAMBDALET_NAMESPACES": ns,
            "LAMBDALET_PEERS_NAMESPACE": ns,
            "LAMBDALET_PEER_LEASE_SECONDS": str(LEASE_SECONDS),
            "LAMBDALET_AUTOSCALER_URL": "http://127.0.0.1:9",  # none: reports fail quietly
            "LAMBDALET_DRAIN_SECONDS": "0",
            # Invocations over one's share go to a peer with room (``forward``).
            "LAMBDALET_PEER_KEY": "test-peer-key",
            "LAMBDALET_POD_IP": "127.0.0.1",
        },
    )


@contextmanager
def two_activators(
    cluster: Cluster, ns: str, logs: Path
) -> Iterator[tuple[ActivatorProcess, ActivatorProcess]]:
    """Activators act-a and act-b, started, once each counts the other; stopped after."""
    a = activator(cluster, ns, "act-a", logs)
    b = activator(cluster, ns, "act-b", logs)
    for process in (a, b):
        process.start()
    try:
        wait_for(lambda: joined([a, b], 2), 60, what="both activators to count each other")
        yield a, b
    finally:
        a.stop()
        b.stop()


def joined(activators: list[ActivatorProcess], members: int) -> bool:
    return all(
        gauge(a, "lambdalet_activator_members") == members
        and gauge(a, "lambdalet_activator_joined") == 1
        for a in activators
    )


def deploy(cluster: Cluster, ns: str, agent: Agent, name: str, reserved: int) -> str:
    """Function ``name`` (ten per instance) served by ``agent`` on loopback."""
    spec = {"concurrency": {"perInstance": 10, "reserved": reserved}, "timeoutSeconds": TIMEOUT}
    # The API server refuses a loopback IP in an EndpointSlice, but takes it as a name (FQDN).
    slice_ = endpoint_slice(f"fn-{name}-a", name, {"127.0.0.1": True})
    slice_["addressType"] = "FQDN"
    slice_["ports"][0]["port"] = agent.port
    cluster.apply([function(name, **spec), slice_], "-n", ns)
    return name


@pytest.fixture
def agent(start_agent: StartAgent) -> Agent:
    return start_agent(
        {"app.py": HANDLER},
        env={"LAMBDALET_CONCURRENCY": "10", "LAMBDALET_TIMEOUT_SECONDS": str(TIMEOUT)},
    )


@pytest.fixture
def capped(crds: Cluster, cp_namespace: str, agent: Agent) -> str:
    """Function ``capped``: reserved 5."""
    return deploy(crds, cp_namespace, agent, "capped", RESERVED)


async def test_two_activators_admit_the_cap_once_and_a_survivor_takes_over(
    crds: Cluster, cp_namespace: str, capped: str, tmp_path: Path
) -> None:
    ns = cp_namespace
    with two_activators(crds, ns, tmp_path) as (a, b):
        both = await burst([a.url, b.url], ns, capped, tmp_path / "both")
        assert (both.peak, both.ok, both.throttled, both.other) == (RESERVED, RESERVED, 35, [])

        # A crash: b's share stays taken until its Lease lapses and the Function's timeout
        # (b's last invocations could still run) has passed.
        b.kill()
        killed = time.monotonic()
        alone = await burst([a.url], ns, capped, tmp_path / "alone")
        assert alone.peak <= RESERVED
        assert alone.ok + alone.throttled == REQUESTS
        assert alone.other == []

        takeover = LEASE_SECONDS + TIMEOUT + 5
        await asyncio.sleep(max(0.0, killed + takeover - time.monotonic()))
        rounds = 0
        while True:  # bounded: the survivor's clock and watch may lag on a loaded machine
            rounds += 1
            later = await burst([a.url], ns, capped, tmp_path / f"later-{rounds}")
            assert later.peak <= RESERVED
            assert later.other == []
            if later.ok == RESERVED or time.monotonic() > killed + takeover + 60:
                break
        assert (later.peak, later.ok, later.throttled) == (RESERVED, RESERVED, 35)


async def test_a_clean_stop_hands_the_share_over_at_once_and_a_newcomer_waits_its_turn(
    crds: Cluster, cp_namespace: str, capped: str, tmp_path: Path
) -> None:
    ns = cp_namespace
    c = activator(crds, ns, "act-c", tmp_path)
    # A third joins (once the first two count each other): still one cap over three.
    with two_activators(crds, ns, tmp_path) as (a, b), c.serving():
        wait_for(lambda: joined([a, b, c], 3), 60, what="the newcomer to join")
        three = await burst([a.url, b.url, c.url], ns, capped, tmp_path / "three")
        assert (three.peak, three.ok, three.throttled, three.other) == (RESERVED, RESERVED, 35, [])

        # A clean stop deletes the Lease: the others take the share without waiting.
        b.stop()
        c.stop()
        assert not crds.kubectl(
            "get",
            "lease",
            "-n",
            ns,
            "-o",
            "name",
            "--ignore-not-found",
            "lambdalet-activator-act-b",
        ).stdout.strip()
        wait_for(lambda: joined([a], 1), 15, what="the survivor to count only itself")
        alone = await burst([a.url], ns, capped, tmp_path / "alone")
        assert (alone.peak, alone.ok, alone.throttled, alone.other) == (RESERVED, RESERVED, 35, [])


async def test_a_cap_smaller_than_the_activators_is_reached_through_either(
    crds: Cluster, cp_namespace: str, agent: Agent, tmp_path: Path
) -> None:
    """Reserved 1 over two activators: one holds the unit; a request reaching the other is
    handed to it, so the Function runs one at a time whichever activator is asked."""
    ns = cp_namespace
    single = deploy(crds, ns, agent, "single", 1)
    with two_activators(crds, ns, tmp_path) as (a, b):
        for process in (a, b):
            only = await burst([process.url], ns, single, tmp_path / f"via-{process.port}")
            assert (only.peak, only.ok, only.throttled, only.other) == (1, 1, REQUESTS - 1, [])
        spread = await burst([a.url, b.url], ns, single, tmp_path / "spread")
        assert (spread.peak, spread.ok, spread.throttled, spread.other) == (1, 1, REQUESTS - 1, [])
