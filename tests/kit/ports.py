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
