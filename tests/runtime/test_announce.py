"""The agent announces its pod to the activators the moment its runtime is initialised, and
withdraws the announcement on SIGTERM: a real agent process, and an activator stand-in listening
on 127.0.0.1 that records what arrives (runtime-images/agent/README.md, "Announcement")."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from lambdalet.activator.announce import Announcement, InitErrorReport
from tests.kit.servers.agent import StartAgent

HELLO = "def handler(event, context):\n    return {'hello': event.get('name')}\n"
# A runtime that takes a moment to initialise, as real handlers' imports do.
SLOW_INIT = "import time\ntime.sleep(0.3)\n" + HELLO
TOKEN = "eyJhbGciOiJSUzI1NiJ9.pod-bound.signature"


@dataclass(frozen=True)
class Arrival:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    health: str  # the agent's /healthz status the moment the request arrived
    at: float


class Activator:
    """An HTTP listener on 127.0.0.1 answering every request with ``status`` after ``delay``."""

    def __init__(self, status: int = 204, delay: float = 0.0) -> None:
        self.arrivals: queue.Queue[Arrival] = queue.Queue()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                outer.record(self)

            def do_DELETE(self) -> None:
                outer.record(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.status, self.delay = status, delay
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def record(self, request: BaseHTTPRequestHandler) -> None:
        at = time.monotonic()
        body = request.rfile.read(int(request.headers.get("Content-Length", "0")))
        try:
            # The agent's own readiness as the announcement arrives (the body names its port).
            port = json.loads(body)["port"]
            health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).json()["status"]
        except (ValueError, KeyError, httpx.HTTPError) as exc:
            health = f"unknown: {exc}"
        self.arrivals.put(
            Arrival(request.command, request.path, dict(request.headers), body, health, at)
        )
        time.sleep(self.delay)
        request.send_response(self.status)
        request.send_header("Content-Length", "0")
        request.end_headers()

    def next(self, timeout: float = 5.0) -> Arrival:
        try:
            return self.arrivals.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no request within {timeout} s") from None

    def none(self, wait: float = 0.3) -> None:
        try:
            arrival = self.arrivals.get(timeout=wait)
        except queue.Empty:
            return
        raise AssertionError(f"unexpected {arrival.method} {arrival.path}")


@pytest.fixture
def activator() -> Iterator[Activator]:
    listener = Activator()
    listener.thread.start()
    try:
        yield listener
    finally:
        listener.server.shutdown()
        listener.server.server_close()


def announce_env(tmp_path: Path, port: int) -> dict[str, str]:
    token_file = tmp_path / "announce-token"
    token_file.write_text(TOKEN + "\n")  # as the kubelet writes it, possibly with a newline
    return {
        "LAMBDALET_ANNOUNCE_URL": f"http://127.0.0.1:{port}/v1/announce",
        "LAMBDALET_ANNOUNCE_TOKEN_FILE": str(token_file),
        "LAMBDALET_POD_IP": "127.0.0.1",
        "LAMBDALET_POD_NAME": "fn-hello-5d8f7c9b4-x2x7q",
        "LAMBDALET_CONCURRENCY": "2",
    }


def test_announcement_arrives_at_readiness_and_is_withdrawn_on_sigterm(
    start_agent: StartAgent, activator: Activator, tmp_path: Path
) -> None:
    agent = start_agent({"app.py": SLOW_INIT}, env=announce_env(tmp_path, activator.port))
    ready_seen = time.monotonic()

    posted = activator.next()
    assert (posted.method, posted.path) == ("POST", "/v1/announce")
    assert posted.headers["Authorization"] == f"Bearer {TOKEN}"
    assert posted.headers["Content-Type"] == "application/json"
    # The activator's own parser takes the agent's body as it is.
    assert Announcement.from_json(posted.body) == Announcement(
        namespace="tests",
        function="hello",
        pod="fn-hello-5d8f7c9b4-x2x7q",
        pod_ip="127.0.0.1",
        port=agent.port,
        concurrency=2,
    )
    # Not before the runtime is initialised, and not long after: the test saw /healthz turn 200
    # by polling, so the announcement may even be a little ahead of that. (It came before any
    # invocation, too: the test invokes only after it.) The margin is for a busy machine's
    # scheduling, not for any wait of the agent's.
    assert posted.health == "ready"
    assert posted.at - ready_seen < 2.0

    assert agent.invoke({"name": "pod"}).json() == {"hello": "pod"}
    activator.none()  # announced once, not per runtime or invocation

    assert agent.stop() == 0
    deleted = activator.next()
    assert (deleted.method, deleted.path) == ("DELETE", "/v1/announce")
    assert deleted.body == posted.body
    assert deleted.headers["Authorization"] == f"Bearer {TOKEN}"
    assert deleted.health.startswith("unknown") or deleted.health == "stopping"


@pytest.mark.parametrize(("status", "delay"), [(503, 0.0), (403, 0.0), (204, 3.0)])
def test_failing_or_hanging_activator_delays_nothing(
    start_agent: StartAgent, tmp_path: Path, status: int, delay: float
) -> None:
    activator = Activator(status, delay)
    activator.thread.start()
    try:
        agent = start_agent({"app.py": HELLO}, env=announce_env(tmp_path, activator.port))
        activator.next()

        # A hanging activator holds each of the three POSTs until the agent's 1 s timeout: an
        # invocation that waited for the announcement would take the rest of that round, over
        # 3 s. (Failing answers end the round within 0.4 s, so there the answer matters only.)
        began = time.monotonic()
        assert agent.invoke({"name": "still"}).json() == {"hello": "still"}
        assert time.monotonic() - began < 1.5
        if status != 204:
            attempts = 3 if status == 503 else 1
            line = agent.wait_log(rf"lambdalet-agent: announce: 127\.0\.0\.1: post: HTTP {status}")
            assert agent.log().count("announce:") == 1, line
            for _ in range(attempts - 1):
                activator.next()

        began = time.monotonic()
        assert agent.stop() == 0
        # Waiting for the withdrawal costs the shutdown 500 ms at most; without that budget a
        # hanging activator would hold it for the rest of the POST round and a 1 s DELETE
        # (at least 2.9 s), so the bound leaves a busy machine a second of its own.
        assert time.monotonic() - began < 2.5
    finally:
        activator.server.shutdown()
        activator.server.server_close()


def test_without_announce_url_nothing_is_sent(
    start_agent: StartAgent, activator: Activator, tmp_path: Path
) -> None:
    env = announce_env(tmp_path, activator.port)
    del env["LAMBDALET_ANNOUNCE_URL"]
    agent = start_agent({"app.py": HELLO}, env=env)

    assert agent.invoke({"name": "x"}).json() == {"hello": "x"}
    assert agent.stop() == 0
    activator.none()


def test_an_init_failure_is_reported_with_the_error_its_invocations_get(
    start_agent: StartAgent, activator: Activator, tmp_path: Path
) -> None:
    broken = "import no_such_module\n" + HELLO
    agent = start_agent(
        {"app.py": broken}, env=announce_env(tmp_path, activator.port), wait_ready=False
    )

    reported = activator.next()
    assert (reported.method, reported.path) == ("POST", "/v1/init-error")
    assert reported.headers["Authorization"] == f"Bearer {TOKEN}"
    # The activator's own parser takes the report as it is: the pod, and the error document
    # the pod answers invocations with.
    report = InitErrorReport.from_json(reported.body)
    assert report.announcement.pod == "fn-hello-5d8f7c9b4-x2x7q"
    assert report.announcement.port == agent.port
    assert report.error_type == "Runtime.ImportModuleError"
    direct = agent.invoke({})
    assert direct.status_code == 502
    assert json.loads(report.error) == direct.json()
    # Every failed round is reported; the pod is never announced ready.
    again = activator.next(timeout=10)
    assert again.path == "/v1/init-error"

    assert agent.stop() == 0
    posted = {(a.method, a.path) for a in list(activator.arrivals.queue)}
    assert ("POST", "/v1/announce") not in posted
