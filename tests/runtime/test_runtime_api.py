"""Every runtime on the wire, without the agent: what it posts to a Runtime API (a small fake
served by the test) for a result, an invocation error and an init error, headers included."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.runtimes import ByLanguage, Runtime, per_runtime

PREFIX = "/2018-06-01/runtime"


@dataclass(frozen=True)
class Post:
    path: str
    headers: dict[str, str]  # names in lower case
    body: Any


class FakeRuntimeAPI(ThreadingHTTPServer):
    """Hands out one invocation, then holds every further GET /next until closed."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.posts: queue.Queue[Post] = queue.Queue()
        self.handed_out = False
        self.closed = threading.Event()


class _Handler(BaseHTTPRequestHandler):
    server: FakeRuntimeAPI

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        assert self.path == f"{PREFIX}/invocation/next"
        if self.server.handed_out:
            self.server.closed.wait(30)
            return
        self.server.handed_out = True
        body = b'{"n": 1}'
        self.send_response(200)
        self.send_header("Lambda-Runtime-Aws-Request-Id", "req-1")
        self.send_header("Lambda-Runtime-Deadline-Ms", "9999999999999")
        self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:::function:f")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.posts.put(Post(self.path, headers, json.loads(body)))
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def fake_api() -> Iterator[FakeRuntimeAPI]:
    server = FakeRuntimeAPI()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.closed.set()
    server.shutdown()
    server.server_close()


def first_post(fake_api: FakeRuntimeAPI, tmp_path: Path, runtime: Runtime, handler: str) -> Post:
    for name, source in runtime.files(handler).items():
        (tmp_path / name).write_text(source)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{fake_api.server_address[1]}",
        "_HANDLER": "app.handler",
        "LAMBDA_TASK_ROOT": str(tmp_path),
    }
    runtime = subprocess.Popen(
        runtime.command(),
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        return fake_api.posts.get(timeout=10)
    finally:
        runtime.kill()
        runtime.wait()


@pytest.mark.parametrize(
    ("runtime", "handler", "path", "error_type", "body"),
    per_runtime(
        [
            pytest.param(
                "result", f"{PREFIX}/invocation/req-1/response", None, {"got": 1}, id="response"
            ),
            pytest.param(
                "type_error",
                f"{PREFIX}/invocation/req-1/error",
                "TypeError",
                {"errorType": "TypeError", "errorMessage": "bad"},
                id="invocation-error",
            ),
            pytest.param(
                "no_handler",
                f"{PREFIX}/init/error",
                "Runtime.HandlerNotFound",
                {
                    "errorType": "Runtime.HandlerNotFound",
                    "errorMessage": ByLanguage(
                        python="Handler 'handler' missing on module 'app'",
                        nodejs="app.handler is undefined or not exported",
                    ),
                },
                id="init-error",
            ),
        ]
    ),
)
def test_what_the_runtime_posts(
    fake_api: FakeRuntimeAPI,
    tmp_path: Path,
    runtime: Runtime,
    handler: str,
    path: str,
    error_type: str | None,
    body: dict[str, Any],
) -> None:
    post = first_post(fake_api, tmp_path, runtime, handler)

    assert post.path == path
    assert post.headers.get("lambda-runtime-function-error-type") == error_type
    if error_type is None:
        assert post.body == body
    else:
        assert {k: post.body[k] for k in ("errorType", "errorMessage")} == body
        assert isinstance(post.body[runtime.trace_key], list)
        assert set(post.body) == runtime.error_keys
