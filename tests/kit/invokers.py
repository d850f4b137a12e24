"""Stand-ins for a Function behind the two invocation seams, recording every call.

- ``RecordingInvoker``: the dispatcher's ``Invoke`` protocol (what ``ActivatorInvoker`` does:
  an SQS-shaped event in, an ``Answer`` out). ``answer(call)`` makes each answer (a 200 with
  ``null`` unless given); ``clock`` stamps each call (a ``FakeClock`` in simulated time);
  ``delay`` is how long the Function takes, in real seconds.
- ``ScriptedInvoker``: the activator's ``Invoker`` (the proxy's seam, which the asynchronous
  queue invokes through): each Function's calls are answered from its script, then with
  ``default``; ``gate`` holds calls until it is set.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lambdalet.contracts.invocation import InvokeResult
from lambdalet.contracts.keys import Key
from lambdalet.dispatcher.delivery.outcome import Answer


@dataclass
class Call:
    """One invocation through the dispatcher's seam: when, which Function, the event, the
    timeout it was given."""

    at: float
    function: Key
    event: dict[str, Any]
    timeout: float

    @property
    def records(self) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = self.event["Records"]
        return records

    @property
    def ids(self) -> list[str]:
        return [str(record["messageId"]) for record in self.records]


def succeed(call: Call) -> Answer:
    """The whole batch succeeded (the Function returned ``null``)."""
    return InvokeResult(status=200, body=b"null", request_id="r")


@dataclass
class RecordingInvoker:
    answer: Callable[[Call], Answer] = succeed
    clock: Callable[[], float] = time.monotonic
    delay: float = 0.0
    calls: list[Call] = field(default_factory=list)

    async def invoke(
        self,
        function: Key,
        payload: bytes,
        *,
        timeout: float,  # noqa: ASYNC109 - the Invoke protocol's
    ) -> Answer:
        if self.delay:
            await asyncio.sleep(self.delay)
        call = Call(self.clock(), function, json.loads(payload), timeout)
        self.calls.append(call)
        return self.answer(call)

    @property
    def events(self) -> list[list[dict[str, Any]]]:
        """The records of each call, in order."""
        return [call.records for call in self.calls]

    def ids(self) -> list[str]:
        """The message ids of every call, in order."""
        return [message_id for call in self.calls for message_id in call.ids]


ScriptedAnswer = InvokeResult | Exception


@dataclass
class ProxyCall:
    key: Key
    payload: bytes
    request_id: str
    headers: Mapping[str, str]
    at: float  # loop time


def done() -> InvokeResult:
    return InvokeResult(200, b'"done"', "")


@dataclass
class ScriptedInvoker:
    """Answers each function's calls from its script, then with ``default``; can hold calls."""

    scripts: dict[str, list[ScriptedAnswer]] = field(default_factory=dict)
    default: Callable[[], ScriptedAnswer] = done
    gate: asyncio.Event | None = None  # when set, calls wait for it
    calls: list[ProxyCall] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0

    async def invoke(
        self,
        key: Key,
        payload: bytes,
        *,
        request_id: str,
        headers: Mapping[str, str] | None = None,
        deadline: float | None = None,
    ) -> InvokeResult:
        loop = asyncio.get_running_loop()
        assert deadline is not None
        assert deadline > loop.time()
        self.calls.append(ProxyCall(key, payload, request_id, dict(headers or {}), loop.time()))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.gate is not None:
                await self.gate.wait()
            script = self.scripts.get(key[1], [])
            answer = script.pop(0) if script else self.default()
            if isinstance(answer, Exception):
                raise answer
            return InvokeResult(
                answer.status, answer.body, request_id, answer.function_error, answer.headers
            )
        finally:
            self.in_flight -= 1

    def ids(self, name: str) -> list[str]:
        """The request ids of the calls of the Function(s) named ``name``, in order."""
        return [call.request_id for call in self.calls if call.key[1] == name]
