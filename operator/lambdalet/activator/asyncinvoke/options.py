"""How the asynchronous queue is set up, and how it finds a Function's configuration.

Shared by the queue (``queue``), which takes the options, and its workers (``worker``), which run
under them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from lambdalet.activator.asyncinvoke.policy import RetryPolicy
from lambdalet.activator.model import FunctionConfig
from lambdalet.contracts.keys import Key

ConfigLookup = Callable[[Key], FunctionConfig | None]


@dataclass(frozen=True)
class AsyncQueueOptions:
    prefix: str = "lambdalet"  # of every Redis key (see store)
    group: str = "lambdalet-activator"  # the consumer group all replicas share
    max_events_per_function: int = 100_000
    max_concurrency: int = 64  # events one worker handles at once
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    placement_wait: float = 60.0  # how long an attempt may wait for a pod (invoke deadline)
    claim_margin: float = 30.0  # see the module docstring
    claim_interval: float = 5.0  # how often to look for entries of dead workers
    poll_interval: float = 1.0  # longest block in XREADGROUP
    redis_timeout: float = 5.0  # for each Redis call of enqueue and depth
    region: str = "us-east-1"  # in the function ARN of invocation records

    def __post_init__(self) -> None:
        if self.max_events_per_function < 1 or self.max_concurrency < 1:
            raise ValueError("max_events_per_function and max_concurrency must be at least 1")
        timings = (self.placement_wait, self.claim_margin, self.claim_interval)
        if min(*timings, self.poll_interval, self.redis_timeout) <= 0:
            raise ValueError("the waits and intervals of AsyncQueueOptions must be positive")
