"""The house plan holds: which package may import which (``[tool.importlinter]`` in
pyproject.toml, drawn in docs/architecture.md), and no import cycle between any two modules.

The contracts run as import-linter runs them. That the rules bite is shown on a copy of the
package with one forbidden import added per case: each copy must break the contract that
names it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "operator" / "lambdalet"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(package_parent: Path) -> subprocess.CompletedProcess[str]:
    """import-linter with the repository's contracts over the ``lambdalet`` found in
    ``package_parent``."""
    return subprocess.run(
        [str(LINT_IMPORTS), str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=package_parent,
        # A wide terminal, so rich does not fold the lines the tests look for.
        env={"PYTHONPATH": str(package_parent), "PATH": "/usr/bin:/bin", "COLUMNS": "300"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_import_contracts_are_kept() -> None:
    result = lint_imports(PACKAGE.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 2 kept, 0 broken." in result.stdout


def test_every_module_of_the_package_has_its_layer() -> None:
    """A module the layers do not name could import anything: each top-level module and
    package of lambdalet stands in exactly one layer."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (layers,) = [
        c["layers"] for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers"
    ]
    named = [name.strip() for layer in layers for name in re.split(r"[|:]", layer)]
    top = sorted(
        f"lambdalet.{path.stem if path.is_file() else path.name}"
        for path in PACKAGE.iterdir()
        if (path.suffix == ".py" and path.name != "__init__.py")
        or (path.is_dir() and (path / "__init__.py").exists())
    )
    assert sorted(named) == top


def test_no_module_imports_itself_back_through_any_other() -> None:
    """Stricter than the contracts' sibling cycles: a cycle through a package's ``__init__``
    counts too."""
    graph = grimp.build_graph("lambdalet")
    cycles = [sorted(component) for component in strongly_connected(graph) if len(component) > 1]
    assert cycles == []


@pytest.mark.parametrize(
    ("imports", "cycles"),
    [
        ([("a", "b"), ("b", "c")], []),
        ([("a", "b"), ("b", "a")], [["a", "b"]]),
        ([("p", "p.child"), ("p.child", "p")], [["p", "p.child"]]),  # through an __init__
        ([("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")], [["a", "b", "c"]]),
        ([("a", "b"), ("b", "a"), ("c", "d"), ("d", "c")], [["a", "b"], ["c", "d"]]),
    ],
)
def test_strongly_connected_finds_every_cycle(
    imports: list[tuple[str, str]], cycles: list[list[str]]
) -> None:
    graph = grimp.ImportGraph()
    for importer, imported in imports:
        graph.add_import(importer=importer, imported=imported)
    found = sorted(sorted(c) for c in strongly_connected(graph) if len(c) > 1)
    assert found == cycles


def strongly_connected(graph: grimp.ImportGraph) -> list[set[str]]:
    """Tarjan's components of the module graph (iterative: the graph has ~100 modules)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[set[str]] = []
    for start in sorted(graph.modules):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.find_modules_directly_imported_by(start))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            advanced = False
            for target in edges:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append(
                        (target, iter(sorted(graph.find_modules_directly_imported_by(target))))
                    )
                    advanced = True
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                components.append(component)
    return components


# (module that gains the import, the import, what the broken contract says)
FORBIDDEN = [
    pytest.param(
        "activator/app.py",
        "from lambdalet.controller.functions import status",
        "lambdalet.activator.app -> lambdalet.controller.functions.status",
        id="activator-imports-controller",
    ),
    pytest.param(
        "autoscaler/decide.py",
        "from lambdalet.controller.functions import children",
        "lambdalet.autoscaler.decide -> lambdalet.controller.functions.children",
        id="autoscaler-imports-controller",
    ),
    pytest.param(
        "dispatcher/delivery/loop.py",
        "from lambdalet.controller.eventsources import membership",
        "lambdalet.dispatcher.delivery.loop -> lambdalet.controller.eventsources.membership",
        id="dispatcher-imports-controller",
    ),
    pytest.param(
        "dispatcher/delivery/invoker.py",
        "from lambdalet.activator import model",
        "lambdalet.dispatcher.delivery.invoker -> lambdalet.activator.model",
        id="dispatcher-imports-activator",
    ),
    pytest.param(
        "activator/stats.py",
        "from lambdalet.autoscaler import reports",
        "lambdalet.activator.stats -> lambdalet.autoscaler.reports",
        id="data-plane-imports-autoscaler",
    ),
    pytest.param(
        "contracts/keys.py",
        "from lambdalet.activator import model",
        "lambdalet.contracts.keys -> lambdalet.activator.model",
        id="contract-imports-a-component",
    ),
    pytest.param(
        "api/common.py",
        "from lambdalet import names",
        "lambdalet.api.common -> lambdalet.names",
        id="shared-leaves-import-each-other",
    ),
    pytest.param(
        "controller/functions/status.py",
        "from lambdalet import cli",
        "lambdalet.controller.functions.status -> lambdalet.cli",
        id="component-imports-the-cli",
    ),
]


@pytest.mark.parametrize(("module", "statement", "named"), FORBIDDEN)
def test_a_forbidden_import_breaks_the_layers(
    tmp_path: Path, module: str, statement: str, named: str
) -> None:
    copy = tmp_path / "lambdalet"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    with (copy / module).open("a") as source:
        source.write(f"\n{statement}  # noqa\n")
    result = lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout
    assert "Components above the shared contracts, the shared modules at the bottom BROKEN" in (
        result.stdout
    )
    assert named in result.stdout


def test_a_module_cycle_breaks_the_acyclic_contract(tmp_path: Path) -> None:
    copy = tmp_path / "lambdalet"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    # app imports model already; model importing app back closes a cycle.
    with (copy / "activator" / "model.py").open("a") as source:
        source.write("\nfrom lambdalet.activator import app  # noqa\n")
    result = lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout
    assert "No import cycles between the modules or packages of any package BROKEN" in (
        result.stdout
    )
    assert "No cycles are allowed in lambdalet.activator." in result.stdout
