"""Environment: the typed reads every settings loader makes, and the one SettingsError."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any

import pytest

from lambdalet.environment import Empty, Environment, SettingsError


class Color(StrEnum):
    RED = "Red"
    BLUE = "Blue"


Read = Callable[[Environment], Any]

READERS: dict[str, Read] = {
    "text": lambda env: env.text("X", "default"),
    "optional": lambda env: env.optional("X"),
    "url": lambda env: env.url("X", "http://default/"),
    "words": lambda env: env.words("X"),
    "number": lambda env: env.number("X", 1.5, 0.1, 10),
    "whole": lambda env: env.whole("X", 7, 1, 100),
    "port": lambda env: env.port("X", 8080),
    "seconds": lambda env: env.seconds("X", 300.0),
    "flag": lambda env: env.flag("X", True),
    "choice": lambda env: env.choice("X", Color.RED),
    "namespace": lambda env: env.namespace("X", "lambdalet-system"),
    "optional_namespace": lambda env: env.optional_namespace("X"),
}


@pytest.mark.parametrize(
    ("reader", "value", "expected"),
    [
        ("text", None, "default"),
        ("text", " as given ", " as given "),
        ("text", "", ""),
        ("optional", None, None),
        ("optional", "  ", None),
        ("optional", " redis://r:6379 ", "redis://r:6379"),
        ("url", None, "http://default"),
        ("url", "http://a.svc:8080/", "http://a.svc:8080"),
        ("words", None, ()),
        ("words", " team-a  team-* ", ("team-a", "team-*")),
        ("number", None, 1.5),
        ("number", "2.5", 2.5),
        ("number", "0.1", 0.1),
        ("number", "10", 10.0),
        ("whole", None, 7),
        ("whole", "42", 42),
        ("whole", "1e2", 100),
        ("whole", "3.0", 3),
        ("port", None, 8080),
        ("port", "0", 0),
        ("port", "65535", 65535),
        ("port", " 9090 ", 9090),
        ("seconds", None, 300.0),
        ("seconds", "12.5", 12.5),
        ("flag", None, True),
        ("flag", "false", False),
        ("flag", "FALSE", False),
        ("flag", " no ", False),
        ("flag", "0", False),
        ("flag", "True", True),
        ("flag", "yes", True),
        ("flag", "1", True),
        ("choice", None, Color.RED),
        ("choice", "Blue", Color.BLUE),
        ("namespace", None, "lambdalet-system"),
        ("namespace", " team-a ", "team-a"),
        ("optional_namespace", None, None),
        ("optional_namespace", "", None),
        ("optional_namespace", "ops", "ops"),
    ],
)
def test_reads(reader: str, value: str | None, expected: Any) -> None:
    env = {} if value is None else {"X": value}
    for empty in ("unset", "invalid"):
        assert READERS[reader](Environment(env, empty=empty)) == expected


@pytest.mark.parametrize(
    ("reader", "value", "message"),
    [
        ("number", "many", "X must be a number, not 'many'"),
        ("number", "0", "X must be between 0.1 and 10, not 0"),
        ("number", "10.5", "between 0.1 and 10"),
        ("number", "nan", "between 0.1 and 10"),
        ("whole", "seven", "X must be a number, not 'seven'"),
        ("whole", "0", "X must be a whole number between 1 and 100, not 0"),
        ("whole", "7.5", "whole number between 1 and 100"),
        ("whole", "inf", "whole number between 1 and 100"),
        ("port", "http", "X must be a number, not 'http'"),
        ("port", "-1", "between 0 and 65535"),
        ("port", "65536", "between 0 and 65535"),
        ("port", "80.5", "between 0 and 65535"),
        ("seconds", "five", "X must be a number, not 'five'"),
        ("seconds", "0", "X must be a positive, finite number, not '0'"),
        ("seconds", "-30", "positive, finite"),
        ("seconds", "nan", "positive, finite"),
        ("seconds", "inf", "positive, finite"),
        ("flag", "maybe", "X must be true or false, not 'maybe'"),
        ("choice", "red", "X must be one of Red, Blue, not 'red'"),
        ("namespace", "Team_A", "X must be a namespace name"),
        ("namespace", "a" * 64, "at most 63"),
        ("optional_namespace", "Ops", "X must be a namespace name"),
    ],
)
def test_a_value_it_cannot_use_names_the_variable(reader: str, value: str, message: str) -> None:
    for empty in ("unset", "invalid"):
        with pytest.raises(SettingsError) as raised:
            READERS[reader](Environment({"X": value}, empty=empty))
        assert message in str(raised.value)


TYPED = ["number", "whole", "port", "seconds", "flag", "choice", "namespace"]
DEFAULTS = {
    "number": 1.5,
    "whole": 7,
    "port": 8080,
    "seconds": 300.0,
    "flag": True,
    "choice": Color.RED,
    "namespace": "lambdalet-system",
}


@pytest.mark.parametrize("reader", TYPED)
def test_an_empty_typed_value_is_the_default_where_empty_means_unset(reader: str) -> None:
    assert READERS[reader](Environment({"X": ""}, empty="unset")) == DEFAULTS[reader]


@pytest.mark.parametrize("reader", TYPED)
def test_an_empty_typed_value_is_an_error_where_empty_is_invalid(reader: str) -> None:
    with pytest.raises(SettingsError, match=r"^X "):
        READERS[reader](Environment({"X": ""}, empty="invalid"))


@pytest.mark.parametrize("reader", sorted(READERS))
@pytest.mark.parametrize("empty", ["unset", "invalid"])
def test_a_service_link_value_is_refused_with_the_reason(reader: str, empty: Empty) -> None:
    link = "tcp://10.96.35.181:80"
    with pytest.raises(SettingsError) as raised:
        READERS[reader](Environment({"X": link}, empty=empty))
    assert str(raised.value).startswith(f"X is {link!r}: Kubernetes injected it")
    assert "enableServiceLinks: false" in str(raised.value)


def test_the_error_is_a_value_error() -> None:
    assert issubclass(SettingsError, ValueError)
