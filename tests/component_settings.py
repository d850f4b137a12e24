"""Every environment variable a Lambdalet component reads, collected from the code itself so the
list cannot drift: the Python loaders are run against an environment that records each name they
ask for, and the programs that read their environment directly (the agent, in Go; the chart's
``helm test`` script; the runtimes) are searched for ``LAMBDALET_*`` names."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from lambdalet.activator.settings import ActivatorSettings
from lambdalet.dispatcher.settings import DispatcherSettings
from lambdalet.settings import Settings

REPO = Path(__file__).resolve().parent.parent
LOADERS: dict[str, Callable[[Mapping[str, str]], object]] = {
    "operator": Settings.from_env,
    "activator": ActivatorSettings.from_env,
    "dispatcher": DispatcherSettings.from_env,
}
# Programs that read os.environ (or their language's own) rather than through a loader above.
SOURCES = {
    "agent": ("runtime-images/agent", "*.go"),
    "helm test": ("charts/lambdalet/files", "*.py"),
    "python runtime": ("runtime-images/python", "*.py"),
    "node runtime": ("runtime-images/nodejs", "*.js"),
}
LITERAL = re.compile(r"""["'`](LAMBDALET_[A-Z0-9_]*[A-Z0-9])["'`]""")


class _Recording(Mapping[str, str]):
    """An empty environment that remembers every name it was asked for."""

    def __init__(self) -> None:
        self.asked: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.asked.add(name)
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def loader_settings() -> dict[str, set[str]]:
    """component → the names its settings loader reads (with every default)."""
    read = {}
    for component, load in LOADERS.items():
        env = _Recording()
        load(env)
        read[component] = env.asked
    return read


def source_settings() -> dict[str, set[str]]:
    """component → the LAMBDALET_* names its source files spell out (tests left out)."""
    read = {}
    for component, (directory, pattern) in SOURCES.items():
        names: set[str] = set()
        for path in sorted((REPO / directory).rglob(pattern)):
            if path.name.endswith("_test.go") or "node_modules" in path.parts:
                continue
            names |= set(LITERAL.findall(path.read_text()))
        read[component] = names
    return read


def all_settings() -> dict[str, set[str]]:
    return loader_settings() | source_settings()
