"""Which Function a request is for: the Invoke API's FunctionName forms, path and host routes."""

from __future__ import annotations

import re

import pytest

from lambdalet.activator.events import Route
from lambdalet.activator.routes import InvokeRoute, RouteError, function_name, route


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("hello", ("default", "hello")),
        ("team:hello", ("team", "hello")),
        ("hello:$LATEST", ("default", "hello")),
        ("team:hello:$LATEST", ("team", "hello")),
        (
            "hello:prod",
            ("hello", "prod"),
        ),  # namespace:name; versions other than $LATEST do not exist
        ("team%3Ahello", ("team", "hello")),  # SDKs percent-encode the colon
        ("hello%3A%24LATEST", ("default", "hello")),
        ("arn:aws:lambda:us-east-1:000000000000:function:hello", ("default", "hello")),
        ("arn:aws:lambda:eu-west-1:123:function:hello:$LATEST", ("default", "hello")),
    ],
)
def test_function_name_forms(name: str, key: tuple[str, str]) -> None:
    assert function_name(name, "default") == key


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("a:b:c", "namespace:name"),
        ("Hello", "no such function"),
        ("arn:aws:sqs:us-east-1:000000000000:queue", "not a Lambda function ARN"),
        ("arn:aws:lambda:us-east-1:000000000000:function:hello:7", "only the $LATEST"),
        ("", "no such function"),
    ],
)
def test_function_names_that_name_nothing(name: str, reason: str) -> None:
    with pytest.raises(RouteError, match=re.escape(reason)):
        function_name(name, "default")


@pytest.mark.parametrize(
    ("path", "host", "domain", "expected"),
    [
        (
            "/2015-03-31/functions/team:hello/invocations",
            None,
            None,
            InvokeRoute(("team", "hello")),
        ),
        ("/fn/team/hello", "x:8080", None, Route(("team", "hello"), "/", "x")),
        ("/fn/team/hello/", None, None, Route(("team", "hello"), "/", "localhost")),
        (
            "/fn/team/hello/items/7",
            "api.example.com",
            None,
            Route(("team", "hello"), "/items/7", "api.example.com"),
        ),
        ("/fn/team", None, None, None),
        ("/fn/Team/hello", None, None, None),
        ("/elsewhere", "hello.team.fn.example.com", None, None),  # no domain configured
        (
            "/items",
            "hello.team.fn.example.com:8080",
            "fn.example.com",
            Route(("team", "hello"), "/items", "hello.team.fn.example.com"),
        ),
        ("/items", "team.fn.example.com", "fn.example.com", None),  # one label only
        ("/items", "hello.team.example.org", "fn.example.com", None),
        ("/items", "[::1]:8080", "fn.example.com", None),
    ],
)
def test_routes(
    path: str, host: str | None, domain: str | None, expected: InvokeRoute | Route | None
) -> None:
    assert route(path, host, domain=domain, default_namespace="default") == expected
