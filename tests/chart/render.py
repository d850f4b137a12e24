"""Rendering the Helm chart without a cluster: ``helm template`` and ``helm lint`` with the helm
binary e2e/cluster/build.sh pins (built once, cached), parsed into manifests tests can index."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.kit.paths import REPO

CHART = REPO / "charts" / "lambdalet"
BUILD = REPO / "e2e" / "cluster" / "build.sh"
RELEASE = "lam"
NAMESPACE = "lam-system"
# helm template checks the chart's kubeVersion against this, not against a cluster.
KUBE_VERSION = "1.33.0"


def helm_binary() -> Path:
    done = subprocess.run(
        [str(BUILD), "helm"], capture_output=True, text=True, timeout=900, check=True
    )
    return Path(done.stdout.strip()) / "helm"


@dataclass(frozen=True)
class Manifests:
    """The objects one ``helm template`` rendered."""

    objects: tuple[dict[str, Any], ...]

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        """The one object of ``kind`` and ``name`` (in ``namespace``, when given)."""
        found = [
            o
            for o in self.objects
            if o["kind"] == kind
            and o["metadata"]["name"] == name
            and namespace in (None, o["metadata"].get("namespace"))
        ]
        where = f" in {namespace}" if namespace else ""
        assert len(found) == 1, f"{kind} {name}{where}: rendered {len(found)} times"
        return found[0]

    def names(self, kind: str) -> set[str]:
        return {o["metadata"]["name"] for o in self.objects if o["kind"] == kind}

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.objects)


@dataclass(frozen=True)
class Helm:
    binary: Path

    def run(
        self, *args: str, values: Mapping[str, Any] | None = None, chart: Path = CHART
    ) -> subprocess.CompletedProcess[str]:
        # JSON is YAML: the values go in on stdin as one document.
        return subprocess.run(
            [str(self.binary), *args, str(chart), "-f", "-"],
            input=json.dumps(values or {}),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def template(
        self,
        values: Mapping[str, Any] | None = None,
        *,
        chart: Path = CHART,
        release: str = RELEASE,
        namespace: str = NAMESPACE,
    ) -> Manifests:
        done = self.run(
            "template", release, "-n", namespace, "--kube-version", KUBE_VERSION,
            values=values, chart=chart,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return Manifests(tuple(o for o in yaml.safe_load_all(done.stdout) if o))

    def notes(self, values: Mapping[str, Any] | None = None, *, tmp: Path) -> str:
        """NOTES.txt rendered: ``helm template`` leaves it out, so a copy of the chart carries
        it as a named template that one YAML document includes."""
        chart = tmp / "chart"
        shutil.copytree(CHART, chart)
        notes = (chart / "templates" / "NOTES.txt").read_text()
        (chart / "templates" / "_notes.tpl").write_text(
            '{{- define "notes" -}}\n' + notes + "{{- end }}\n"
        )
        (chart / "templates" / "notes.yaml").write_text('notes: {{ include "notes" . | toJson }}\n')
        rendered = self.template(values, chart=chart)
        return str(next(o for o in rendered if set(o) == {"notes"})["notes"])


def env_of(container: Mapping[str, Any]) -> dict[str, Any]:
    """A container's env as name → value (a plain string) or its ``valueFrom``."""
    return {e["name"]: e["value"] if "value" in e else e["valueFrom"] for e in container["env"]}


def rules_of(role: Mapping[str, Any]) -> set[tuple[str, str, str]]:
    """A Role's rules flattened to (apiGroup, resource, verb) triples."""
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
