"""A handler's result → the HTTP response API Gateway would send, and API Gateway's own errors.

Request path: ``proxy`` gets the pod's ``InvokeResult`` (the handler's raw payload) and hands it to
``http_response`` together with the Function's event format; ``server`` writes the
``HttpResponse`` (adding its own Content-Length). ``error_response`` gives the ``{"message": …}``
bodies API Gateway answers with when it cannot get an answer at all (429, 503, 504, 413, …).

The rules, per format:

- ``v2`` (HTTP API payload 2.0): a JSON object with ``statusCode`` is a structured response —
  ``statusCode``, ``headers``, ``cookies`` (one ``Set-Cookie`` each), ``body``,
  ``isBase64Encoded``; without Content-Type it is sent as ``text/plain; charset=utf-8``. Any other
  valid JSON (a bare string, number, ``null``, an object without ``statusCode``) is inferred:
  200, ``application/json``, the payload's JSON text as the body. A failed invocation or a
  malformed response is ``500 {"message":"Internal Server Error"}``.
- ``v1`` (REST API Lambda proxy): the payload must be an object with ``statusCode`` and no keys
  but ``headers``, ``multiValueHeaders``, ``body`` and ``isBase64Encoded``; ``headers`` and
  ``multiValueHeaders`` merge (a name/value pair in both is sent once); Content-Type defaults to
  ``application/json``. A failed invocation or malformed response is
  ``502 {"message":"Internal server error"}``. A base64 body is decoded as if the API's
  ``binaryMediaTypes`` covered it (we have no such setting to consult).

In both formats a header whose value is ``null`` is left out (a handler's way to suppress the
default Content-Type); numbers and booleans are sent as text; like API Gateway's own parser we
accept ``"200"`` for ``statusCode`` and ``"true"``/``"false"`` for ``isBase64Encoded``.
Hop-by-hop headers and Content-Length from the handler are dropped: the server frames the
response itself. A header name that is not an HTTP token, a value containing CR, LF or NUL, or a
status outside 100..599 makes the response malformed (no header injection through a handler).
Header values are returned as latin-1 strings: a non-ASCII value is carried as its UTF-8 bytes,
so the server can encode every header with latin-1.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

from lambdalet.api.function import EventFormat
from lambdalet.contracts.invocation import InvokeResult


@dataclass(frozen=True)
class HttpResponse:
    """What the server sends to the client (it adds Content-Length)."""

    status: int
    headers: tuple[tuple[str, str], ...]  # may repeat a name (Set-Cookie, multi-value headers)
    body: bytes


class _Malformed(Exception):
    """The handler's result is not a response API Gateway would accept."""


_JSON = (("Content-Type", "application/json"),)
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "content-length",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    },
)
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_V1_KEYS = frozenset({"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded"})
_V2_DEFAULT_TYPE = "text/plain; charset=utf-8"
_V1_DEFAULT_TYPE = "application/json"


def error_response(status: int, message: str) -> HttpResponse:
    """API Gateway's own error answer: ``status`` with ``{"message":"…"}``."""
    body = json.dumps({"message": message}, separators=(",", ":"), ensure_ascii=False).encode()
    return HttpResponse(status, _JSON, body)


_V2_FAILED = error_response(500, "Internal Server Error")
_V1_FAILED = error_response(502, "Internal server error")


def http_response(result: InvokeResult, fmt: EventFormat) -> HttpResponse:
    """The client's response for a handler's ``result``, as API Gateway maps it for ``fmt``."""
    failed = _V1_FAILED if fmt is EventFormat.V1 else _V2_FAILED
    if result.function_error is not None or result.status != 200:
        return failed
    try:
        payload = json.loads(result.body)
    except (ValueError, RecursionError):  # bad JSON or UTF-8; nesting too deep to parse
        return failed
    try:
        if fmt is EventFormat.V1:
            return _response_v1(payload)
        if isinstance(payload, dict) and "statusCode" in payload:
            return _response_v2(payload)
    except _Malformed:
        return failed
    # v2 inference: valid JSON without statusCode is the body of a 200.
    return HttpResponse(200, _JSON, result.body)


def _response_v2(payload: dict[str, Any]) -> HttpResponse:
    status = _status(payload["statusCode"])
    headers: list[tuple[str, str]] = []
    suppressed = _add_headers(headers, _mapping(payload.get("headers")))
    cookies = payload.get("cookies")
    if cookies is not None:
        if not isinstance(cookies, list):
            raise _Malformed
        for cookie in cookies:
            headers.append(("Set-Cookie", _value(cookie)))
    if not suppressed and not _has_content_type(headers):
        headers.append(("Content-Type", _V2_DEFAULT_TYPE))
    return HttpResponse(status, tuple(headers), _body(payload))


def _response_v1(payload: Any) -> HttpResponse:
    if not isinstance(payload, dict) or "statusCode" not in payload or payload.keys() - _V1_KEYS:
        raise _Malformed
    status = _status(payload["statusCode"])
    headers: list[tuple[str, str]] = []
    multi = _mapping(payload.get("multiValueHeaders"))
    suppressed = False
    sent: set[tuple[str, str]] = set()  # (lower-cased name, value) pairs from multiValueHeaders
    for name, values in multi.items():
        if values is None:
            suppressed |= name.lower() == "content-type"
            continue
        if not isinstance(values, list):
            raise _Malformed
        for value in values:
            if value is not None:
                before = len(headers)
                _add_header(headers, name, value)
                if len(headers) > before:
                    sent.add((name.lower(), headers[-1][1]))
    for name, value in _mapping(payload.get("headers")).items():
        if value is None:
            suppressed |= name.lower() == "content-type"
        elif (name.lower(), _value(value)) not in sent:
            _add_header(headers, name, value)
    if not suppressed and not _has_content_type(headers):
        headers.append(("Content-Type", _V1_DEFAULT_TYPE))
    return HttpResponse(status, tuple(headers), _body(payload))


def _status(value: Any) -> int:
    """``statusCode``: an integer (or a string of digits) in 100..599."""
    if isinstance(value, bool):
        raise _Malformed
    if isinstance(value, str) and value.isdigit() and value.isascii():
        value = int(value)
    if not isinstance(value, int) or not 100 <= value <= 599:
        raise _Malformed
    return value


def _mapping(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _Malformed
    return value


def _add_headers(headers: list[tuple[str, str]], given: dict[str, Any]) -> bool:
    """Append ``given``'s headers; True when Content-Type was suppressed with ``null``."""
    suppressed = False
    for name, value in given.items():
        if value is None:
            suppressed |= name.lower() == "content-type"
        else:
            _add_header(headers, name, value)
    return suppressed


def _add_header(headers: list[tuple[str, str]], name: str, value: Any) -> None:
    if not _TOKEN.fullmatch(name):
        raise _Malformed
    text = _value(value)
    if name.lower() not in _HOP_BY_HOP:
        headers.append((name, text))


def _value(value: Any) -> str:
    """A header value as wire text: strings as is, numbers and booleans as JSON writes them."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int | float):
        text = str(value)
    else:
        raise _Malformed
    if "\r" in text or "\n" in text or "\0" in text:
        raise _Malformed
    if not text.isascii():
        text = text.encode("utf-8", "replace").decode("latin-1")
    return text


def _has_content_type(headers: list[tuple[str, str]]) -> bool:
    return any(name.lower() == "content-type" for name, _ in headers)


def _body(payload: dict[str, Any]) -> bytes:
    body = payload.get("body")
    if body is None:
        return b""
    if not isinstance(body, str):
        raise _Malformed
    encoded = payload.get("isBase64Encoded")
    if encoded is None or encoded is False or encoded == "false":
        return body.encode("utf-8", "replace")  # "replace": a lone surrogate from a "\ud800"
    if encoded is not True and encoded != "true":
        raise _Malformed
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _Malformed from exc
