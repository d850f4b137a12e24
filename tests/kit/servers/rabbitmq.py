"""A real rabbitmq-server (the Debian package, 3.10) for the RabbitMQ source's tests.

``running_rabbitmq`` boots one node in a temporary directory of its own: its own Mnesia and log
directories, config file, enabled-plugins file (none), Erlang cookie (``HOME``), a private epmd
(our child) on a free loopback port, AMQP and distribution listeners on 127.0.0.1 only. Run as
root, the node drops to the ``rabbitmq`` system user. ``RabbitBroker.restart`` stops and boots
the same node again (same data, same ports) for the restart test; ``ctl`` runs ``rabbitmqctl``.

Where it sits: ``tests/dispatcher/test_rabbitmq.py`` wraps it in a session fixture (one boot per
test run: a boot takes several seconds).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import pamqp.body
import pamqp.exceptions
import pamqp.header
from pamqp import commands, frame

from tests.kit.ports import free_port
from tests.kit.servers.process import SlowServer, ready_within, stop_process

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
BOOT_TIMEOUT = 60.0  # seconds until the AMQP listener answers
STOP_TIMEOUT = 30.0  # for rabbitmqctl stop, then for the process to exit after a kill
CTL_TIMEOUT = 30.0
SYSTEM_USER = "rabbitmq"
AMQP_HEADER = b"AMQP\x00\x00\x09\x01"
FrameT = TypeVar("FrameT")
ERL_ARGS = (
    "-kernel inet_dist_use_interface {127,0,0,1} "
    "+sbwt none +sbwtdcpu none +sbwtdio none"  # no busy waiting: the machine has two cores
)


class RabbitBroker(SlowServer):
    """One rabbitmq-server node this test run owns (a process, so not a frozen value)."""

    name = "rabbitmq-server"

    def __init__(self, workdir: Path, user: str | None) -> None:
        super().__init__(workdir)
        self.user = user
        self.port = free_port()
        self.node = f"lambdalet-test-{self.port}@localhost"
        self.epmd_port = free_port()
        self.dist_port = free_port()
        self._epmd: subprocess.Popen[bytes] | None = None
        self.env = self._environment()

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def _environment(self) -> dict[str, str]:
        config = self.workdir / "rabbitmq.conf"
        config.write_text("log.console = false\nlog.file.level = info\n")
        (self.workdir / "enabled_plugins").write_text("[].\n")
        (self.workdir / "rabbitmq-env.conf").write_text("")
        keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TMPDIR")}
        return keep | {
            "HOME": str(self.workdir),  # the Erlang cookie goes here, for node and rabbitmqctl
            "RABBITMQ_CONF_ENV_FILE": str(self.workdir / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(config),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.workdir / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.workdir / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self.workdir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.workdir / "log"),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": ERL_ARGS,
            "RABBITMQ_CTL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_EPMD_PORT": str(self.epmd_port),
        }

    def start(self) -> None:
        """Boot the node; returns once its AMQP listener speaks AMQP (at most BOOT_TIMEOUT)."""
        self._boot(  # one process group: the script, erl and its children
            [str(RABBITMQ_BIN / "rabbitmq-server")],
            "stdout.log",
            lambda: _speaks_amqp(self.port),
            BOOT_TIMEOUT,
            env=self.env,
            user=self.user,
            group=self.user,
            extra_groups=None if self.user is None else [],
        )

    def stop(self) -> None:
        """rabbitmqctl stop (a clean shutdown: messages on disk), then kill what is left."""
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(subprocess.SubprocessError, OSError):  # killed below then
            self.ctl("stop", timeout=STOP_TIMEOUT)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(STOP_TIMEOUT)
        else:
            # leftovers of the group (erl_child_setup, inet_gethost), if any
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    def ctl(self, *args: str, timeout: float = CTL_TIMEOUT) -> str:
        """rabbitmqctl -n NODE ARGS...; its standard output."""
        result = subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.node, *args],
            env=self.env,
            cwd=self.workdir,
            capture_output=True,
            timeout=timeout,
            check=True,
            user=self.user,
            group=self.user,
            extra_groups=None if self.user is None else [],
        )
        out: bytes = result.stdout
        return out.decode()

    def start_epmd(self) -> None:
        """A private epmd on its own loopback port, run in the foreground as our child (the
        node finds it there and starts none; one it daemonized would end up a zombie of init)."""
        self._epmd = subprocess.Popen(
            ["epmd", "-port", str(self.epmd_port)],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            user=self.user,
            group=self.user,
            extra_groups=None if self.user is None else [],
        )
        if not ready_within(self._epmd, lambda: _accepts(self.epmd_port), BOOT_TIMEOUT):
            raise RuntimeError(f"epmd did not start on port {self.epmd_port}")

    def stop_epmd(self) -> None:
        epmd, self._epmd = self._epmd, None
        if epmd is not None:
            stop_process(epmd, timeout=STOP_TIMEOUT)


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def _speaks_amqp(port: int) -> bool:
    """True once the listener answers the protocol header with a Connection.Start frame."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            sock.sendall(AMQP_HEADER)
            return sock.recv(1) == b"\x01"  # frame type 1: a method frame
    except OSError:
        return False


def _system_user() -> str | None:
    """Root runs the node as the rabbitmq system user; anyone else as themselves."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        return None
    return SYSTEM_USER


@contextmanager
def running_rabbitmq() -> Iterator[RabbitBroker]:
    """A booted node, stopped and removed afterwards (its directory is kept when boot fails)."""
    if not (RABBITMQ_BIN / "rabbitmq-server").exists():
        raise RuntimeError("rabbitmq-server is not installed (Debian package rabbitmq-server)")
    user = _system_user()
    workdir = Path(tempfile.mkdtemp(prefix="lambdalet-rabbitmq-"))
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(workdir, entry.pw_uid, entry.pw_gid)
    broker = RabbitBroker(workdir, user)  # writes its config files into workdir
    if user is not None:
        for path in workdir.iterdir():
            os.chown(path, entry.pw_uid, entry.pw_gid)
    try:
        broker.start_epmd()
        broker.start()
        yield broker
    finally:
        broker.stop()
        broker.stop_epmd()
    shutil.rmtree(workdir, ignore_errors=True)


def publish_raw(
    port: int, queue: str, bodies: list[bytes], headers: dict[str, str] | None = None
) -> None:
    """Publish persistent messages *without* a message_id, with a confirm each.

    aio-pika (aiormq) gives every message it publishes a random message_id; clients such as
    pika or the Java client do not, and the source then hashes the content. This speaks the
    few AMQP frames that takes (pamqp marshals them), as user guest on vhost /.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=CTL_TIMEOUT) as sock:
        frames = _FrameReader(sock)
        sock.sendall(frame.marshal(pamqp.header.ProtocolHeader(), 0))
        frames.expect(commands.Connection.Start)
        credentials = "\0guest\0guest"
        sock.sendall(frame.marshal(commands.Connection.StartOk(response=credentials), 0))
        tune = frames.expect(commands.Connection.Tune)
        ok = commands.Connection.TuneOk(channel_max=1, frame_max=tune.frame_max, heartbeat=0)
        sock.sendall(frame.marshal(ok, 0))
        sock.sendall(frame.marshal(commands.Connection.Open(), 0))
        frames.expect(commands.Connection.OpenOk)
        sock.sendall(frame.marshal(commands.Channel.Open(), 1))
        frames.expect(commands.Channel.OpenOk)
        sock.sendall(frame.marshal(commands.Confirm.Select(), 1))
        frames.expect(commands.Confirm.SelectOk)
        properties = commands.Basic.Properties(headers=dict(headers or {}), delivery_mode=2)
        for body in bodies:
            sock.sendall(
                frame.marshal(commands.Basic.Publish(routing_key=queue), 1)
                + frame.marshal(pamqp.header.ContentHeader(0, len(body), properties), 1)
                + frame.marshal(pamqp.body.ContentBody(body), 1)
            )
            frames.expect(commands.Basic.Ack)
        sock.sendall(frame.marshal(commands.Connection.Close(200, "bye", 0, 0), 0))
        frames.expect(commands.Connection.CloseOk)


class _FrameReader:
    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._data = b""

    def expect(self, kind: type[FrameT]) -> FrameT:
        while True:
            try:
                used, _, value = frame.unmarshal(self._data)
            except pamqp.exceptions.UnmarshalingException:
                chunk = self._sock.recv(65536)  # the socket's timeout bounds this
                if not chunk:
                    raise RuntimeError(f"the broker closed the connection before {kind}") from None
                self._data += chunk
                continue
            self._data = self._data[used:]
            if not isinstance(value, kind):
                raise RuntimeError(f"expected {kind.__name__}, got {value!r}")
            return value
