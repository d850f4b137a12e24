"""One typed view of each watched Function and EventSource, parsed once at the edge.

A component's watch puts every body it receives into its ``Views`` (``put``); the body is checked
against the models there (``lambdalet.contracts.problems``) and every consumer in the process
reads the same ``View``: the typed object, or the ``Problem`` that says why it cannot be read,
and the body as stored. In the operator the reconcilers, the autoscaler and the cold-start writer
share one; the activator's and the dispatcher's watches keep one each.

Most events of a watched object are status writes (the operator's and the dispatcher's own), so a
body whose uid, labels, annotations and spec equal those of the body before keeps the model parsed
then: a model's ``status`` may be older than its body's, and a reader of the status reads
``body``. E.g. a Function edited once is parsed once; the status writes that follow hand over new
bodies but the same model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from lambdalet.api.eventsource import EventSource
from lambdalet.api.function import Function
from lambdalet.contracts.keys import Key
from lambdalet.contracts.problems import Problem, parse_eventsource, parse_function

M = TypeVar("M", Function, EventSource)
Body = Mapping[str, Any]


@dataclass(frozen=True)
class View(Generic[M]):
    """A watched object: the body as last received, and what it parses to."""

    body: Body
    parsed: M | Problem

    @property
    def model(self) -> M | None:
        """The typed object; None when the body cannot be read (see ``problem``)."""
        return None if isinstance(self.parsed, Problem) else self.parsed

    @property
    def problem(self) -> Problem | None:
        return self.parsed if isinstance(self.parsed, Problem) else None


def key_of(body: Body) -> Key:
    meta = body.get("metadata") or {}
    return (str(meta.get("namespace") or "default"), str(meta.get("name") or ""))


def _version(body: Body) -> tuple[object, ...]:
    """What a parse depends on beyond the status: a body with an equal version parses the same
    (compared by value, the spec too: a comparison of dicts is far cheaper than a parse)."""
    meta = body.get("metadata") or {}
    return (
        meta.get("uid"),
        meta.get("labels"),
        meta.get("annotations"),
        body.get("spec"),
    )


class Views(Mapping[Key, View[M]]):
    """The latest view of every watched object of one kind, by key."""

    def __init__(self, parse: Callable[[Body], M | Problem]) -> None:
        self._parse: Callable[[Body], M | Problem] = parse
        self._views: dict[Key, tuple[tuple[object, ...], View[M]]] = {}

    def put(self, body: Body) -> View[M]:
        """A body as listed or watched (added or modified); parsed unless only its status moved."""
        key = key_of(body)
        version = _version(body)
        known = self._views.get(key)
        parsed = known[1].parsed if known is not None and known[0] == version else self._parse(body)
        view = View(body, parsed)
        self._views[key] = (version, view)
        return view

    def remove(self, key: Key) -> None:
        self._views.pop(key, None)

    def sync(self, bodies: Iterable[Body], namespace: str | None = None) -> set[Key]:
        """A complete listing of ``namespace`` (None: every namespace): the objects of that
        namespace not in it are gone. Returns the keys removed."""
        listed = {key_of(body): body for body in bodies}
        gone = {key for key in self._views if namespace in (None, key[0]) and key not in listed}
        for key in gone:
            del self._views[key]
        for body in listed.values():
            self.put(body)
        return gone

    def __getitem__(self, key: Key) -> View[M]:
        return self._views[key][1]

    def __iter__(self) -> Iterator[Key]:
        return iter(self._views)

    def __len__(self) -> int:
        return len(self._views)


def function_views() -> Views[Function]:
    return Views(parse_function)


def eventsource_views() -> Views[EventSource]:
    return Views(parse_eventsource)
