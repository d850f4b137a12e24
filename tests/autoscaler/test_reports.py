"""parse_poke / parse_stats: the activators' bodies, checked field by field, bounded."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lambdalet.autoscaler.reports import (
    MAX_FUNCTIONS_PER_REPORT,
    FunctionLoad,
    ReportError,
    ReportTooLarge,
    StatsReport,
    parse_poke,
    parse_stats,
)


def line(name: str = "hello", **fields: Any) -> dict[str, Any]:
    return {"namespace": "team", "name": name, "inFlight": 1, **fields}


def test_poke_names_a_function() -> None:
    assert parse_poke({"namespace": "team", "name": "hello", "extra": 1}) == ("team", "hello")


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ([], "body must be a JSON object"),
        ({"name": "hello"}, "body.namespace must be a string"),
        ({"namespace": "team"}, "body.name must be a string"),
        ({"namespace": "", "name": "hello"}, "body.namespace must be a string of 1 to 253"),
        ({"namespace": "team", "name": 7}, "body.name must be a string"),
        ({"namespace": "team", "name": "x" * 254}, "body.name must be a string"),
    ],
    ids=["list", "no-namespace", "no-name", "empty-namespace", "number-name", "long-name"],
)
def test_malformed_poke(body: Any, says: str) -> None:
    with pytest.raises(ReportError, match=says.replace(".", r"\.")):
        parse_poke(body)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"activator": "a-1", "functions": []}, ()),
        (
            {"activator": "a-1", "functions": [line(inFlight=3.5, queueDepth=4)]},
            (FunctionLoad(("team", "hello"), 3.5, 4),),
        ),
        (
            {"activator": "a-1", "functions": [line(inFlight=0), line("other", inFlight=2)]},
            (FunctionLoad(("team", "hello"), 0.0), FunctionLoad(("team", "other"), 2.0)),
        ),
        (
            {"activator": "a-1", "functions": [line(queueDepth=None)], "future": {"x": 1}},
            (FunctionLoad(("team", "hello"), 1.0),),
        ),
        (
            {"activator": "a-1", "functions": [line(coldStartSeconds=1.234)]},
            (FunctionLoad(("team", "hello"), 1.0, cold_start_seconds=1.234),),
        ),
        (
            {"activator": "a-1", "functions": [line(coldStartSeconds=0)]},
            (FunctionLoad(("team", "hello"), 1.0, cold_start_seconds=0.0),),
        ),
    ],
    ids=[
        "empty",
        "with-queue-depth",
        "two-functions",
        "unknown-fields-ignored",
        "with-cold-start",
        "instant-cold-start",
    ],
)
def test_stats(body: Any, expected: tuple[FunctionLoad, ...]) -> None:
    assert parse_stats(body) == StatsReport("a-1", expected)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("text", "body must be a JSON object"),
        ({"functions": []}, "body.activator must be a string"),
        ({"activator": "a", "functions": {}}, "body.functions must be a list"),
        ({"activator": "a", "functions": [1]}, "body.functions[0] must be a JSON object"),
        ({"activator": "a", "functions": [line(inFlight=-1)]}, "inFlight must be a finite number"),
        ({"activator": "a", "functions": [line(inFlight="3")]}, "inFlight must be a finite number"),
        ({"activator": "a", "functions": [line(inFlight=True)]}, "inFlight must be a finite"),
        ({"activator": "a", "functions": [line(inFlight=None)]}, "inFlight must be a finite"),
        (
            {"activator": "a", "functions": [line(inFlight=float("nan"))]},
            "inFlight must be a finite",
        ),
        (
            {"activator": "a", "functions": [line(inFlight=float("inf"))]},
            "inFlight must be a finite",
        ),
        ({"activator": "a", "functions": [line(queueDepth=-1)]}, "queueDepth must be an integer"),
        ({"activator": "a", "functions": [line(queueDepth=1.5)]}, "queueDepth must be an integer"),
        (
            {"activator": "a", "functions": [line(queueDepth=False)]},
            "queueDepth must be an integer",
        ),
        ({"activator": "a", "functions": [line(coldStartSeconds=-1)]}, "coldStartSeconds must be"),
        ({"activator": "a", "functions": [line(coldStartSeconds="1")]}, "coldStartSeconds must be"),
        ({"activator": "a", "functions": [line(coldStartSeconds=True)]}, "coldStartSeconds must"),
        (
            {"activator": "a", "functions": [line(coldStartSeconds=float("nan"))]},
            "coldStartSeconds must be a number from 0 to 3600",
        ),
        ({"activator": "a", "functions": [line(coldStartSeconds=1e9)]}, "coldStartSeconds must"),
        ({"activator": "a", "functions": [line(), line()]}, "team/hello is already in this report"),
        ({"activator": "a", "functions": [{"name": "x", "inFlight": 1}]}, "namespace must be"),
    ],
    ids=[
        "not-an-object",
        "no-activator",
        "functions-not-a-list",
        "line-not-an-object",
        "negative-in-flight",
        "string-in-flight",
        "bool-in-flight",
        "missing-in-flight",
        "nan-in-flight",
        "infinite-in-flight",
        "negative-queue",
        "fractional-queue",
        "bool-queue",
        "negative-cold-start",
        "string-cold-start",
        "bool-cold-start",
        "nan-cold-start",
        "huge-cold-start",
        "duplicate-function",
        "line-without-namespace",
    ],
)
def test_malformed_stats(body: Any, says: str) -> None:
    with pytest.raises(ReportError) as caught:
        parse_stats(body)
    assert says in str(caught.value)
    assert not isinstance(caught.value, ReportTooLarge)


def test_nan_from_the_wire_is_refused() -> None:
    # json.loads accepts the NaN literal; the parser must not.
    body = json.loads('{"activator": "a", "functions": [{"namespace": "t", "name": "f", '
                      '"inFlight": NaN}]}')  # fmt: skip
    with pytest.raises(ReportError, match="finite"):
        parse_stats(body)


@pytest.mark.parametrize(
    ("count", "too_many"),
    [(MAX_FUNCTIONS_PER_REPORT, False), (MAX_FUNCTIONS_PER_REPORT + 1, True)],
    ids=["at-the-limit", "over-the-limit"],
)
def test_functions_per_report_are_bounded(count: int, too_many: bool) -> None:
    body = {"activator": "a", "functions": [line(f"fn{i}") for i in range(count)]}
    if too_many:
        with pytest.raises(ReportTooLarge, match=f"at most {MAX_FUNCTIONS_PER_REPORT}"):
            parse_stats(body)
    else:
        assert len(parse_stats(body).functions) == count
