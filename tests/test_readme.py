"""README.md's commands are all accounted for: each is run on a cluster by e2e/test_readme.py
(the demo tier) unless ``ELSEWHERE`` says where else it is exercised, and every entry there is
still in README.md. Pure: reads README.md, runs nothing."""

from __future__ import annotations

import pytest

from e2e.test_readme import ELSEWHERE
from tests.kit.readme import Command, commands, readme_commands

# Commands that cannot run inside the demo test (they start or end clusters, or run the tiers).
NOT_INSIDE_A_TEST = ("make ", "e2e/cluster/cluster.sh ", "e2e/run-tests.sh", ".ci/run")


def test_every_listed_command_is_still_in_the_readme() -> None:
    keys = {command.key for command in readme_commands()}
    assert set(ELSEWHERE) - keys == set()


@pytest.mark.parametrize("command", readme_commands(), ids=lambda c: f"line-{c.line}")
def test_each_command_is_run_or_listed_with_where_it_runs(command: Command) -> None:
    if command.key in ELSEWHERE:
        assert ELSEWHERE[command.key]
        return
    assert not command.key.startswith(NOT_INSIDE_A_TEST), (
        f"README.md:{command.line}: {command.text!r} cannot run inside e2e/test_readme.py; "
        "add it to ELSEWHERE there, with where it is exercised"
    )


def test_the_readme_install_and_invocation_are_among_the_commands_run() -> None:
    run = [c.key for c in readme_commands() if c.key not in ELSEWHERE]
    assert "helm install lambdalet charts/lambdalet -n lambdalet-system --create-namespace" in run
    assert "helm test lambdalet -n lambdalet-system --logs" in run
    assert "kubectl apply -n demo -f examples/hello-python/function.yaml" in run
    activator = "curl http://lambdalet-activator.lambdalet-system.svc/"
    assert any(key.startswith(activator) for key in run)


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        (
            "```sh\na \\\n  b  # note\n# only a comment\nc\n```\n",
            [("a b  # note", "a b", ()), ("c", "c", ())],
        ),
        (
            "```console\n$ x -y\nOUT 1\nout 2\n\n$ z\n```\n",
            [("x -y", "x -y", ("OUT 1", "out 2")), ("z", "z", ())],
        ),
        ("```yaml\nkey: value\n```\n```python\nprint()\n```\n", []),
    ],
)
def test_blocks_are_read_as_a_user_pastes_them(
    markdown: str, expected: list[tuple[str, str, tuple[str, ...]]]
) -> None:
    found = [(c.text, c.key, c.output) for c in commands(markdown)]
    assert found == expected
