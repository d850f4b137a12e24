"""Request → API Gateway event: every field of the v2 (HTTP API 2.0) and v1 (REST proxy) shapes."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import replace
from typing import Any

import pytest

from lambdalet.activator.events import (
    ACCOUNT_ID,
    HttpRequest,
    Route,
    api_id,
    build_event,
    clf_time,
)
from lambdalet.api.function import EventFormat

V1 = EventFormat.V1
V2 = EventFormat.V2
NOW_MS = 1583348638390  # 04/Mar/2020:19:03:58.390 UTC
ABSENT = object()  # the key is not in the event at all

BASE = HttpRequest(
    method="GET",
    path="/fn/team/hello/items/1",
    query="",
    headers=(("Host", "fn.example.com:8080"), ("User-Agent", "curl/8.5"), ("Accept", "*/*")),
    body=b"",
    source_ip="10.1.2.3",
)
ROUTE = Route(key=("team", "hello"), raw_path="/items/1", domain_name="fn.example.com")


def event(
    fmt: EventFormat,
    request: HttpRequest = BASE,
    route: Route = ROUTE,
    now_ms: int = NOW_MS,
) -> dict[str, Any]:
    built = build_event(request, route, fmt, request_id="req-1", now_ms=now_ms)
    assert isinstance(built, bytes)
    parsed: dict[str, Any] = json.loads(built)
    return parsed


def at(document: dict[str, Any], path: str) -> Any:
    """``at(e, "requestContext.http.method")``; ABSENT when a key on the way is missing."""
    node: Any = document
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return ABSENT
        node = node[key]
    return node


def with_headers(*headers: tuple[str, str], body: bytes = b"", query: str = "") -> HttpRequest:
    return replace(BASE, headers=headers, body=body, query=query)


def post(content_type: str | None, body: bytes) -> HttpRequest:
    headers = (("Host", "h"),) if content_type is None else (("Content-Type", content_type),)
    return replace(BASE, method="POST", headers=headers, body=body)


# Each row: request (and route), a dotted path into the event, the value expected there.
V2_FIELDS = [
    pytest.param(BASE, ROUTE, "version", "2.0", id="version"),
    pytest.param(BASE, ROUTE, "routeKey", "$default", id="route-key"),
    pytest.param(BASE, ROUTE, "rawPath", "/items/1", id="raw-path-is-the-function-path"),
    pytest.param(
        BASE,
        replace(ROUTE, raw_path="/a%2Fb/%E2%82%AC"),
        "rawPath",
        "/a%2Fb/%E2%82%AC",
        id="raw-path-stays-percent-encoded",
    ),
    pytest.param(BASE, ROUTE, "rawQueryString", "", id="raw-query-empty"),
    pytest.param(
        replace(BASE, query="a=1&b=x%20y+z"),
        ROUTE,
        "rawQueryString",
        "a=1&b=x%20y+z",
        id="raw-query-as-received",
    ),
    pytest.param(BASE, ROUTE, "cookies", ABSENT, id="no-cookies-omitted"),
    pytest.param(
        with_headers(("Cookie", "a=1; b=2")), ROUTE, "cookies", ["a=1", "b=2"], id="cookies-split"
    ),
    pytest.param(
        with_headers(("Cookie", "a=1"), ("cookie", "b=2; c=3")),
        ROUTE,
        "cookies",
        ["a=1", "b=2", "c=3"],
        id="cookies-from-every-cookie-header",
    ),
    pytest.param(
        with_headers(("Cookie", " a=1;;b=2 ; ")),
        ROUTE,
        "cookies",
        ["a=1", "b=2"],
        id="cookies-empty-parts-dropped",
    ),
    pytest.param(
        with_headers(("Cookie", "a=1"), ("X-A", "1")),
        ROUTE,
        "headers",
        {"x-a": "1"},
        id="cookie-not-in-headers",
    ),
    pytest.param(
        BASE,
        ROUTE,
        "headers",
        {"host": "fn.example.com:8080", "user-agent": "curl/8.5", "accept": "*/*"},
        id="headers-lower-cased",
    ),
    pytest.param(
        with_headers(("X-Many", "1"), ("Other", "o"), ("x-many", "2, 3")),
        ROUTE,
        "headers",
        {"x-many": "1,2, 3", "other": "o"},
        id="repeated-headers-joined-with-comma",
    ),
    pytest.param(
        with_headers(("X-Name", "w\xc3\xb6rld \xe2\x82\xac")),
        ROUTE,
        "headers.x-name",
        "wörld €",
        id="utf8-header-value-redecoded",
    ),
    pytest.param(
        with_headers(("X-Name", "caf\xe9")),
        ROUTE,
        "headers.x-name",
        "caf\xe9",
        id="latin1-header-value-kept",
    ),
    pytest.param(with_headers(), ROUTE, "headers", {}, id="no-headers-empty-map"),
    pytest.param(BASE, ROUTE, "queryStringParameters", ABSENT, id="no-query-omitted"),
    pytest.param(
        replace(BASE, query="&&"), ROUTE, "queryStringParameters", ABSENT, id="empty-pairs-omitted"
    ),
    pytest.param(
        replace(BASE, query="a=1&a=2&b=3"),
        ROUTE,
        "queryStringParameters",
        {"a": "1,2", "b": "3"},
        id="repeated-query-keys-joined",
    ),
    pytest.param(
        replace(BASE, query="q=x%20y+z&%C3%A9t%C3%A9=%E2%82%AC&k%5B%5D=%26%3D"),
        ROUTE,
        "queryStringParameters",
        {"q": "x y z", "été": "€", "k[]": "&="},
        id="query-percent-and-plus-decoded",
    ),
    pytest.param(
        replace(BASE, query="flag&e=&x=a=b"),
        ROUTE,
        "queryStringParameters",
        {"flag": "", "e": "", "x": "a=b"},
        id="query-blank-and-embedded-equals",
    ),
    pytest.param(BASE, ROUTE, "requestContext.accountId", ACCOUNT_ID, id="account-id"),
    pytest.param(BASE, ROUTE, "requestContext.apiId", api_id(("team", "hello")), id="api-id"),
    pytest.param(BASE, ROUTE, "requestContext.domainName", "fn.example.com", id="domain-name"),
    pytest.param(BASE, ROUTE, "requestContext.domainPrefix", "fn", id="domain-prefix"),
    pytest.param(
        BASE,
        replace(ROUTE, domain_name="localhost"),
        "requestContext.domainPrefix",
        "localhost",
        id="domain-prefix-single-label",
    ),
    pytest.param(
        replace(BASE, method="PATCH"), ROUTE, "requestContext.http.method", "PATCH", id="method"
    ),
    pytest.param(BASE, ROUTE, "requestContext.http.path", "/items/1", id="http-path"),
    pytest.param(
        replace(BASE, protocol="HTTP/1.0"),
        ROUTE,
        "requestContext.http.protocol",
        "HTTP/1.0",
        id="protocol",
    ),
    pytest.param(BASE, ROUTE, "requestContext.http.sourceIp", "10.1.2.3", id="source-ip"),
    pytest.param(BASE, ROUTE, "requestContext.http.userAgent", "curl/8.5", id="user-agent"),
    pytest.param(
        with_headers(), ROUTE, "requestContext.http.userAgent", "", id="user-agent-missing"
    ),
    pytest.param(BASE, ROUTE, "requestContext.requestId", "req-1", id="request-id"),
    pytest.param(BASE, ROUTE, "requestContext.routeKey", "$default", id="context-route-key"),
    pytest.param(BASE, ROUTE, "requestContext.stage", "$default", id="stage-default"),
    pytest.param(
        BASE, replace(ROUTE, stage="prod"), "requestContext.stage", "prod", id="stage-given"
    ),
    pytest.param(
        BASE, ROUTE, "requestContext.time", "04/Mar/2020:19:03:58 +0000", id="time-clf-format"
    ),
    pytest.param(BASE, ROUTE, "requestContext.timeEpoch", NOW_MS, id="time-epoch-ms"),
    pytest.param(BASE, ROUTE, "body", ABSENT, id="no-body-omitted"),
    pytest.param(BASE, ROUTE, "isBase64Encoded", False, id="no-body-not-encoded"),
    pytest.param(BASE, ROUTE, "pathParameters", ABSENT, id="path-parameters-omitted"),
    pytest.param(BASE, ROUTE, "stageVariables", ABSENT, id="stage-variables-omitted"),
]


@pytest.mark.parametrize(("request_", "route", "path", "expected"), V2_FIELDS)
def test_v2_field(request_: HttpRequest, route: Route, path: str, expected: Any) -> None:
    assert at(event(V2, request_, route), path) == expected


V1_FIELDS = [
    pytest.param(BASE, ROUTE, "resource", "/{proxy+}", id="resource"),
    pytest.param(BASE, ROUTE, "path", "/items/1", id="path-is-the-function-path"),
    pytest.param(
        BASE,
        replace(ROUTE, raw_path="/a%2Fb"),
        "path",
        "/a%2Fb",
        id="path-stays-percent-encoded",
    ),
    pytest.param(replace(BASE, method="DELETE"), ROUTE, "httpMethod", "DELETE", id="http-method"),
    pytest.param(
        with_headers(("X-Many", "1"), ("Cookie", "a=1; b=2"), ("x-many", "2")),
        ROUTE,
        "headers",
        {"X-Many": "2", "Cookie": "a=1; b=2"},
        id="headers-original-case-last-value-cookie-kept",
    ),
    pytest.param(
        with_headers(("X-Many", "1"), ("Cookie", "a=1; b=2"), ("x-many", "2")),
        ROUTE,
        "multiValueHeaders",
        {"X-Many": ["1", "2"], "Cookie": ["a=1; b=2"]},
        id="multi-value-headers",
    ),
    pytest.param(
        with_headers(("X-Name", "w\xc3\xb6rld")),
        ROUTE,
        "headers.X-Name",
        "wörld",
        id="utf8-header-value-redecoded",
    ),
    pytest.param(with_headers(), ROUTE, "headers", None, id="no-headers-null"),
    pytest.param(with_headers(), ROUTE, "multiValueHeaders", None, id="no-multi-headers-null"),
    pytest.param(BASE, ROUTE, "queryStringParameters", None, id="no-query-null"),
    pytest.param(BASE, ROUTE, "multiValueQueryStringParameters", None, id="no-multi-query-null"),
    pytest.param(
        replace(BASE, query="a=1&a=2&b=x+y%21"),
        ROUTE,
        "queryStringParameters",
        {"a": "2", "b": "x y!"},
        id="query-last-value-decoded",
    ),
    pytest.param(
        replace(BASE, query="a=1&a=2&b=x+y%21"),
        ROUTE,
        "multiValueQueryStringParameters",
        {"a": ["1", "2"], "b": ["x y!"]},
        id="multi-value-query",
    ),
    pytest.param(BASE, ROUTE, "pathParameters", {"proxy": "items/1"}, id="proxy-path-parameter"),
    pytest.param(BASE, replace(ROUTE, raw_path="/"), "resource", "/", id="root-resource"),
    pytest.param(BASE, replace(ROUTE, raw_path="/"), "pathParameters", None, id="root-no-proxy"),
    pytest.param(
        BASE,
        replace(ROUTE, raw_path="/"),
        "requestContext.resourcePath",
        "/",
        id="root-resource-path",
    ),
    pytest.param(BASE, ROUTE, "stageVariables", None, id="stage-variables-null"),
    pytest.param(BASE, ROUTE, "requestContext.accountId", ACCOUNT_ID, id="account-id"),
    pytest.param(BASE, ROUTE, "requestContext.apiId", api_id(("team", "hello")), id="api-id"),
    pytest.param(BASE, ROUTE, "requestContext.domainName", "fn.example.com", id="domain-name"),
    pytest.param(BASE, ROUTE, "requestContext.domainPrefix", "fn", id="domain-prefix"),
    pytest.param(BASE, ROUTE, "requestContext.extendedRequestId", "req-1", id="extended-id"),
    pytest.param(BASE, ROUTE, "requestContext.httpMethod", "GET", id="context-method"),
    pytest.param(BASE, ROUTE, "requestContext.identity.sourceIp", "10.1.2.3", id="source-ip"),
    pytest.param(BASE, ROUTE, "requestContext.identity.userAgent", "curl/8.5", id="user-agent"),
    pytest.param(
        with_headers(("user-agent", "lower/1")),
        ROUTE,
        "requestContext.identity.userAgent",
        "lower/1",
        id="user-agent-any-case",
    ),
    pytest.param(
        with_headers(), ROUTE, "requestContext.identity.userAgent", None, id="user-agent-missing"
    ),
    pytest.param(BASE, ROUTE, "requestContext.identity.caller", None, id="identity-caller-null"),
    pytest.param(
        BASE, ROUTE, "requestContext.path", "/fn/team/hello/items/1", id="context-full-path"
    ),
    pytest.param(BASE, ROUTE, "requestContext.protocol", "HTTP/1.1", id="protocol"),
    pytest.param(BASE, ROUTE, "requestContext.requestId", "req-1", id="request-id"),
    pytest.param(
        BASE, ROUTE, "requestContext.requestTime", "04/Mar/2020:19:03:58 +0000", id="request-time"
    ),
    pytest.param(BASE, ROUTE, "requestContext.requestTimeEpoch", NOW_MS, id="request-epoch"),
    pytest.param(BASE, ROUTE, "requestContext.resourcePath", "/{proxy+}", id="resource-path"),
    pytest.param(
        BASE, replace(ROUTE, stage="test"), "requestContext.stage", "test", id="stage-given"
    ),
    pytest.param(BASE, ROUTE, "body", None, id="no-body-null"),
    pytest.param(BASE, ROUTE, "isBase64Encoded", False, id="no-body-not-encoded"),
    pytest.param(BASE, ROUTE, "version", ABSENT, id="no-version"),
]


@pytest.mark.parametrize(("request_", "route", "path", "expected"), V1_FIELDS)
def test_v1_field(request_: HttpRequest, route: Route, path: str, expected: Any) -> None:
    assert at(event(V1, request_, route), path) == expected


JSON_TEXT = '{"name":"wörld €"}'.encode()
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
LATIN1 = "café".encode("latin-1")  # not valid UTF-8


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# content type, body → (v2 body, v2 isBase64Encoded), (v1 body, v1 isBase64Encoded)
BODIES = [
    pytest.param(
        "application/json",
        JSON_TEXT,
        (JSON_TEXT.decode(), False),
        (JSON_TEXT.decode(), False),
        id="json-unicode-text",
    ),
    pytest.param(
        "Application/JSON; charset=UTF-8",
        b"{}",
        ("{}", False),
        ("{}", False),
        id="json-any-case-with-charset",
    ),
    pytest.param("text/plain", b"hi", ("hi", False), ("hi", False), id="text-plain"),
    pytest.param("text/html", b"<p>", ("<p>", False), ("<p>", False), id="text-html"),
    pytest.param("application/xml", b"<a/>", ("<a/>", False), ("<a/>", False), id="xml"),
    pytest.param("application/javascript", b"f()", ("f()", False), ("f()", False), id="javascript"),
    pytest.param(
        "application/x-www-form-urlencoded",
        b"a=1&b=2",
        (b64(b"a=1&b=2"), True),
        ("a=1&b=2", False),
        id="form-base64-in-v2-text-in-v1",
    ),
    pytest.param(
        None, b"plain", (b64(b"plain"), True), ("plain", False), id="no-content-type-v2-base64"
    ),
    pytest.param("application/octet-stream", PNG, (b64(PNG), True), (b64(PNG), True), id="binary"),
    pytest.param("image/png", PNG, (b64(PNG), True), (b64(PNG), True), id="image"),
    pytest.param(
        "multipart/form-data; boundary=x",
        b"--x--",
        (b64(b"--x--"), True),
        ("--x--", False),
        id="multipart",
    ),
    pytest.param(
        "text/plain; charset=iso-8859-1",
        LATIN1,
        (b64(LATIN1), True),
        (b64(LATIN1), True),
        id="text-not-utf8-base64",
    ),
]


@pytest.mark.parametrize(("content_type", "body", "v2", "v1"), BODIES)
def test_request_body(
    content_type: str | None,
    body: bytes,
    v2: tuple[str, bool],
    v1: tuple[str, bool],
) -> None:
    request = post(content_type, body)
    v2_event = event(V2, request)
    v1_event = event(V1, request)
    assert (v2_event["body"], v2_event["isBase64Encoded"]) == v2
    assert (v1_event["body"], v1_event["isBase64Encoded"]) == v1


@pytest.mark.parametrize("fmt", [V2, V1])
@pytest.mark.parametrize(
    "data",
    [
        pytest.param(bytes(range(256)), id="every-byte"),
        pytest.param(b"\x00", id="nul-valid-utf8"),
        pytest.param("€ ü".encode(), id="utf8-text"),
        pytest.param(b"\xff\xfe\xfd", id="invalid-utf8"),
        pytest.param(PNG * 100, id="larger"),
    ],
)
def test_body_round_trip(fmt: EventFormat, data: bytes) -> None:
    """Whatever the encoding chosen, a handler that honours isBase64Encoded gets the bytes back."""
    built = event(fmt, post("application/octet-stream", data))
    if built["isBase64Encoded"]:
        assert base64.b64decode(built["body"], validate=True) == data
    else:
        assert fmt is V1  # v2 always base64-encodes octet-stream
        assert built["body"].encode() == data


@pytest.mark.parametrize("fmt", [V2, V1])
def test_event_is_compact_utf8_json(fmt: EventFormat) -> None:
    request = replace(post("application/json", JSON_TEXT), query="q=%C3%A9")
    built = build_event(request, ROUTE, fmt, request_id="req-1", now_ms=NOW_MS)
    compact = json.dumps(json.loads(built), separators=(",", ":"), ensure_ascii=False).encode()
    assert built == compact
    assert "wörld €".encode() in built  # raw UTF-8, not \u escapes
    assert b"\\u" not in built


@pytest.mark.parametrize(
    ("now_ms", "text"),
    [
        pytest.param(0, "01/Jan/1970:00:00:00 +0000", id="epoch"),
        pytest.param(NOW_MS, "04/Mar/2020:19:03:58 +0000", id="milliseconds-truncated"),
        pytest.param(86_399_999, "01/Jan/1970:23:59:59 +0000", id="last-ms-of-a-day"),
        pytest.param(1_703_980_800_000, "31/Dec/2023:00:00:00 +0000", id="december"),
        pytest.param(1_709_164_805_000, "29/Feb/2024:00:00:05 +0000", id="leap-day"),
    ],
)
def test_clf_time(now_ms: int, text: str) -> None:
    assert clf_time(now_ms) == text


@pytest.mark.parametrize(
    ("key", "other"),
    [
        pytest.param(("team", "hello"), ("team", "hello2"), id="name-differs"),
        pytest.param(("team", "hello"), ("team2", "hello"), id="namespace-differs"),
    ],
)
def test_api_id_stable_and_distinct(key: tuple[str, str], other: tuple[str, str]) -> None:
    assert re.fullmatch(r"[a-z2-7]{10}", api_id(key))
    assert api_id(key) == api_id((key[0], key[1]))  # same key, new tuple: same id
    assert api_id(key) != api_id(other)


def test_api_id_known_value() -> None:
    # Pinned: a changed derivation would change every function's apiId between releases.
    assert api_id(("team", "hello")) == "d5qzwuolom"


@pytest.mark.parametrize(
    ("fmt", "keys"),
    [
        pytest.param(
            V2,
            {
                "version",
                "routeKey",
                "rawPath",
                "rawQueryString",
                "headers",
                "requestContext",
                "isBase64Encoded",
            },
            id="v2-minimal",
        ),
        pytest.param(
            V1,
            {
                "resource",
                "path",
                "httpMethod",
                "headers",
                "multiValueHeaders",
                "queryStringParameters",
                "multiValueQueryStringParameters",
                "pathParameters",
                "stageVariables",
                "requestContext",
                "body",
                "isBase64Encoded",
            },
            id="v1-always-every-key",
        ),
    ],
)
def test_top_level_keys(fmt: EventFormat, keys: set[str]) -> None:
    assert set(event(fmt)) == keys
