"""The interpreter each runtime image carries: the version a handler on that runtime must report,
from the pins of runtime-images/versions.env (the images' build reads the same file), for
e2e/test_runtime_on_node.py (and tests/runtime/test_versions.py, which checks the pins)."""

from __future__ import annotations

from collections.abc import Mapping

from lambdalet.api.function import Runtime
from tests.kit.paths import REPO

VERSIONS_ENV = REPO / "runtime-images" / "versions.env"

# Runtimes whose interpreter is the base image's own (Debian bookworm's python3), not pinned: the
# version is only known up to its minor, hence the trailing dot.
BASE_INTERPRETERS = {Runtime.PYTHON_3_11: "3.11."}


def parse_versions(text: str) -> dict[str, str]:
    """The NAME=value lines of a versions.env file (comments and blank lines skipped)."""
    pairs = (line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return {name.strip(): value.strip() for name, value in pairs}


def pinned_versions() -> dict[str, str]:
    return parse_versions(VERSIONS_ENV.read_text())


def expected_version(runtime: Runtime, pins: Mapping[str, str]) -> str:
    """The version the runtime's interpreter reports (without Node's `v`): the pinned one, e.g.
    NODE22_VERSION for nodejs22 and CPYTHON312_VERSION for python3.12, or a prefix ending in a dot
    for a base image's interpreter. KeyError when a runtime has neither; ValueError for
    `provided`, which has no interpreter of Lambdalet's."""
    if runtime in BASE_INTERPRETERS:
        return BASE_INTERPRETERS[runtime]
    if runtime.startswith("nodejs"):
        return pins[f"NODE{runtime.removeprefix('nodejs')}_VERSION"]
    if runtime.startswith("python"):
        return pins[f"CPYTHON{runtime.removeprefix('python').replace('.', '')}_VERSION"]
    raise ValueError(f"runtime {runtime} brings its own interpreter")


def version_matches(reported: str, expected: str) -> bool:
    """Whether a reported version is the expected one, or starts with an expected prefix."""
    return reported.startswith(expected) if expected.endswith(".") else reported == expected
