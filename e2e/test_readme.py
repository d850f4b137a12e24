"""README.md's commands, run as a user pastes them, in README's order, on the cluster `make demo`
left (the `demo` tier of e2e/run-tests.sh; not the `e2e` tier, whose own operator process
watches every namespace but helm-*, where a second, README-installed operator would fight it).

The commands come from README.md itself (``tests.kit.readme``), so a new block is run as soon
as it is written. A block that installs a variant of the release (``helm install … --set …``, the
namespaced RBAC) is an alternative to the plain install the rest of README builds on: such blocks
run last, after the function examples. What the test adds between commands is what a user does
anyway: it waits for a release to roll out after ``helm install``/``helm upgrade``, and for the
Functions to be Ready before a ``curl``; before a ``helm install`` it uninstalls the release an
earlier block (or `make demo`) installed, and before ``kubectl create namespace`` it removes the
namespace, so each block starts as on a fresh cluster. ``curl`` of a ``*.svc`` name is resolved
to the Service's address (the node's resolver does not know cluster names; in a pod they
resolve), and fails on an HTTP error. A console block's shown output is checked too: its header
lines exactly, the first word of every other line (a number stands for any number), and JSON
bodies field by field (``…`` stands for any value); a ``kubectl get`` is asked again for up to a
minute until it shows that (a status is written a moment after what it reports).

The few commands that cannot run here are in ``ELSEWHERE``, each with where it is exercised;
``tests/test_readme.py`` fails when README gains a command this test would neither run nor find
there, or loses one listed there."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time

import pytest

from tests.kit.paths import REPO
from tests.kit.readme import Command, readme_commands
from tests.kit.servers.kube import Cluster

pytestmark = pytest.mark.demo

RELEASE, SYSTEM = "lambdalet", "lambdalet-system"
ELSEWHERE = {
    "make demo": "the demo tier of e2e/run-tests.sh runs it as written, just before this test",
    "make test": "CI: .ci/run runs it",
    "operator/image/build.sh && runtime-images/build.sh": (
        "e2e/run-tests.sh builds both before the demo tier, and make demo runs both"
    ),
    "make cluster-up": "the e2e tier: cluster.sh up (this test runs inside that namespace)",
    "e2e/cluster/cluster.sh exec -- kubectl get pods -A": "make demo runs cluster.sh exec",
    "e2e/cluster/cluster.sh exec -- .venv/bin/pytest -m e2e": "the e2e tier, as written",
    "make cluster-down": "the demo and e2e tiers end with cluster.sh down",
    ".venv/bin/python benchmarks/bed.py": "a benchmark: figures, no verdict; brings up its own bed",
    ".venv/bin/python benchmarks/operator_scale.py": "a benchmark: 1,000 Functions, minutes",
    ".venv/bin/python runtime-images/bench_warm.py": "a benchmark: figures, no verdict",
    ".venv/bin/python benchmarks/activator.py": "a benchmark: figures, no verdict",
    "e2e/cluster/cluster.sh exec -- .venv/bin/python benchmarks/scale_from_zero.py": (
        "a benchmark: minutes of bursts on the node"
    ),
    ".venv/bin/python benchmarks/dispatcher.py": "a benchmark: figures, no verdict",
}
EVENT_SOURCES = REPO / "examples" / "event-sources"
CREATE_NAMESPACE = re.compile(r"^kubectl create namespace ([a-z0-9-]+)$")


def _run(cluster: Cluster, command: Command) -> str:
    address = cluster.kubectl(
        "get", "service", f"{RELEASE}-activator", "-n", SYSTEM, "-o", "jsonpath={.spec.clusterIP}",
        check=False,
    ).stdout  # fmt: skip
    prelude = (
        "set -euo pipefail\n"
        "curl() { command curl -sS --fail-with-body --max-time 120 "
        f'--resolve "{RELEASE}-activator.{SYSTEM}.svc:80:{address}" "$@"; }}\n'
    )
    env = cluster.env()
    if cluster.bin_dir is not None:
        env["PATH"] = f"{cluster.bin_dir}{os.pathsep}{env['PATH']}"
    done = subprocess.run(
        ["bash", "-c", prelude + command.text],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, (
        f"README.md:{command.line}: {command.text}\nexit {done.returncode}\n"
        f"{done.stdout}\n{done.stderr}"
    )
    return done.stdout


def _before(cluster: Cluster, command: Command) -> None:
    if command.key.startswith(f"helm install {RELEASE} "):
        cluster.helm("uninstall", RELEASE, "-n", SYSTEM, "--wait", "--ignore-not-found")
    elif match := CREATE_NAMESPACE.match(command.key):
        cluster.kubectl("delete", "namespace", match[1], "--ignore-not-found", timeout=180)
    elif command.key.startswith("curl "):
        namespace = re.search(r"/fn/([a-z0-9-]+)/", command.key)
        assert namespace, command.text
        cluster.kubectl(
            "wait", "fn", "--all", "-n", namespace[1], "--for=condition=Ready", "--timeout=90s",
            timeout=100,
        )  # fmt: skip


def _after(cluster: Cluster, command: Command) -> None:
    if command.key.startswith((f"helm install {RELEASE} ", f"helm upgrade {RELEASE} ")):
        deployments = cluster.get(
            "deployments", "-n", SYSTEM, "-l", f"app.kubernetes.io/instance={RELEASE}"
        )["items"]
        assert deployments, f"{command.text}: no Deployments"
        for deployment in deployments:
            cluster.kubectl(
                "rollout", "status", "-n", SYSTEM, f"deployment/{deployment['metadata']['name']}",
                "--timeout=180s", timeout=200,
            )  # fmt: skip


NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def _same_word(shown: list[str], line: str) -> bool:
    words = line.split()[:1]
    if shown[:1] == words:
        return True
    return bool(words) and all(NUMBER.fullmatch(w) for w in (shown[0], words[0]))


def _check_output(command: Command, printed: str) -> None:
    lines = printed.splitlines()
    for shown in command.output:
        words = shown.split()
        where = f"README.md:{command.line}: {command.text} printed:\n{printed}\nnot {shown!r}"
        if shown.startswith("{"):
            expected, actual = json.loads(shown), json.loads(printed)
            for key, value in expected.items():
                assert key in actual, where
                assert "…" in str(value) or actual[key] == value, where
        elif words[0].isupper():  # a table's header: the columns README names
            assert any(line.split() == words for line in lines), where
        else:
            assert any(_same_word(words, line) for line in lines), where


def _run_and_check(cluster: Cluster, command: Command) -> None:
    deadline = time.monotonic() + (60 if command.key.startswith("kubectl get ") else 0)
    while True:
        printed = _run(cluster, command)
        try:
            _check_output(command, printed)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        time.sleep(2)


def in_order(commands: list[Command]) -> list[Command]:
    """The commands to run: README's order, the blocks installing a variant of the release last."""
    runnable = [command for command in commands if command.key not in ELSEWHERE]
    variants = {
        c.block for c in runnable if c.key.startswith("helm install ") and " --set " in c.key
    }
    return [c for c in runnable if c.block not in variants] + [
        c for c in runnable if c.block in variants
    ]


def _state(cluster: Cluster) -> str:
    """What the cluster looks like, for a failure's message."""
    views = [
        ("get", "fn,evs,pods", "-A", "-o", "wide"),
        ("logs", "-n", SYSTEM, "-l", "app.kubernetes.io/component=operator", "--tail=30"),
        ("get", "events", "-A", "--sort-by=.lastTimestamp"),
    ]
    return "\n".join(
        (done := cluster.kubectl(*view, check=False)).stdout + done.stderr for view in views
    )


def test_readme_commands_work_as_written(node_cluster: Cluster) -> None:
    ran = []
    try:
        for command in in_order(readme_commands()):
            _before(node_cluster, command)
            _run_and_check(node_cluster, command)
            _after(node_cluster, command)
            ran.append(command.key)
    except Exception:
        print(_state(node_cluster))
        raise
    finally:
        for cleanup in (
            ("delete", "-f", str(EVENT_SOURCES / "redis-streams.yaml"), "--ignore-not-found"),
            ("delete", "-f", str(EVENT_SOURCES / "function.yaml"), "--ignore-not-found"),
            ("delete", "namespace", "demo", "team-a", "--ignore-not-found", "--wait=false"),
        ):
            node_cluster.kubectl(*cleanup, check=False)
    # Guards against a README this test can no longer read.
    assert any(key.startswith("helm install ") for key in ran), ran
    assert any(key.startswith("curl ") for key in ran), ran
