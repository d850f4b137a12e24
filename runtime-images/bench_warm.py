"""Benchmark of a function pod's own overhead: the agent plus a runtime (Python, Node.js) on
loopback, each figure next to a baseline measured in the same run, and the project's targets.

    .venv/bin/python runtime-images/bench_warm.py [--invocations 2000] [--cold-starts 10]

- cold init: from starting the agent to GET /healthz answering ready (agent start, interpreter
  start, runtime and handler import, first GET /invocation/next); baseline: the bare interpreter
  (``python3 -c pass``, ``node -e 0``) from start to exit.
- warm invoke overhead: the round trip a client sees for a handler that does nothing, over one
  keep-alive connection, i.e. everything the pod adds to a handler's own time; baseline: GET
  /healthz on the same connection, interleaved (loopback, HTTP and this client, but no runtime).
  Also the Duration the agent reports for those invocations (hand-off to the runtime until its
  response).
- agent memory: VmRSS / VmHWM of the agent process alone (/proc/<pid>/status), idle once ready
  and after the warm invocations.

Builds the agent with ``go build`` into a temporary directory first; the standard library is all
it needs otherwise, and the clients are light ones (http.client, a raw socket for the readiness
poll) so that they do not dominate what is measured. Node.js rows are left out without ``node``.
"""

from __future__ import annotations

import argparse
import http.client
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
INVOKE_PATH = "/2015-03-31/functions/function/invocations"
WARM_UP = 50  # untimed invocations before the timed ones

# The targets (project goals), as (figure, limit).
TARGET_WARM_P50_MS = 1.0
TARGET_PYTHON_COLD_P50_MS = 150.0
TARGET_AGENT_RSS_MIB = 30.0


@dataclass(frozen=True)
class Runtime:
    """A language runtime to measure: its agent settings, a no-op handler, the bare baseline."""

    name: str
    setting: str  # LAMBDALET_RUNTIME
    bootstrap: list[str]
    handler_file: str
    handler_source: str
    bare: list[str]  # the interpreter doing nothing, for the cold-start baseline


def runtimes() -> list[Runtime]:
    found = [
        Runtime(
            "python",
            "python3.11",
            [sys.executable, str(HERE / "python" / "bootstrap.py")],
            "app.py",
            "def handler(event, context):\n    return None\n",
            [sys.executable, "-c", "pass"],
        )
    ]
    node = shutil.which("node")
    if node:
        found.append(
            Runtime(
                "node",
                "nodejs20",
                [node, str(HERE / "nodejs" / "bootstrap.js")],
                "app.js",
                "exports.handler = async () => null;\n",
                [node, "-e", "0"],
            )
        )
    return found


def build_agent(out: Path) -> Path:
    go = shutil.which("go") or "/usr/local/go/bin/go"
    binary = out / "agent"
    subprocess.run(
        [go, "build", "-trimpath", "-o", str(binary), "."],
        cwd=HERE / "agent",
        env={**os.environ, "CGO_ENABLED": "0"},
        check=True,
    )
    return binary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def clean_env() -> dict[str, str]:
    """The environment of the agent, and of the baselines: what a runtime inherits matters
    (NODE_EXTRA_CA_CERTS alone can double Node's start)."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def start(
    binary: Path, runtime: Runtime, task_root: Path, log: Path
) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {
        **clean_env(),
        "AWS_LAMBDA_FUNCTION_NAME": "bench",
        "_HANDLER": "app.handler",
        "LAMBDALET_RUNTIME": runtime.setting,
        "LAMBDALET_PORT_NUMBER": str(port),
        "LAMBDALET_RUNTIME_API_PORT_NUMBER": "0",
        "LAMBDA_TASK_ROOT": str(task_root),
        "LAMBDALET_BOOTSTRAP": " ".join(runtime.bootstrap),
    }
    with log.open("wb") as out:
        process = subprocess.Popen([str(binary)], env=env, stdout=out, stderr=subprocess.STDOUT)
    return process, port


def wait_ready(port: int, timeout: float = 30.0) -> None:
    """Poll /healthz with a plain socket: a heavier client would compete with the start."""
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(request)
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.002)
    raise SystemExit(f"the agent did not become ready in {timeout:.0f} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)


def memory_mib(pid: int) -> tuple[float, float]:
    """VmRSS and VmHWM of one process, in MiB."""
    status = Path(f"/proc/{pid}/status").read_text()

    def field(name: str) -> float:
        found = re.search(rf"^{name}:\s+(\d+) kB$", status, re.M)
        return int(found.group(1)) / 1024 if found else float("nan")

    return field("VmRSS"), field("VmHWM")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


@dataclass
class Figures:
    """What one runtime measured, in ms and MiB."""

    cold: list[float]
    bare: list[float]
    rtts: list[float]
    health_rtts: list[float]
    reported: list[float]
    idle_mib: tuple[float, float]
    busy_mib: tuple[float, float]


def measure(binary: Path, runtime: Runtime, work: Path, invocations: int, colds: int) -> Figures:
    task_root = work / runtime.name
    task_root.mkdir()
    (task_root / runtime.handler_file).write_text(runtime.handler_source)

    cold: list[float] = []
    bare: list[float] = []
    for n in range(colds):  # interleaved, so that both see the same machine
        began = time.perf_counter()
        subprocess.run(runtime.bare, env=clean_env(), check=True)
        bare.append((time.perf_counter() - began) * 1000)
        began = time.perf_counter()
        process, port = start(binary, runtime, task_root, work / f"{runtime.name}-cold-{n}.log")
        wait_ready(port)
        cold.append((time.perf_counter() - began) * 1000)
        stop(process)

    log = work / f"{runtime.name}-warm.log"
    rtts: list[float] = []
    health_rtts: list[float] = []
    process, port = start(binary, runtime, task_root, log)
    try:
        wait_ready(port)
        time.sleep(0.2)  # let the start settle before "idle"
        idle = memory_mib(process.pid)
        client = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for n in range(-WARM_UP, invocations):
            began = time.perf_counter()
            client.request(
                "POST", INVOKE_PATH, body=b"{}", headers={"Lambdalet-Request-Id": f"b-{n}"}
            )
            reply = client.getresponse()
            body = reply.read()
            took = (time.perf_counter() - began) * 1000
            if reply.status != 200 or body != b"null":
                raise SystemExit(f"{runtime.name}: unexpected reply {reply.status}: {body!r}")
            began = time.perf_counter()
            client.request("GET", "/healthz")
            health = client.getresponse()
            health.read()
            health_took = (time.perf_counter() - began) * 1000
            if n >= 0:
                rtts.append(took)
                health_rtts.append(health_took)
        client.close()
        busy = memory_mib(process.pid)
    finally:
        stop(process)
    reported = [
        float(d)
        for d in re.findall(
            r"^REPORT RequestId: b-\d+\tDuration: ([\d.]+) ms", log.read_text(), re.M
        )
    ]
    return Figures(cold, bare, rtts, health_rtts, reported, idle, busy)


def target(value: float, limit: float, unit: str) -> str:
    return f"target <= {limit:g} {unit}: {'ok' if value <= limit else 'MISSED'}"


def row(label: str, figure: str, note: str = "") -> str:
    return f"  {label:<44} {figure:<30} {note}".rstrip()


def report(runtime: Runtime, f: Figures, invocations: int) -> list[str]:
    bare_name = " ".join([Path(runtime.bare[0]).name, *runtime.bare[1:]])
    cold_p50 = percentile(f.cold, 50)
    warm_p50 = percentile(f.rtts, 50)

    def p50_p99(values: list[float]) -> str:
        return f"p50 {percentile(values, 50):.3f} ms  p99 {percentile(values, 99):.3f} ms"

    cold_target = ""
    if runtime.name == "python":
        cold_target = target(cold_p50, TARGET_PYTHON_COLD_P50_MS, "ms")
    idle, busy = f.idle_mib, f.busy_mib
    rss_target = target(max(idle[0], busy[0]), TARGET_AGENT_RSS_MIB, "MiB")
    return [
        f"{runtime.name}",
        row("cold init, agent start -> ready", f"p50 {cold_p50:.1f} ms", cold_target),
        row(f"  baseline: {bare_name}, start -> exit", f"p50 {percentile(f.bare, 50):.1f} ms"),
        row(
            "warm invoke round trip, no-op handler",
            p50_p99(f.rtts),
            target(warm_p50, TARGET_WARM_P50_MS, "ms (p50)"),
        ),
        row("  baseline: GET /healthz, same connection", p50_p99(f.health_rtts)),
        row("  agent-reported Duration", p50_p99(f.reported), f"{len(f.reported)} REPORTs"),
        row("agent VmRSS / VmHWM, idle", f"{idle[0]:.1f} / {idle[1]:.1f} MiB", rss_target),
        row(f"  after {invocations} invocations", f"{busy[0]:.1f} / {busy[1]:.1f} MiB"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--invocations", type=int, default=2000)
    parser.add_argument("--cold-starts", type=int, default=10)
    args = parser.parse_args()

    measured = runtimes()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        binary = build_agent(work)
        results = [
            (runtime, measure(binary, runtime, work, args.invocations, args.cold_starts))
            for runtime in measured
        ]
    print(
        f"{args.invocations} warm invocations and {args.cold_starts} cold starts per runtime; "
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    for runtime, figures in results:
        print("\n".join(report(runtime, figures, args.invocations)))
    if len(measured) == 1:
        print("node: not measured (no `node` on PATH)")


if __name__ == "__main__":
    main()
