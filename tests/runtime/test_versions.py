"""The interpreter versions of the runtime images (runtime-images/versions.env, read through
tests/kit/runtimes.py): every runtime the API offers has one, and a handler's report of its
version is matched against it."""

from __future__ import annotations

import pytest

from lambdalet.api.function import Runtime
from tests.kit.runtimes import (
    expected_version,
    parse_versions,
    pinned_versions,
    version_matches,
)

PINS = {"NODE20_VERSION": "20.1.2", "NODE22_VERSION": "22.3.4", "CPYTHON312_VERSION": "3.12.5"}


def test_parse_versions_skips_comments_and_blank_lines() -> None:
    text = "# Node\nNODE22_VERSION=22.3.4\n\nNODE22_SHA256=ab=cd\n"
    assert parse_versions(text) == {"NODE22_VERSION": "22.3.4", "NODE22_SHA256": "ab=cd"}


@pytest.mark.parametrize(
    ("runtime", "expected"),
    [
        (Runtime.PYTHON_3_11, "3.11."),  # Debian's python3 in the base image
        (Runtime.PYTHON_3_12, "3.12.5"),
        (Runtime.NODEJS_20, "20.1.2"),
        (Runtime.NODEJS_22, "22.3.4"),
    ],
)
def test_expected_version(runtime: Runtime, expected: str) -> None:
    assert expected_version(runtime, PINS) == expected


def test_an_unpinned_runtime_has_no_expected_version() -> None:
    with pytest.raises(KeyError):
        expected_version(Runtime.NODEJS_22, {"NODE20_VERSION": "20.1.2"})


def test_provided_has_no_interpreter_of_lambdalets() -> None:
    with pytest.raises(ValueError, match="its own interpreter"):
        expected_version(Runtime.PROVIDED, PINS)


@pytest.mark.parametrize(
    "runtime", [runtime for runtime in Runtime if runtime is not Runtime.PROVIDED], ids=str
)
def test_every_runtime_of_the_api_has_its_interpreter(runtime: Runtime) -> None:
    number = runtime.removeprefix("python").removeprefix("nodejs")  # "3.12", "22"
    assert expected_version(runtime, pinned_versions()).startswith(number + ".")


def test_every_pinned_version_has_its_checksum() -> None:
    pins = pinned_versions()
    for name in (name for name in pins if name.endswith("_VERSION")):
        checksum = name.removesuffix("_VERSION") + ("_SHA256" if name.startswith("NODE") else "_H1")
        assert pins.get(checksum), f"{name} without {checksum}"


@pytest.mark.parametrize(
    ("reported", "expected", "matches"),
    [
        ("22.3.4", "22.3.4", True),
        ("22.3.40", "22.3.4", False),
        ("3.11.2", "3.11.", True),
        ("3.12.5", "3.11.", False),
        ("3.110.0", "3.11.", False),
    ],
)
def test_version_matches(reported: str, expected: str, matches: bool) -> None:
    assert version_matches(reported, expected) is matches
