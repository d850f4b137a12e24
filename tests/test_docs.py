"""The documentation points only at what exists: no paths outside the repository, and every file
or directory that docs/architecture.md names is there (a renamed module fails here)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "operator" / "lambdalet"
ARCHITECTURE = REPO / "docs" / "architecture.md"
# `controller/reconcile.py`, `runtime-images/agent/`, `settings.py`: code spans that are paths.
PATH_SPAN = re.compile(r"`([a-z0-9_\-/]+(?:\.py|\.md|/))`")


def documents() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


@pytest.mark.parametrize("document", documents(), ids=lambda path: path.name)
def test_no_path_leaves_the_repository(document: Path) -> None:
    outside = [line for line in document.read_text().splitlines() if "../" in line]
    assert outside == []


def named_path(span: str) -> Path | None:
    """Where a path the map names lives: the repository root, or the Python package."""
    for base in (REPO, PACKAGE):
        if (base / span).exists():
            return base / span
    return None


def test_every_path_the_architecture_map_names_exists() -> None:
    spans = set(PATH_SPAN.findall(ARCHITECTURE.read_text()))
    assert len(spans) > 40  # the map names the modules it describes
    assert sorted(span for span in spans if named_path(span) is None) == []


def test_the_architecture_map_names_every_package() -> None:
    spans = PATH_SPAN.findall(ARCHITECTURE.read_text())
    packages = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())
    named = {span.removeprefix("operator/lambdalet/").split("/")[0] for span in spans}
    assert [p for p in packages if p not in named] == []
