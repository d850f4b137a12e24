"""Simulated time for the pure-core-plus-shell tests: a clock only the test moves.

One ``FakeClock`` stands in for each kind of clock the components take:

- a ``Callable[[], float]`` (the autoscaler's loop, the operator's EventSource state): pass the
  clock itself, ``clock()`` reads it;
- the delivery loop's ``Clock`` protocol: ``now()``, and ``sleep``, which returns at once and
  moves time on by what it was asked (recorded in ``sleeps``);
- an event loop's ``time()`` (the activator's peers read their loop's clock).

The test moves it with ``advance`` or sets ``seconds``. Nothing here waits.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FakeClock:
    seconds: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.seconds

    def now(self) -> float:
        return self.seconds

    def time(self) -> float:
        return self.seconds

    def advance(self, seconds: float) -> None:
        self.seconds += seconds

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.seconds += seconds
