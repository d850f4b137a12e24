"""Free loopback ports for servers the tests start (and for addresses nobody listens on)."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the kernel's choice).

    Nothing holds it after the call: a launcher that loses a race for it tries again on another.
    Nobody listens on it either, so it also serves as the address of a server that is down.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def free_port_pair() -> int:
    """A port ``p`` such that ``p`` and ``p + 1`` on 127.0.0.1 were both free a moment ago, for a
    server that takes two neighbouring ports (etcd's client and peer ports, the API server's and
    the controller manager's in e2e/cluster/cluster.sh)."""
    for _ in range(100):
        first = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", first + 1))
            except OSError:
                continue
        return first
    raise RuntimeError("no two neighbouring free ports on 127.0.0.1")
