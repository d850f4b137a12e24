"""The wire protocol activators speak to the autoscaler: report and poke bodies, parsed once.

Where it sits: ``lambdalet.autoscaler.api`` reads a request body, hands the decoded JSON here, and
passes the typed result to the loop (``lambdalet.autoscaler.loop``); nothing past this module sees
a dict. Every field is checked and every list is bounded, so a confused or hostile client costs a
400 or a 413 and never memory.

    POST /v1/poke   {"namespace": "team", "name": "hello"}
    POST /v1/stats  {"activator": "activator-7d9f-x2", "functions": [
                        {"namespace": "team", "name": "hello", "inFlight": 3.5, "queueDepth": 0,
                         "coldStartSeconds": 1.234}]}

``inFlight`` is the reporter's time-averaged in-flight invocations of that Function over the last
second (held cold-start requests included); ``queueDepth`` (optional) counts events waiting in the
reporter's queue; ``coldStartSeconds`` (optional) is how long a cold start that ended in that
second took, from the first held request to an instance taking it (at most
``MAX_COLD_START_SECONDS``). The event dispatcher may report queue depth the same way, under its
own name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from lambdalet.contracts.keys import Key

# A report names at most this many Functions; at some 90 bytes an entry they fit the body limit.
MAX_FUNCTIONS_PER_REPORT = 4096
MAX_BODY_BYTES = 512 * 1024
# Kubernetes object names are at most 253 characters (namespaces 63, Functions 60).
MAX_NAME_LENGTH = 253
# Longer than any hold a reporter keeps a request for (the activator's default is 60 s).
MAX_COLD_START_SECONDS = 3600.0


class ReportError(ValueError):
    """A body that does not follow the protocol; the message says what is wrong (HTTP 400)."""


class ReportTooLarge(ReportError):
    """A body within the byte limit that names more Functions than one report may (HTTP 413)."""


@dataclass(frozen=True)
class FunctionLoad:
    """One Function's line in a report."""

    key: Key
    in_flight: float
    queue_depth: int | None = None
    cold_start_seconds: float | None = None


@dataclass(frozen=True)
class StatsReport:
    """One reporter's (an activator pod's) load of the last second, for each busy Function."""

    reporter: str
    functions: tuple[FunctionLoad, ...]


def parse_poke(body: Any) -> Key:
    """The Function a cold-start poke names."""
    return _key(_object(body, "body"), "body")


def parse_stats(body: Any) -> StatsReport:
    """The report in a stats body; duplicate Functions are an error, not a sum."""
    report = _object(body, "body")
    reporter = _name(report, "activator", "body")
    entries = report.get("functions")
    if not isinstance(entries, list):
        raise ReportError("body.functions must be a list")
    if len(entries) > MAX_FUNCTIONS_PER_REPORT:
        raise ReportTooLarge(
            f"body.functions names {len(entries)} Functions; at most "
            f"{MAX_FUNCTIONS_PER_REPORT} per report"
        )
    loads: dict[Key, FunctionLoad] = {}
    for index, entry in enumerate(entries):
        where = f"body.functions[{index}]"
        load = _load(_object(entry, where), where)
        if load.key in loads:
            raise ReportError(f"{where}: {'/'.join(load.key)} is already in this report")
        loads[load.key] = load
    return StatsReport(reporter=reporter, functions=tuple(loads.values()))


def _load(entry: dict[str, Any], where: str) -> FunctionLoad:
    in_flight = entry.get("inFlight")
    # bool is an int to Python, and json.loads accepts NaN and Infinity: rule both out.
    if (
        isinstance(in_flight, bool)
        or not isinstance(in_flight, int | float)
        or not math.isfinite(in_flight)
        or in_flight < 0
    ):
        raise ReportError(f"{where}.inFlight must be a finite number >= 0, not {in_flight!r:.40}")
    depth = entry.get("queueDepth")
    if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 0):
        raise ReportError(f"{where}.queueDepth must be an integer >= 0, not {depth!r:.40}")
    cold_start = entry.get("coldStartSeconds")
    if cold_start is not None and (
        isinstance(cold_start, bool)
        or not isinstance(cold_start, int | float)
        or not 0 <= cold_start <= MAX_COLD_START_SECONDS  # NaN fails this too
    ):
        raise ReportError(
            f"{where}.coldStartSeconds must be a number from 0 to {MAX_COLD_START_SECONDS:g}, "
            f"not {cold_start!r:.40}"
        )
    return FunctionLoad(
        key=_key(entry, where),
        in_flight=float(in_flight),
        queue_depth=depth,
        cold_start_seconds=None if cold_start is None else float(cold_start),
    )


def _key(entry: dict[str, Any], where: str) -> Key:
    return (_name(entry, "namespace", where), _name(entry, "name", where))


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ReportError(f"{where} must be a JSON object")
    return value


def _name(entry: dict[str, Any], field: str, where: str) -> str:
    value = entry.get(field)
    if not isinstance(value, str) or not 0 < len(value) <= MAX_NAME_LENGTH:
        raise ReportError(
            f"{where}.{field} must be a string of 1 to {MAX_NAME_LENGTH} characters, "
            f"not {value!r:.40}"
        )
    return value
