"""``peers`` around its I/O: fencing when the Lease cannot be renewed, and what is written.

A stand-in API client (it records applies, or fails them) and a hand-moved clock: the real API
server side is in tests/controlplane/test_reserved_concurrency.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lambdalet.activator.model import FunctionConfig
from lambdalet.activator.peers import ACKS_ANNOTATION, ADDRESS_ANNOTATION, Peers
from lambdalet.k8s import KubeError
from tests.kit.clock import FakeClock

CAPPED = FunctionConfig(namespace="team", name="hello", reserved=4)


@dataclass
class Client:
    applied: list[dict[str, Any]] = field(default_factory=list)
    failing: bool = False

    async def apply(self, manifest: dict[str, Any], *, field_manager: str) -> dict[str, Any]:
        if self.failing:
            raise KubeError("the API server is unreachable")
        self.applied.append(manifest)
        return manifest


def lease(pod: str, holder: str, acks: str, version: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"lambdalet-activator-{pod}",
            "resourceVersion": version,
            "annotations": {ACKS_ANNOTATION: acks},
        },
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15, "renewTime": version},
    }


async def test_an_activator_that_cannot_renew_is_fenced_and_rejoins_as_new() -> None:
    client, clock = Client(), FakeClock(1000.0)
    peers = Peers(client, "a", "system", lease_seconds=15, address=("10.0.0.1", 8081))  # type: ignore[arg-type]
    peers._loop = clock  # type: ignore[assignment]
    first = peers.member
    assert peers.share(CAPPED) == 0  # never written: not joined

    assert await peers._write(frozenset({first}))
    written = client.applied[-1]
    assert written["spec"]["holderIdentity"] == first
    assert written["metadata"]["annotations"][ADDRESS_ANNOTATION] == "10.0.0.1:8081"
    assert peers.share(CAPPED) == 4

    clock.advance(9.9)  # renewals failing, but within 10 s (two thirds of 15): still admitting
    client.failing = True
    assert not await peers._write(frozenset({first}))
    assert peers.share(CAPPED) == 4
    clock.advance(0.1)
    assert peers.share(CAPPED) == 0  # fenced before any peer can see the Lease lapse (15 s)

    client.failing = False
    assert await peers._write(frozenset({first}))
    rejoined = client.applied[-1]
    assert peers.member != first
    assert rejoined["spec"]["holderIdentity"] == peers.member
    assert rejoined["metadata"]["annotations"][ACKS_ANNOTATION] == ""  # acks for the old self void


async def test_a_peer_must_count_the_newcomer_before_its_share_opens() -> None:
    client, clock = Client(), FakeClock(1000.0)
    peers = Peers(client, "a", "system")  # type: ignore[arg-type]
    peers._loop = clock  # type: ignore[assignment]
    me = peers.member
    peers._synced([lease("b", "b/1", "b/1", "1")])
    assert await peers._write(frozenset({me, "b/1"}))
    assert peers.share(CAPPED) == 0  # b does not count a yet

    peers._lease_changed("MODIFIED", lease("b", "b/1", f"b/1 {me}", "2"))
    assert peers.share(CAPPED) == 2  # 4 over {a, b}

    peers._lease_changed("DELETED", lease("b", "b/1", f"b/1 {me}", "2"))  # a clean stop
    assert peers.share(CAPPED) == 4


async def test_a_crashed_peer_lingers_for_the_functions_timeout() -> None:
    client, clock = Client(), FakeClock(1000.0)
    peers = Peers(client, "a", "system")  # type: ignore[arg-type]
    peers._loop = clock  # type: ignore[assignment]
    me = peers.member
    peers._synced([lease("b", "b/1", f"b/1 {me}", "1")])
    assert await peers._write(frozenset({me, "b/1"}))
    assert peers.share(CAPPED) == 2

    for _ in range(3):  # a renews every 5 s; b does not: its Lease lapses after 15 s
        clock.advance(5)
        assert await peers._write(frozenset({me}))
    assert peers.member == me
    assert peers.share(CAPPED) == 2  # b's invocations may run for the timeout (3 s) + 5 s
    clock.advance(3 + 5)
    assert peers.share(CAPPED) == 4
