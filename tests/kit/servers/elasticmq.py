"""A real ElasticMQ (an SQS-compatible server on the JVM) for the SQS source's tests.

``running_elasticmq`` fetches ElasticMQ from Maven Central once (``e2e/cluster/elasticmq.sh``,
cached in ~/.cache/lambdalet/elasticmq) and runs ``org.elasticmq.server.Main`` in a temporary
directory of its own, with a config file that binds the SQS API to 127.0.0.1 on a free port and
turns the statistics endpoint (which binds 0.0.0.0 by default) off. ``durable=True`` adds
ElasticMQ's persistence: queue definitions in a file (``queues-storage``), messages in an H2
database (``messages-storage``), so ``ElasticMQ.restart`` keeps both; without it a restart
loses every queue and message.

Where it sits: ``tests/dispatcher/test_sqs.py`` wraps it in a session fixture (one JVM boot per
test run: a boot takes several seconds) and the restart test in one of its own.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.kit.ports import free_port
from tests.kit.servers.process import SlowServer

REPO = Path(__file__).resolve().parents[3]
FETCH_SCRIPT = REPO / "e2e" / "cluster" / "elasticmq.sh"
FETCH_TIMEOUT = 600.0  # Maven Central, first run only (~50 MB)
BOOT_TIMEOUT = 60.0  # seconds until the SQS API answers
STOP_TIMEOUT = 20.0
ACCOUNT = "000000000000"
REGION = "us-east-1"
# A small heap, the serial collector and C1 only: it boots faster on two cores and the tests
# put little load on it.
JVM_OPTIONS = ("-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto")


def class_path() -> str:
    """ElasticMQ's class path, fetched first when it is not in the cache."""
    if shutil.which("java") is None:
        raise RuntimeError("java is not installed (Debian package openjdk-17-jre-headless)")
    result = subprocess.run(
        [str(FETCH_SCRIPT)], capture_output=True, timeout=FETCH_TIMEOUT, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"fetching ElasticMQ failed: {result.stderr.decode()[-2000:]}")
    cp_file = Path(result.stdout.decode().strip().splitlines()[-1])
    return cp_file.read_text().strip()


def config(port: int, workdir: Path, *, durable: bool) -> str:
    """The server's HOCON config: loopback only, strict SQS limits, optionally persistent."""
    storage = (
        f'queues-storage {{ enabled = true, path = "{workdir / "queues.conf"}" }}\n'
        "messages-storage {\n"
        "  enabled = true\n"
        f'  uri = "jdbc:h2:{workdir / "messages"}"\n'
        "}\n"
        if durable
        else ""
    )
    return (
        'include classpath("application.conf")\n'
        f'node-address {{ protocol = "http", host = "127.0.0.1", port = {port}, '
        'context-path = "" }\n'
        f'rest-sqs {{ enabled = true, bind-port = {port}, bind-hostname = "127.0.0.1", '
        "sqs-limits = strict }\n"
        'rest-stats { enabled = false, bind-hostname = "127.0.0.1" }\n'
        "generate-node-address = false\n"
        f'aws {{ region = "{REGION}", accountId = "{ACCOUNT}" }}\n' + storage
    )


class ElasticMQ(SlowServer):
    """One ElasticMQ server this test run owns (a process, so not a frozen value)."""

    name = "ElasticMQ"

    def __init__(self, workdir: Path, classpath: str, *, durable: bool = False) -> None:
        super().__init__(workdir)
        self.classpath = classpath
        self.durable = durable
        self.port = free_port()
        self._config = workdir / "elasticmq.conf"
        self._config.write_text(config(self.port, workdir, durable=durable))

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def queue_url(self, name: str) -> str:
        return f"{self.endpoint}/{ACCOUNT}/{name}"

    def start(self) -> None:
        """Boot the JVM; returns once the SQS API answers (at most BOOT_TIMEOUT)."""
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "HOME")}
        self._boot(
            [
                "java",
                *JVM_OPTIONS,
                f"-Dconfig.file={self._config}",
                "-cp",
                self.classpath,
                "org.elasticmq.server.Main",
            ],
            "elasticmq.log",
            lambda: _answers(self.endpoint),
            BOOT_TIMEOUT,
            env=env,
        )

    def stop(self) -> None:
        """SIGTERM (the JVM's shutdown hooks close the store), then SIGKILL if it lingers."""
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(STOP_TIMEOUT)

    def restart(self) -> None:
        self.stop()
        self.start()


def _answers(endpoint: str) -> bool:
    """True once the SQS API answers a ListQueues (query protocol) with 200."""
    try:
        with urllib.request.urlopen(f"{endpoint}/?Action=ListQueues", timeout=1.0) as reply:
            return bool(reply.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def running_elasticmq(*, durable: bool = False) -> Iterator[ElasticMQ]:
    """A booted server, stopped and removed afterwards (its directory is kept when boot fails)."""
    classpath = class_path()
    workdir = Path(tempfile.mkdtemp(prefix="lambdalet-elasticmq-"))
    server = ElasticMQ(workdir, classpath, durable=durable)
    try:
        server.start()
        yield server
    finally:
        server.stop()
    shutil.rmtree(workdir, ignore_errors=True)
