"""What is particular to the single-node cluster that e2e/cluster/cluster.sh starts (the handle
on a running bed, ``Cluster``, and the script's driver, ``ClusterScript``, are the test kit's:
``tests.kit.servers.kube``).

Tests reach pod and service addresses only from the node's network namespace (the e2e tier runs
wholly inside it, see ``in_node_netns``), and the node pulls no images: ``build_image`` builds one
and imports it into the node's containerd.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.kit.paths import REPO

IMAGES = REPO / "e2e" / "images" / "build.sh"
DEFAULT_NETNS = "lambdalet-node"


def in_node_netns(netns: str = DEFAULT_NETNS) -> bool:
    """True when this process runs inside the node's network namespace."""
    try:
        return os.stat("/proc/self/ns/net").st_ino == os.stat(f"/run/netns/{netns}").st_ino
    except FileNotFoundError:
        return False


def build_image(context: Path, containerfile: Path, tag: str, *build_args: str) -> None:
    """Build an image with buildah and import it into the node's containerd."""
    done = subprocess.run(
        [str(IMAGES), "file", str(context), str(containerfile), tag, *build_args],
        text=True,
        capture_output=True,
        timeout=900,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"image build of {tag} failed:\n{done.stderr[-4000:]}")
