"""Code delivered as a zip archive at a URL (LAMBDALET_CODE_URL), fetched by the agent at start.

The archives are built here with ``zipfile`` and served by a small HTTP server on 127.0.0.1 that
answers each path from a script of replies (the last one repeats), so a URL can fail first and
work later. The agent runs with an empty task root, as the pod's emptyDir is.
"""

from __future__ import annotations

import hashlib
import io
import re
import stat
import sys
import threading
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.kit.servers.agent import Agent, StartAgent

HANDLER = "def handler(event, context):\n    return {'from': 'url', 'event': event}\n"
CODE_ERROR = "Runtime.CodeDownloadError"


@dataclass(frozen=True)
class Entry:
    """One member of a test archive: a file (mode as in a Unix zip) or a symbolic link."""

    name: str
    data: str = ""
    mode: int = 0o644
    link: bool = False


def zip_of(*entries: Entry) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for entry in entries:
            info = zipfile.ZipInfo(entry.name)
            info.create_system = 3  # Unix: the mode below counts
            kind = stat.S_IFLNK if entry.link else stat.S_IFREG
            info.external_attr = (kind | entry.mode) << 16
            archive.writestr(info, entry.data)
    return out.getvalue()


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes


class CodeServer:
    """An HTTP server on 127.0.0.1 answering each path from its script of replies."""

    def __init__(self) -> None:
        self.scripts: dict[str, list[Reply]] = {}
        self.hits: Counter[str] = Counter()
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                reply = server.next_reply(self.path)
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/zip")
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def serve(self, path: str, *replies: Reply) -> str:
        """Answer GET path with the replies in turn, the last one again and again; its URL."""
        with self.lock:
            self.scripts[path.partition("?")[0]] = list(replies)
        return f"http://127.0.0.1:{self.httpd.server_port}{path}"

    def next_reply(self, path: str) -> Reply:
        """The reply to a GET of path (by its part before any query); counts it in hits."""
        path = path.partition("?")[0]
        with self.lock:
            script = self.scripts.get(path, [Reply(404, b"no such archive")])
            reply = script[min(self.hits[path], len(script) - 1)]
            self.hits[path] += 1
            return reply


@pytest.fixture
def code_server() -> Iterator[CodeServer]:
    server = CodeServer()
    server.thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


def assert_code_error(agent: Agent, mention: str) -> dict[str, Any]:
    """The agent reports an init error mentioning ``mention`` on /healthz and to invocations."""
    health = agent.wait_health("init_error")
    reply = agent.invoke({})
    assert health["error"]["errorType"] == CODE_ERROR
    assert mention in health["error"]["errorMessage"]
    assert agent.health().status_code == 503
    assert reply.status_code == 502
    assert reply.headers["X-Amz-Function-Error"] == "Unhandled"
    assert reply.json() == health["error"]
    agent.wait_log(
        rf"^INIT_REPORT Init Duration: \d+\.\d\d ms\tPhase: init\tStatus: error\t"
        rf"Error Type: {CODE_ERROR}$"
    )
    agent.wait_log(rf"^lambdalet-agent: code: .*{re.escape(mention)}")
    error: dict[str, Any] = health["error"]
    return error


def test_a_python_handler_from_a_url(start_agent: StartAgent, code_server: CodeServer) -> None:
    archive = zip_of(Entry("app.py", HANDLER), Entry("lib/helper.py", "X = 1\n"))
    url = code_server.serve("/code.zip", Reply(200, archive))

    agent = start_agent({}, env={"LAMBDALET_CODE_URL": url, "LAMBDALET_CODE_MAX_FILES": "2"})
    reply = agent.invoke({"n": 1})

    assert reply.status_code == 200, reply.text
    assert reply.json() == {"from": "url", "event": {"n": 1}}
    assert (agent.task_root / "lib" / "helper.py").read_text() == "X = 1\n"
    digest = hashlib.sha256(archive).hexdigest()
    agent.wait_log(
        rf"^lambdalet-agent: code: {re.escape(url)} \({len(archive)} bytes, sha256 {digest}\) "
        rf"unpacked into {re.escape(str(agent.task_root))}: 2 entries, {len(HANDLER) + 6} bytes"
    )


def test_the_right_sha256_in_any_case(start_agent: StartAgent, code_server: CodeServer) -> None:
    archive = zip_of(Entry("app.py", HANDLER))
    url = code_server.serve("/code.zip", Reply(200, archive))
    digest = hashlib.sha256(archive).hexdigest().upper()

    agent = start_agent({}, env={"LAMBDALET_CODE_URL": url, "LAMBDALET_CODE_SHA256": digest})

    assert agent.invoke({"n": 2}).json() == {"from": "url", "event": {"n": 2}}


def test_a_wrong_sha256(start_agent: StartAgent, code_server: CodeServer) -> None:
    archive = zip_of(Entry("app.py", HANDLER))
    url = code_server.serve("/code.zip", Reply(200, archive))
    wrong = "0" * 64

    agent = start_agent(
        {}, env={"LAMBDALET_CODE_URL": url, "LAMBDALET_CODE_SHA256": wrong}, wait_ready=False
    )

    got = hashlib.sha256(archive).hexdigest()
    assert_code_error(agent, f"sha256 mismatch: want {wrong}, got {got}")
    assert list(agent.task_root.iterdir()) == []


ESCAPE = "lambdalet-zip-slip.py"  # what the unsafe archives try to write outside the task root


@pytest.mark.parametrize(
    ("entries", "env", "mention"),
    [
        ([Entry(f"../{ESCAPE}", "x")], {}, 'a ".." in the path'),
        ([Entry(f"lib/../../{ESCAPE}", "x")], {}, 'a ".." in the path'),
        ([Entry(f"/tmp/{ESCAPE}", "x")], {}, "an absolute path"),
        ([Entry("up", "../..", 0o777, link=True)], {}, "a symbolic link out of the root"),
        ([Entry("tmp", "/tmp", 0o777, link=True)], {}, "a symbolic link to an absolute"),
        (
            [Entry("lib", ".", 0o777, link=True), Entry(f"lib/{ESCAPE}", "x")],
            {},
            'inside the symbolic link "lib"',
        ),
        (
            [Entry(f"m{n}.py") for n in range(4)],
            {"LAMBDALET_CODE_MAX_FILES": "3"},
            "more than 3 entries (LAMBDALET_CODE_MAX_FILES)",
        ),
    ],
    ids=["parent", "nested-parent", "absolute", "link-out", "absolute-link", "via-link", "files"],
)
def test_unsafe_archives_are_refused(
    start_agent: StartAgent,
    code_server: CodeServer,
    entries: list[Entry],
    env: dict[str, str],
    mention: str,
) -> None:
    # Members that are fine come first: they must not stay behind either.
    archive = zip_of(Entry("app.py", HANDLER), Entry("pkg/ok.py"), *entries)
    url = code_server.serve("/code.zip", Reply(200, archive))

    agent = start_agent({}, env={"LAMBDALET_CODE_URL": url, **env}, wait_ready=False)

    assert_code_error(agent, mention)
    assert list(agent.task_root.iterdir()) == []
    assert not (agent.task_root.parent / ESCAPE).exists()
    assert not (agent.task_root.parent.parent / ESCAPE).exists()
    assert not (Path("/tmp") / ESCAPE).exists()


def test_what_is_not_a_zip_is_refused(start_agent: StartAgent, code_server: CodeServer) -> None:
    url = code_server.serve("/code.zip", Reply(200, b"<html>Sign in to download</html>"))

    agent = start_agent({}, env={"LAMBDALET_CODE_URL": url}, wait_ready=False)

    assert_code_error(agent, "not a zip archive")


PROVIDED_BOOTSTRAP = f"""#!{sys.executable}
import json
import os
import urllib.request

api = f"http://{{os.environ['AWS_LAMBDA_RUNTIME_API']}}/2018-06-01/runtime/invocation"
with open(os.path.join(os.environ["LAMBDA_TASK_ROOT"], "data", "message.txt")) as f:
    message = f.read()
while True:
    with urllib.request.urlopen(f"{{api}}/next") as r:
        request_id = r.headers["Lambda-Runtime-Aws-Request-Id"]
        event = json.load(r)
    body = json.dumps({{"message": message, "event": event}}).encode()
    urllib.request.urlopen(f"{{api}}/{{request_id}}/response", data=body).close()
"""


def test_a_provided_bootstrap_stays_executable(
    start_agent: StartAgent, code_server: CodeServer
) -> None:
    archive = zip_of(
        Entry("bootstrap", PROVIDED_BOOTSTRAP, 0o755),
        Entry("data/message.txt", "from the zip", 0o600),
    )
    url = code_server.serve("/provided.zip", Reply(200, archive))

    # No LAMBDALET_BOOTSTRAP: the agent finds $LAMBDA_TASK_ROOT/bootstrap once it is unpacked.
    agent = start_agent({}, env={"LAMBDALET_RUNTIME": "provided", "LAMBDALET_CODE_URL": url})
    reply = agent.invoke({"n": 3})

    assert reply.status_code == 200, reply.text
    assert reply.json() == {"message": "from the zip", "event": {"n": 3}}
    modes = {
        name: stat.S_IMODE((agent.task_root / name).stat().st_mode)
        for name in ("bootstrap", "data", "data/message.txt")
    }
    assert modes == {"bootstrap": 0o755, "data": 0o755, "data/message.txt": 0o644}


def test_a_url_that_fails_first_recovers_in_the_same_agent(
    start_agent: StartAgent, code_server: CodeServer
) -> None:
    archive = zip_of(Entry("app.py", HANDLER))
    url = code_server.serve("/late.zip", Reply(404, b"not uploaded yet"), Reply(200, archive))

    agent = start_agent({}, env={"LAMBDALET_CODE_URL": url}, wait_ready=False)
    error = assert_code_error(agent, "HTTP 404 Not Found")
    agent.wait_health("ready", timeout=15)  # the next round, after a pause of 1 s
    reply = agent.invoke({"n": 4})

    assert error["errorMessage"] == f"GET {url}: HTTP 404 Not Found"
    assert reply.json() == {"from": "url", "event": {"n": 4}}
    assert agent.process.poll() is None
    assert code_server.hits["/late.zip"] == 2
    agent.wait_log(r"^lambdalet-agent: code: .*HTTP 404 Not Found; next try in 1s$")


def test_a_transient_failure_is_retried_within_the_round(
    start_agent: StartAgent, code_server: CodeServer
) -> None:
    archive = zip_of(Entry("app.py", HANDLER))
    url = code_server.serve(
        "/busy.zip?X-Amz-Signature=secret", Reply(503, b""), Reply(200, archive)
    )

    agent = start_agent({}, env={"LAMBDALET_CODE_URL": url}, wait_ready=True)

    assert agent.invoke({"n": 5}).json() == {"from": "url", "event": {"n": 5}}
    assert code_server.hits["/busy.zip"] == 2
    agent.wait_log(
        r"^lambdalet-agent: code: GET .*/busy\.zip\?…: HTTP 503 Service Unavailable; "
        r"attempt 2 in 1s$"
    )
    assert "INIT_REPORT" not in agent.log()
    assert "secret" not in agent.log()
