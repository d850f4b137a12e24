"""Prometheus metrics of the dispatcher, read from the running sources when scraped.

    lambdalet_dispatcher_sources{kind}                          EventSources running here
                                                                (or still stopping)
    lambdalet_dispatcher_messages_total{namespace,eventsource,outcome}
                                                                received, acked, retried,
                                                                dead_lettered, dropped
    lambdalet_dispatcher_invocations_total{namespace,eventsource}
    lambdalet_dispatcher_source_errors_total{namespace,eventsource}
    lambdalet_dispatcher_invocation_outcomes_total{namespace,function,outcome}
                                                                every invocation of every
                                                                EventSource kind (queue, s3,
                                                                schedule) by its outcome
                                                                (``lambdalet.outcomes``)

The outcomes are the invoker's, kept per Function for the life of the process. The other
counters restart with a runner (a changed or moved EventSource), which Prometheus' ``rate``
treats as a counter reset.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from lambdalet.contracts.keys import Key
from lambdalet.dispatcher.delivery.loop import DeliveryStats
from lambdalet.outcomes import Outcome

Snapshot = Callable[[], list[tuple[Key, str, DeliveryStats | None]]]
Outcomes = Callable[[], Mapping[tuple[Key, Outcome], int]]
OUTCOMES = ("received", "acked", "retried", "dead_lettered", "dropped")


class DispatcherCollector(Collector):
    def __init__(self, snapshot: Snapshot, outcomes: Outcomes | None = None) -> None:
        self._snapshot = snapshot
        self._outcomes = outcomes

    def collect(self) -> Iterator[Metric]:
        rows = self._snapshot()
        sources = GaugeMetricFamily(
            "lambdalet_dispatcher_sources", "EventSources running here", labels=["kind"]
        )
        for kind, count in sorted(Counter(kind for _, kind, _ in rows).items()):
            sources.add_metric([kind], count)
        yield sources
        messages = CounterMetricFamily(
            "lambdalet_dispatcher_messages",
            "Messages of queue EventSources by outcome",
            labels=["namespace", "eventsource", "outcome"],
        )
        invocations = CounterMetricFamily(
            "lambdalet_dispatcher_invocations",
            "Invocations of Functions by queue EventSources, re-invocations included",
            labels=["namespace", "eventsource"],
        )
        errors = CounterMetricFamily(
            "lambdalet_dispatcher_source_errors",
            "Failed calls to a broker",
            labels=["namespace", "eventsource"],
        )
        for (namespace, name), _, stats in rows:
            if stats is None:
                continue
            for outcome in OUTCOMES:
                messages.add_metric([namespace, name, outcome], getattr(stats, outcome))
            invocations.add_metric([namespace, name], stats.invocations)
            errors.add_metric([namespace, name], stats.source_errors)
        yield messages
        yield invocations
        yield errors
        if self._outcomes is not None:
            outcomes = CounterMetricFamily(
                "lambdalet_dispatcher_invocation_outcomes",
                "Invocations of Functions by every EventSource kind, by outcome",
                labels=["namespace", "function", "outcome"],
            )
            for ((namespace, function), outcome), count in sorted(self._outcomes().items()):
                outcomes.add_metric([namespace, function, outcome], count)
            yield outcomes
