"""LAMBDALET_NAMESPACES patterns: the activator must serve exactly what kopf serves the operator."""

from __future__ import annotations

import pytest
from kopf._cogs.structs.references import match_namespace  # kopf's reading, as the oracle

from lambdalet.namespaces import matches, served, specific

NAMESPACES = (
    "myapp-test", "myapp-live", "myapp-pr-123", "myapp-pr-456", "otherapp-pr-123", "team-a",
    "team-test", "kube-system", "default", "ab", "abc", "abcd", "abce",
)  # fmt: skip
PATTERNS = (
    "myapp-*, !*-pr-*, *pr-123",
    "!*-pr-*, *pr-123",
    "team-*,!team-test",
    "!kube-*",
    "*",
    "default",
    "!*",
    "a*,!ab*,abc*,!abcd*",
)


@pytest.mark.parametrize(
    ("namespace", "pattern", "expected"),
    [
        ("myapp-test", "myapp-*, !*-pr-*, *pr-123", True),
        ("myapp-pr-123", "myapp-*, !*-pr-*, *pr-123", True),  # re-included
        ("myapp-pr-456", "myapp-*, !*-pr-*, *pr-123", False),
        ("otherapp-pr-123", "myapp-*, !*-pr-*, *pr-123", False),  # never initially matched
        ("otherapp-pr-123", "!*-pr-*, *pr-123", True),  # implied leading *
        ("team-a", "team-*,!team-test", True),
        ("team-test", "team-*,!team-test", False),
        ("kube-system", "!kube-*", False),
        ("default", "!kube-*", True),
        ("default", " , ", False),
    ],
)
def test_pattern(namespace: str, pattern: str, expected: bool) -> None:
    assert matches(namespace, pattern) is expected


@pytest.mark.parametrize("pattern", PATTERNS)
def test_agrees_with_kopf(pattern: str) -> None:
    for namespace in NAMESPACES:
        assert matches(namespace, pattern) == match_namespace(namespace, pattern), namespace


@pytest.mark.parametrize(
    ("namespace", "patterns", "expected"),
    [
        ("anything", (), True),
        ("team-a", ("team-*", "ops"), True),
        ("ops", ("team-*", "ops"), True),
        ("dev", ("team-*", "ops"), False),
        ("helm-system-1", ("!helm-*",), False),
    ],
)
def test_served_by_any_pattern(namespace: str, patterns: tuple[str, ...], expected: bool) -> None:
    assert served(namespace, patterns) is expected


@pytest.mark.parametrize(
    ("patterns", "expected"),
    [
        ((), None),  # every namespace
        (("team-a",), ("team-a",)),
        (("team-a", "team-b", "team-a"), ("team-a", "team-b")),
        (("team-*",), None),
        (("team-a", "!kube-*"), None),
        (("team-a,team-b",), None),
        (("team-?",), None),
    ],
)
def test_specific_names_as_kopf_reads_them(
    patterns: tuple[str, ...], expected: tuple[str, ...] | None
) -> None:
    assert specific(patterns) == expected
