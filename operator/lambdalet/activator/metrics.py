"""The activator's Prometheus metrics, served on the internal port at ``/metrics``.

    lambdalet_activator_invocations_total{namespace,function,code}   answers by HTTP status
    lambdalet_activator_invocation_outcomes_total{namespace,function,path,outcome}
                                                                     what became of each
                                                                     invocation (``outcomes``);
                                                                     path: http, invoke, async
    lambdalet_activator_invocation_duration_seconds{namespace,function}  request to answer
    lambdalet_activator_cold_starts_total{namespace,function}        held with no instance
    lambdalet_activator_cold_start_duration_seconds{namespace,function}  first held -> instance
    lambdalet_activator_throttles_total{namespace,function,reason}   reserved / overflow refusals
    lambdalet_activator_in_flight{namespace,function}                invocations on pods now
    lambdalet_activator_queue_depth{namespace,function}              requests held now

The hot path pays a dict lookup and a few integer additions per request: answers, outcomes and
durations are plain counters per Function (``_Answers``), and they, like the gauges read from the
proxy, become metric families only when Prometheus scrapes. Outcomes count invocations, not
answers: an HTTP request refused before it was invoked (401, 413) counts as ``rejected``, an
``Event`` invocation once per attempt of the asynchronous worker (``path="async"``), and its
enqueueing as ``queued`` on the Invoke API (``DryRun``: ``dry_run``).
"""

from __future__ import annotations

import contextlib
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from lambdalet.contracts.keys import Key
from lambdalet.outcomes import Outcome

DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
COLD_START_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Loads = Callable[[], Iterable[tuple[Key, int, int]]]
# Where an invocation came in: an HTTP route, the Invoke API, the asynchronous worker.
Via = Literal["http", "invoke", "async"]
# What the Invoke API did with an Event or a DryRun invocation instead of invoking.
Queued = Literal["queued", "dry_run"]


class _LoadCollector(Collector):
    def __init__(self, loads: Loads) -> None:
        self._loads = loads

    def collect(self) -> Iterator[Metric]:
        in_flight = GaugeMetricFamily(
            "lambdalet_activator_in_flight",
            "Invocations on function instances now.",
            labels=["namespace", "function"],
        )
        held = GaugeMetricFamily(
            "lambdalet_activator_queue_depth",
            "Requests held for an instance now.",
            labels=["namespace", "function"],
        )
        for (namespace, name), flying, waiting in self._loads():
            in_flight.add_metric([namespace, name], flying)
            held.add_metric([namespace, name], waiting)
        yield in_flight
        yield held


class _Answers:
    """One Function's answers by status code, and a histogram of their durations."""

    __slots__ = ("buckets", "codes", "count", "outcomes", "total")

    def __init__(self) -> None:
        self.codes: dict[int, int] = {}
        self.outcomes: dict[tuple[Via, Outcome | Queued], int] = {}
        self.buckets = [0] * (len(DURATION_BUCKETS) + 1)  # the last one is +Inf
        self.count = 0
        self.total = 0.0


class _AnswerCollector(Collector):
    def __init__(self, answers: dict[Key, _Answers]) -> None:
        self._answers = answers

    def collect(self) -> Iterator[Metric]:
        invocations = CounterMetricFamily(
            "lambdalet_activator_invocations",
            "Invocations answered, by HTTP status code.",
            labels=["namespace", "function", "code"],
        )
        outcomes = CounterMetricFamily(
            "lambdalet_activator_invocation_outcomes",
            "Invocations by what became of them: success, error, timeout, oom, runtime_exit, "
            "init_error, throttled, unavailable, rejected (and queued, dry_run on the Invoke "
            "API); path: http, invoke or async.",
            labels=["namespace", "function", "path", "outcome"],
        )
        duration = HistogramMetricFamily(
            "lambdalet_activator_invocation_duration_seconds",
            "Time from a request's arrival to its answer.",
            labels=["namespace", "function"],
        )
        for (namespace, name), answers in list(self._answers.items()):
            for code, count in sorted(answers.codes.items()):
                invocations.add_metric([namespace, name, str(code)], count)
            for (path, outcome), count in sorted(answers.outcomes.items()):
                outcomes.add_metric([namespace, name, path, outcome], count)
            cumulative, buckets = 0, []
            for bound, count in zip(
                (*DURATION_BUCKETS, float("inf")), answers.buckets, strict=True
            ):
                cumulative += count
                buckets.append((_bound(bound), cumulative))
            duration.add_metric([namespace, name], buckets, answers.total)
        yield invocations
        yield outcomes
        yield duration


def _bound(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._answers: dict[Key, _Answers] = {}
        self.registry.register(_AnswerCollector(self._answers))
        self._cold_starts = Counter(
            "lambdalet_activator_cold_starts",
            "Requests that found no instance and were held for one.",
            ["namespace", "function"],
            registry=self.registry,
        )
        self._cold_start_duration = Histogram(
            "lambdalet_activator_cold_start_duration_seconds",
            "Time from the first held request of a cold start to an instance taking it.",
            ["namespace", "function"],
            buckets=COLD_START_BUCKETS,
            registry=self.registry,
        )
        self._throttles = Counter(
            "lambdalet_activator_throttles",
            "Requests refused: reserved concurrency reached, or the hold queue full.",
            ["namespace", "function", "reason"],
            registry=self.registry,
        )

    def watch_loads(self, loads: Loads) -> None:
        self.registry.register(_LoadCollector(loads))

    def answered(
        self,
        key: Key,
        code: int,
        seconds: float,
        *,
        path: Via,
        outcome: Outcome | Queued,
    ) -> None:
        """A client's request answered with ``code`` after ``seconds``."""
        answers = self._answers.get(key)
        if answers is None:
            answers = self._answers[key] = _Answers()
        answers.codes[code] = answers.codes.get(code, 0) + 1
        counted = (path, outcome)
        answers.outcomes[counted] = answers.outcomes.get(counted, 0) + 1
        answers.buckets[bisect_left(DURATION_BUCKETS, seconds)] += 1
        answers.count += 1
        answers.total += seconds

    def attempted(self, key: Key, outcome: Outcome) -> None:
        """An attempt of the asynchronous worker ended in ``outcome``."""
        answers = self._answers.get(key)
        if answers is None:
            answers = self._answers[key] = _Answers()
        counted: tuple[Via, Outcome] = ("async", outcome)
        answers.outcomes[counted] = answers.outcomes.get(counted, 0) + 1

    def cold_start(self, key: Key) -> None:
        self._cold_starts.labels(*key).inc()

    def cold_start_done(self, key: Key, seconds: float) -> None:
        self._cold_start_duration.labels(*key).observe(seconds)

    def throttled(self, key: Key) -> None:
        self._throttles.labels(key[0], key[1], "reserved").inc()

    def overflowed(self, key: Key) -> None:
        self._throttles.labels(key[0], key[1], "overflow").inc()

    def forget(self, key: Key) -> None:
        """Drop a deleted Function's series."""
        self._answers.pop(key, None)
        for family in (self._cold_starts, self._cold_start_duration):
            with contextlib.suppress(KeyError):
                family.remove(*key)
        for reason in ("reserved", "overflow"):
            with contextlib.suppress(KeyError):
                self._throttles.remove(key[0], key[1], reason)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
