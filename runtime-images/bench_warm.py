"""Benchmark of a function pod's own overhead: the agent plus the Python runtime, on loopback.

    .venv/bin/python runtime-images/bench_warm.py [--invocations 2000] [--cold-starts 5]

- cold init: from starting the agent to GET /healthz answering ready (agent start, Python
  interpreter start, runtime and handler import, first GET /invocation/next);
- warm invoke overhead: the round trip a client sees for a handler that does nothing, over one
  keep-alive connection, i.e. everything the pod adds to a handler's own time; and the Duration
  the agent reports for the same invocations (hand-off to the runtime until its response).

Builds the agent with ``go build`` into a temporary directory first; the standard library is all
it needs otherwise, and the clients are light ones (http.client, a raw socket for the readiness
poll) so that they do not dominate what is measured.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
INVOKE_PATH = "/2015-03-31/functions/function/invocations"
NO_OP = "def handler(event, context):\n    return None\n"


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


def start(binary: Path, task_root: Path, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_LAMBDA_FUNCTION_NAME": "bench",
        "_HANDLER": "app.handler",
        "LAMBDALET_RUNTIME": "python3.11",
        "LAMBDALET_PORT": str(port),
        "LAMBDALET_RUNTIME_API_PORT": "0",
        "LAMBDA_TASK_ROOT": str(task_root),
        "LAMBDALET_BOOTSTRAP": f"{sys.executable} {HERE / 'python' / 'bootstrap.py'}",
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
    raise SystemExit("the agent did not become ready in 30 s")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--invocations", type=int, default=2000)
    parser.add_argument("--cold-starts", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        binary = build_agent(work)
        task_root = work / "task"
        task_root.mkdir()
        (task_root / "app.py").write_text(NO_OP)

        colds = []
        for n in range(args.cold_starts):
            began = time.perf_counter()
            process, port = start(binary, task_root, work / f"cold-{n}.log")
            wait_ready(port)
            colds.append((time.perf_counter() - began) * 1000)
            stop(process)

        log = work / "warm.log"
        rtts: list[float] = []
        process, port = start(binary, task_root, log)
        try:
            wait_ready(port)
            client = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            for n in range(-50, args.invocations):  # the first 50 warm up, untimed
                headers = {"Lambdalet-Request-Id": f"bench-{n}"}
                began = time.perf_counter()
                client.request("POST", INVOKE_PATH, body=b"{}", headers=headers)
                reply = client.getresponse()
                body = reply.read()
                if n >= 0:
                    rtts.append((time.perf_counter() - began) * 1000)
                if reply.status != 200 or body != b"null":
                    raise SystemExit(f"unexpected reply {reply.status}: {body!r}")
            client.close()
        finally:
            stop(process)
        reported = [
            float(d)
            for d in re.findall(
                r"^REPORT RequestId: bench-\d+\tDuration: ([\d.]+) ms", log.read_text(), re.M
            )
        ]

    summary = [
        ("cold init (agent start -> /healthz ready)", colds, f"{len(colds)} starts"),
        ("warm invoke round trip, no-op handler", rtts, f"{len(rtts)} invocations"),
        ("agent-reported Duration of those invocations", reported, f"{len(reported)} REPORTs"),
    ]
    for title, values, count in summary:
        print(f"{title} ({count}):")
        print(
            f"  p50 {percentile(values, 50):.3f} ms  p99 {percentile(values, 99):.3f} ms  "
            f"min {min(values):.3f} ms  max {max(values):.3f} ms"
        )


if __name__ == "__main__":
    main()
