"""Kubernetes API servers for the tests: the beds e2e/cluster/cluster.sh starts, and a handle on
a running one.

``ClusterScript`` drives cluster.sh, one profile a bed: ``controlplane`` (etcd, kube-apiserver and
kube-controller-manager on loopback, for the control-plane tier; its fixtures are in
``tests.kit.servers.controlplane``) or ``node`` (the real single-node cluster of the e2e tier and
the benchmarks; its fixtures are in ``e2e.harness.fixtures``). ``Cluster`` names a running bed by
its kubeconfig and gives tests ``kubectl`` and ``helm``; ``audit_writes`` reads what a user wrote
from the bed's audit log. ``brought_up`` and ``fresh_namespace`` are the fixtures' shared
bodies: a bed for a session, a namespace for a test.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from tests.kit.paths import REPO
from tests.kit.wait import wait_for

SCRIPT = REPO / "e2e" / "cluster" / "cluster.sh"


@dataclass(frozen=True)
class ClusterScript:
    """One profile of cluster.sh: ``node`` (the full single-node cluster) or ``controlplane``."""

    profile: str = "node"
    extra_env: Mapping[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        return {**os.environ, **self.extra_env, "LAMBDALET_CLUSTER_PROFILE": self.profile}

    def run(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SCRIPT), *args],
            env=self.env(),
            text=True,
            capture_output=True,
            timeout=timeout,
            check=False,
        )

    def up(self) -> Cluster:
        done = self.run("up")
        if done.returncode != 0:
            raise RuntimeError(f"cluster.sh up ({self.profile}) failed:\n{done.stderr[-4000:]}")
        return self.current()

    def down(self) -> None:
        done = self.run("down", timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"cluster.sh down ({self.profile}) failed:\n{done.stderr[-4000:]}")

    def current(self) -> Cluster:
        """The running cluster of this profile, from the env file cluster.sh writes."""
        done = self.run("env", timeout=30)
        exports: dict[str, str] = {}
        for line in done.stdout.splitlines():
            if line.startswith("export ") and "=" in line:
                key, _, value = line.removeprefix("export ").partition("=")
                exports[key] = value
        if "KUBECONFIG" not in exports:
            raise RuntimeError(f"no {self.profile} cluster is up")
        bin_dir = exports["PATH"].split(":", 1)[0]
        operator = exports.get("LAMBDALET_OPERATOR_KUBECONFIG")
        audit = exports.get("LAMBDALET_AUDIT_LOG")
        return Cluster(
            kubeconfig=Path(exports["KUBECONFIG"]),
            bin_dir=Path(bin_dir),
            operator_kubeconfig=Path(operator) if operator else None,
            audit_log=Path(audit) if audit else None,
        )


@dataclass(frozen=True)
class Cluster:
    """A running cluster: its kubeconfig and the directory of matching client binaries."""

    kubeconfig: Path
    bin_dir: Path | None = None
    # An identity of its own for an operator run by the tests, and the API server's audit log
    # of writes (both only on beds cluster.sh started).
    operator_kubeconfig: Path | None = None
    audit_log: Path | None = None

    def _tool(self, name: str) -> str:
        if self.bin_dir is not None and (self.bin_dir / name).exists():
            return str(self.bin_dir / name)
        return name

    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def _run(
        self, tool: str, args: Sequence[str], input: str | None, check: bool, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [self._tool(tool), *args],
            env=self.env(),
            input=input,
            text=True,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise ToolFailed(done)
        return done

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        return self._run("kubectl", args, input, check, timeout)

    def get(self, *args: str) -> Any:
        """``kubectl get … -o json``, parsed."""
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def wait_established(self, *crds: str, timeout: float = 30) -> None:
        """Wait until each CRD is Established. (``kubectl wait --for=condition=Established``
        fails at once, instead of waiting, on a CRD whose status has no conditions yet.)"""

        for crd in crds:
            wait_for(partial(self._established, crd), timeout, what=f"CRD {crd} Established")

    def _established(self, crd: str) -> bool:
        conditions = self.get("crd", crd).get("status", {}).get("conditions") or []
        return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)

    def install_crds(self) -> None:
        """Lambdalet's CRDs (crds/), applied server-side and waited for until Established."""
        self.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
        self.wait_established("functions.lambdalet.dev", "eventsources.lambdalet.dev")

    def apply(self, manifest: str | Sequence[Mapping[str, Any]], *args: str) -> str:
        text = manifest if isinstance(manifest, str) else _yaml_stream(manifest)
        return self.kubectl("apply", "-f", "-", *args, input=text).stdout

    def helm(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return self._run("helm", args, None, True, timeout)


class ToolFailed(subprocess.CalledProcessError):
    """kubectl or helm failed; unlike CalledProcessError, its message carries what they said."""

    def __init__(self, done: subprocess.CompletedProcess[str]) -> None:
        super().__init__(done.returncode, done.args, output=done.stdout, stderr=done.stderr)

    def __str__(self) -> str:
        return f"{super().__str__()}\n{(self.stderr or '').strip()[-2000:]}"


def audit_writes(audit_log: Path, user: str, *, since_line: int = 0) -> list[dict[str, Any]]:
    """The write requests ``user`` sent, from the API server's audit log (one JSON per line)."""
    events = []
    with audit_log.open() as lines:
        for number, line in enumerate(lines):
            if number < since_line or not line.strip():
                continue
            event = json.loads(line)
            if event.get("user", {}).get("username") == user:
                events.append(event)
    return events


def audit_length(audit_log: Path) -> int:
    with audit_log.open() as lines:
        return sum(1 for _ in lines)


def _yaml_stream(objects: Sequence[Mapping[str, Any]]) -> str:
    # kubectl reads JSON documents in a YAML stream, so no YAML dumper is needed here.
    return "\n---\n".join(json.dumps(o) for o in objects)


def brought_up(script: ClusterScript) -> Iterator[Cluster]:
    """Bring a bed up for the session and down afterwards (unless LAMBDALET_KEEP_CLUSTER)."""
    cluster = script.up()
    try:
        yield cluster
    finally:
        if not os.environ.get("LAMBDALET_KEEP_CLUSTER"):
            script.down()


def namespace_for(test_name: str) -> str:
    """A namespace name made of a test's name and a random suffix."""
    base = re.sub(r"[^a-z0-9-]+", "-", test_name.lower()).strip("-")[:40].strip("-")
    return f"{base}-{uuid.uuid4().hex[:5]}"


def fresh_namespace(cluster: Cluster, name: str) -> Iterator[str]:
    """Namespace ``name``, created for a test and deleted (without waiting) after it."""
    cluster.kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
