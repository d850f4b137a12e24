"""Client of the Lambda Runtime API (version 2018-06-01) that the agent serves on 127.0.0.1.

``next`` long-polls for an invocation (no timeout: it returns when there is work), ``respond`` /
``fail`` answer it, ``init_error`` reports a failed init. It speaks HTTP/1.1 over one keep-alive
socket itself: http.client would add about 20 ms of imports (email, ssl) to every cold start,
and the agent's answers are simple (always a Content-Length, never chunked).
"""

from __future__ import annotations

import json
import socket
import sys
from typing import Any, BinaryIO, NamedTuple

PREFIX = "/2018-06-01/runtime"


class Invocation(NamedTuple):
    """An invocation as ``GET /runtime/invocation/next`` hands it over."""

    request_id: str
    deadline_ms: int
    invoked_function_arn: str
    trace_id: str | None
    client_context: str | None  # JSON
    cognito_identity: str | None  # JSON
    body: bytes


class RuntimeAPIError(Exception):
    """The Runtime API answered in a way this client does not understand."""


class Reply(NamedTuple):
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes


class RuntimeAPI:
    def __init__(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        self._address = (host, int(port))
        self._sock: socket.socket | None = None
        self._reader: BinaryIO | None = None

    def next(self) -> Invocation:
        reply = self._request("GET", f"{PREFIX}/invocation/next")
        if reply.status != 200:
            raise RuntimeAPIError(f"GET /invocation/next answered {reply.status}: {reply.body!r}")
        headers = reply.headers
        return Invocation(
            request_id=headers["lambda-runtime-aws-request-id"],
            deadline_ms=int(headers.get("lambda-runtime-deadline-ms", "0")),
            invoked_function_arn=headers.get("lambda-runtime-invoked-function-arn", ""),
            trace_id=headers.get("lambda-runtime-trace-id"),
            client_context=headers.get("lambda-runtime-client-context"),
            cognito_identity=headers.get("lambda-runtime-cognito-identity"),
            body=reply.body,
        )

    def respond(self, request_id: str, payload: bytes) -> None:
        self._post(f"{PREFIX}/invocation/{request_id}/response", payload, {})

    def fail(self, request_id: str, error: dict[str, Any]) -> None:
        self._post_error(f"{PREFIX}/invocation/{request_id}/error", error)

    def init_error(self, error: dict[str, Any]) -> None:
        self._post_error(f"{PREFIX}/init/error", error)

    def _post_error(self, path: str, error: dict[str, Any]) -> None:
        body = json.dumps(error, ensure_ascii=False).encode("utf-8", "backslashreplace")
        self._post(path, body, {"Lambda-Runtime-Function-Error-Type": str(error["errorType"])})

    def _post(self, path: str, body: bytes, headers: dict[str, str]) -> None:
        reply = self._request("POST", path, body, headers)
        if reply.status != 202:
            # The invocation has already ended (a payload too large, say): the agent has
            # answered its caller; this runtime goes on to the next one.
            text = reply.body.decode("utf-8", "replace")
            print(
                f"lambdalet runtime: POST {path} answered {reply.status}: {text}", file=sys.stderr
            )

    def _request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Reply:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self._address[0]}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        lines.append(f"Content-Length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        for attempt in (1, 2):
            try:
                sock, reader = self._connection()
                sock.sendall(head + body)  # one write; copying even 6 MB takes about 1 ms
                return self._read_reply(reader)
            except (ConnectionError, EOFError):
                # A keep-alive connection the agent closed: one fresh try.
                self._close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _connection(self) -> tuple[socket.socket, BinaryIO]:
        if self._sock is None or self._reader is None:
            self._sock = socket.create_connection(self._address)
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._reader = self._sock.makefile("rb")
        return self._sock, self._reader

    def _close(self) -> None:
        if self._reader is not None:
            self._reader.close()
        if self._sock is not None:
            self._sock.close()
        self._sock = self._reader = None

    def _read_reply(self, reader: BinaryIO) -> Reply:
        status_line = reader.readline()
        if not status_line:
            raise EOFError("the Runtime API closed the connection")
        try:
            status = int(status_line.split()[1])
        except (IndexError, ValueError) as exc:
            raise RuntimeAPIError(f"bad status line {status_line!r}") from exc
        headers = {}
        while (line := reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("utf-8", "replace").partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = reader.read(int(headers["content-length"]))
        elif "chunked" in headers.get("transfer-encoding", ""):
            raise RuntimeAPIError("chunked answers are not expected from the agent")
        else:
            body = reader.read()  # until the agent closes the connection
            self._close()
        if headers.get("connection", "").lower() == "close":
            self._close()
        return Reply(status, headers, body)
