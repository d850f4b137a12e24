"""An in-memory queue for the delivery loop's unit tests, in simulated time.

The clock is ``tests.kit.clock.FakeClock`` (its ``sleep`` moves time on) and the Function is
``tests.kit.invokers.RecordingInvoker`` stamped with that clock. ``FakeSource`` keeps the
``Source`` contract in memory (messages in flight until acked, retried with a higher receive
count, dead letters recorded) with messages that arrive at simulated times; a receive that would
wait moves the clock to the next arrival (or by its whole wait). When nothing is left to arrive
and nothing waits, ``receive`` raises ``Idle``: the loop under test ends there, so tests run
``Delivery.run`` to the end instead of sleeping. Broker behaviour itself is tested against real
brokers, not here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from lambdalet.dispatcher.sources.source import Message, SourceError
from tests.kit.clock import FakeClock


class Idle(Exception):
    """Nothing left to deliver: ends ``Delivery.run`` in a test."""


@dataclass
class Stored:
    id: str
    body: bytes
    arrives: float
    receive_count: int = 0
    state: str = "waiting"  # waiting -> in_flight -> acked / dead


@dataclass
class FakeSource:
    clock: FakeClock
    arn: str = "arn:aws:sqs:us-east-1:000000000000:fake"
    messages: list[Stored] = field(default_factory=list)
    fail: dict[str, int] = field(default_factory=dict)  # method -> SourceErrors still to raise
    fail_calls: set[tuple[str, int]] = field(default_factory=set)  # (method, nth call) to fail
    calls: list[str] = field(default_factory=list)
    dead: list[tuple[str, str]] = field(default_factory=list)  # (id, reason)
    acks: list[str] = field(default_factory=list)
    receives: list[tuple[float, int, float]] = field(default_factory=list)  # (at, max, wait)
    most_in_flight: int = 0
    started: int = 0
    closed: bool = False

    def add(
        self, count: int, *, at: float = 0.0, body: Callable[[int], bytes] | None = None
    ) -> None:
        for _ in range(count):
            n = len(self.messages)
            payload = body(n) if body else f"m{n}".encode()
            self.messages.append(Stored(f"m{n}", payload, at))

    def _check(self, method: str) -> None:
        self.calls.append(method)
        if (method, self.calls.count(method)) in self.fail_calls:
            raise SourceError(f"{method} call {self.calls.count(method)} failed")
        if self.fail.get(method, 0) > 0:
            self.fail[method] -= 1
            raise SourceError(f"{method} failed")

    def _ready(self) -> list[Stored]:
        now = self.clock.seconds
        return [m for m in self.messages if m.state == "waiting" and m.arrives <= now]

    def in_flight(self) -> int:
        return sum(1 for m in self.messages if m.state == "in_flight")

    async def start(self) -> None:
        self._check("start")
        self.started += 1

    async def receive(self, max_messages: int, wait_seconds: float) -> list[Message]:
        self._check("receive")
        self.receives.append((self.clock.seconds, max_messages, wait_seconds))
        ready = self._ready()
        if not ready:
            future = [m.arrives for m in self.messages if m.state == "waiting"]
            if not future and not self.in_flight():
                raise Idle
            due = min(future, default=None)
            if due is not None and due <= self.clock.seconds + wait_seconds:
                self.clock.seconds = due
            else:
                self.clock.seconds += wait_seconds
            ready = self._ready()
        out = []
        for stored in ready[:max_messages]:
            stored.state = "in_flight"
            stored.receive_count += 1
            out.append(
                Message(
                    id=stored.id,
                    body=stored.body,
                    receive_count=stored.receive_count,
                    sent_at_ms=1_000,
                    first_received_at_ms=2_000,
                )
            )
        self.most_in_flight = max(self.most_in_flight, self.in_flight())
        return out

    def _stored(self, message: Message) -> Stored:
        found = next(m for m in self.messages if m.id == message.id)
        assert found.state == "in_flight", f"{message.id} settled twice"
        return found

    async def ack(self, messages: Sequence[Message]) -> None:
        self._check("ack")
        for message in messages:
            self._stored(message).state = "acked"
            self.acks.append(message.id)

    async def retry(self, messages: Sequence[Message]) -> None:
        self._check("retry")
        for message in messages:
            self._stored(message).state = "waiting"

    async def dead_letter(self, messages: Sequence[Message], reason: str) -> None:
        self._check("dead_letter")
        for message in messages:
            self._stored(message).state = "dead"
            self.dead.append((message.id, reason))

    async def depth(self) -> int | None:
        self._check("depth")
        return sum(1 for m in self.messages if m.state in ("waiting", "in_flight"))

    async def close(self) -> None:
        self.calls.append("close")
        self.closed = True

    def states(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for stored in self.messages:
            counts[stored.state] = counts.get(stored.state, 0) + 1
        return counts
