"""HTTP request → the event API Gateway would send, so Lambda code behind API Gateway runs as is.

Request path: ``server`` parses a client's request into an ``HttpRequest``, ``routes`` decides the
``Route``; ``build_event`` (here) turns both into the JSON a handler receives; ``proxy`` invokes
the function with it, and ``responses.http_response`` shapes the handler's answer back.

Two shapes, chosen per Function (``spec.http.eventFormat``):

- ``v2``: HTTP API payload format 2.0 (``version``, ``rawPath``, ``cookies``, lower-cased
  ``headers`` with repeats joined by ``,``, ``requestContext.http``…); empty parts are omitted.
- ``v1``: REST API Lambda proxy integration on a ``/{proxy+}`` resource (``resource``, ``path``,
  ``httpMethod``, ``headers`` + ``multiValueHeaders``, ``queryStringParameters`` +
  ``multiValueQueryStringParameters``…); empty parts are ``null``.

Where API Gateway's own behaviour is unhelpful or depends on settings we do not have, we choose:

- Paths stay percent-encoded, as received (REST APIs and Lambda function URLs do this; HTTP APIs
  decode ``rawPath``, which makes ``/a%2Fb`` and ``/a/b`` indistinguishable).
- Query parameters are decoded (``%XX`` and ``+`` → space) as both API kinds do; a key without
  ``=`` gets ``""``.
- Request body, ``v2``: text when the media type is ``text/*``, ``application/json``,
  ``application/xml`` or ``application/javascript`` (the set HTTP APIs pass as text; everything
  else, a missing Content-Type and form-urlencoded included, arrives base64-encoded with
  ``isBase64Encoded: true``) and the bytes are valid UTF-8.
- Request body, ``v1``: text whenever the bytes are valid UTF-8 (a REST API without
  ``binaryMediaTypes``), else base64 (as if ``binaryMediaTypes`` covered it, rather than
  corrupting binary data).
- Header values arrive latin-1 decoded; a non-ASCII value that is valid UTF-8 is re-decoded as
  UTF-8, so handlers see the characters the client sent.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import unquote_plus

from lambdalet.activator.responses import HttpResponse, error_response, http_response
from lambdalet.api.function import EventFormat
from lambdalet.contracts.keys import Key

__all__ = [
    "ACCOUNT_ID",
    "HttpRequest",
    "HttpResponse",
    "Route",
    "api_id",
    "build_event",
    "error_response",
    "http_response",
]

# Handlers sometimes log or parse these; a fixed, obviously fake account keeps them well-formed.
ACCOUNT_ID = "000000000000"

_TEXT_MEDIA_TYPES = frozenset(
    {"application/json", "application/xml", "application/javascript"},
)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class HttpRequest:
    """A client's request as the activator's HTTP server received it."""

    method: str  # "GET"
    path: str  # raw (percent-encoded) path, no query: "/fn/team/hello/items/1"
    query: str  # raw query string without "?", may be ""
    headers: tuple[tuple[str, str], ...]  # in order, names in original case, latin-1 decoded
    body: bytes
    source_ip: str
    protocol: str = "HTTP/1.1"


@dataclass(frozen=True)
class Route:
    """Where the router sent a request, and the part of it the function sees."""

    key: Key  # (namespace, name)
    raw_path: str  # the function's path: "/items/1" for /fn/team/hello/items/1, "/" when empty
    domain_name: str  # Host header value without port, or "localhost"
    stage: str = "$default"


def build_event(
    request: HttpRequest, route: Route, fmt: EventFormat, *, request_id: str, now_ms: int
) -> bytes:
    """The JSON event (UTF-8 bytes) for ``request`` in format ``fmt``; ``now_ms`` is epoch ms."""
    if fmt is EventFormat.V1:
        event = _event_v1(request, route, request_id, now_ms)
    else:
        event = _event_v2(request, route, request_id, now_ms)
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


@lru_cache(maxsize=4096)
def api_id(key: Key) -> str:
    """A stable, API-id-like name for a function: 10 lowercase base32 characters of a hash.

    ``namespace/name`` is unambiguous: Kubernetes names cannot contain ``/``.
    """
    digest = hashlib.blake2s(f"{key[0]}/{key[1]}".encode(), digest_size=10).digest()
    return base64.b32encode(digest).decode("ascii")[:10].lower()


def _event_v2(request: HttpRequest, route: Route, request_id: str, now_ms: int) -> dict[str, Any]:
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for raw_name, raw_value in request.headers:
        name = raw_name.lower()
        value = _header_text(raw_value)
        if name == "cookie":
            cookies.extend(c for c in (part.strip() for part in value.split(";")) if c)
            continue
        previous = headers.get(name)
        headers[name] = value if previous is None else f"{previous},{value}"

    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": route.raw_path,
        "rawQueryString": request.query,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = headers
    if request.query:
        params = {key: ",".join(values) for key, values in _parse_query(request.query).items()}
        if params:
            event["queryStringParameters"] = params
    event["requestContext"] = {
        "accountId": ACCOUNT_ID,
        "apiId": api_id(route.key),
        "domainName": route.domain_name,
        "domainPrefix": route.domain_name.split(".", 1)[0],
        "http": {
            "method": request.method,
            "path": route.raw_path,
            "protocol": request.protocol,
            "sourceIp": request.source_ip,
            "userAgent": headers.get("user-agent", ""),
        },
        "requestId": request_id,
        "routeKey": "$default",
        "stage": route.stage,
        "time": clf_time(now_ms),
        "timeEpoch": now_ms,
    }
    if request.body:
        body, encoded = _body_v2(request.body, headers.get("content-type", ""))
        event["body"] = body
        event["isBase64Encoded"] = encoded
    else:
        event["isBase64Encoded"] = False
    return event


def _event_v1(request: HttpRequest, route: Route, request_id: str, now_ms: int) -> dict[str, Any]:
    headers: dict[str, str] = {}
    multi_headers: dict[str, list[str]] = {}
    spelling: dict[str, str] = {}  # lower-cased name → first spelling seen (names are one key)
    for raw_name, raw_value in request.headers:
        name = spelling.setdefault(raw_name.lower(), raw_name)
        value = _header_text(raw_value)
        headers[name] = value  # the last value, as API Gateway does
        multi_headers.setdefault(name, []).append(value)
    multi_query = _parse_query(request.query) if request.query else {}
    user_agent = headers.get(spelling.get("user-agent", "User-Agent"))
    # A {proxy+} resource matches one segment or more; "/" is the API's root resource.
    proxy = route.raw_path[1:] if route.raw_path.startswith("/") else route.raw_path
    resource = "/{proxy+}" if proxy else "/"
    body: str | None = None
    encoded = False
    if request.body:
        body, encoded = _body_v1(request.body)
    identity = dict.fromkeys(_IDENTITY_NULLS)
    identity["sourceIp"] = request.source_ip
    identity["userAgent"] = user_agent
    return {
        "resource": resource,
        "path": route.raw_path,
        "httpMethod": request.method,
        "headers": headers or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": {"proxy": proxy} if proxy else None,
        "stageVariables": None,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": api_id(route.key),
            "domainName": route.domain_name,
            "domainPrefix": route.domain_name.split(".", 1)[0],
            "extendedRequestId": request_id,
            "httpMethod": request.method,
            "identity": identity,
            "path": request.path,  # the full path the client used, like the stage-prefixed one
            "protocol": request.protocol,
            "requestId": request_id,
            "requestTime": clf_time(now_ms),
            "requestTimeEpoch": now_ms,
            "resourceId": api_id(route.key)[:6],
            "resourcePath": resource,
            "stage": route.stage,
        },
        "body": body,
        "isBase64Encoded": encoded,
    }


_IDENTITY_NULLS = (
    "accessKey",
    "accountId",
    "apiKey",
    "apiKeyId",
    "caller",
    "cognitoAuthenticationProvider",
    "cognitoAuthenticationType",
    "cognitoIdentityId",
    "cognitoIdentityPoolId",
    "principalOrgId",
    "sourceIp",
    "user",
    "userAgent",
    "userArn",
)


def clf_time(now_ms: int) -> str:
    """Epoch milliseconds as API Gateway's request time: ``12/Mar/2020:19:03:58 +0000``.

    Built by hand: ``strftime("%b")`` follows the process locale. Cached per second: every
    request in the same second has the same time.
    """
    return _clf_seconds(now_ms // 1000)


@functools.lru_cache(maxsize=4)
def _clf_seconds(seconds: int) -> str:
    t = time.gmtime(seconds)
    return (
        f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:"
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"
    )


def _parse_query(query: str) -> dict[str, list[str]]:
    """``a=1&a=2&b`` → ``{"a": ["1", "2"], "b": [""]}``, keys and values decoded, order kept."""
    params: dict[str, list[str]] = {}
    for pair in query.split("&"):
        if not pair:
            continue
        key, _, value = pair.partition("=")
        if "%" in key or "+" in key:
            key = unquote_plus(key)
        if "%" in value or "+" in value:
            value = unquote_plus(value)
        params.setdefault(key, []).append(value)
    return params


def _header_text(value: str) -> str:
    """A latin-1 decoded header value, re-decoded as UTF-8 when its bytes are UTF-8."""
    if value.isascii():
        return value
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


def _body_v2(body: bytes, content_type: str) -> tuple[str, bool]:
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type.startswith("text/") or media_type in _TEXT_MEDIA_TYPES:
        try:
            return body.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(body).decode("ascii"), True


def _body_v1(body: bytes) -> tuple[str, bool]:
    try:
        return body.decode("utf-8"), False
    except UnicodeDecodeError:
        return base64.b64encode(body).decode("ascii"), True
