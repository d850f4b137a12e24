"""The commands README.md tells a user to paste, read from README.md itself so that the tests
that run them cannot drift from it: every ```sh block (one command per line, ``\\`` continues a
line) and every ```console block (``$ `` lines are commands, the lines after one its output)."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from tests.kit.paths import REPO

README = REPO / "README.md"
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Command:
    text: str  # as a user pastes it (continuations joined, trailing comment kept)
    output: tuple[str, ...] = ()  # what README shows it printing (console blocks)
    line: int = 0  # in README.md
    block: int = 0  # which fenced block of README.md (counting from 0)

    @property
    def key(self) -> str:
        """The command without its trailing comment, spaces collapsed."""
        return " ".join(re.sub(r"\s+#\s.*$", "", self.text).split())


def commands(text: str) -> list[Command]:
    """The commands of README.md's ```sh and ```console blocks, in order."""
    found: list[Command] = []
    for block, fence in enumerate(_FENCE.finditer(text)):
        language, body = fence.group(1), fence.group(2)
        first = text.count("\n", 0, fence.start(2)) + 1
        lines = body.splitlines()
        if language == "sh":
            found += [replace(c, block=block) for c in _shell(lines, first)]
        elif language == "console":
            found += [replace(c, block=block) for c in _console(lines, first)]
    return found


def _shell(lines: list[str], first: int) -> list[Command]:
    found, pending, start = [], "", first
    for number, line in enumerate(lines, first):
        if not pending:
            start = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1].rstrip() + " "
            continue
        command = (pending + line.strip()).strip()
        pending = ""
        if command and not command.startswith("#"):
            found.append(Command(command, line=start))
    return found


def _console(lines: list[str], first: int) -> list[Command]:
    found: list[Command] = []
    for number, line in enumerate(lines, first):
        if line.startswith("$ "):
            found.append(Command(line[2:].strip(), line=number))
        elif found and line.strip():
            last = found[-1]
            found[-1] = replace(last, output=(*last.output, line))
    return found


def readme_commands() -> list[Command]:
    return commands(README.read_text())
