"""Handler result → HTTP response, as API Gateway maps v2 (HTTP API 2.0) and v1 (REST proxy)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from lambdalet.activator.responses import HttpResponse, error_response, http_response
from lambdalet.api.function import EventFormat
from lambdalet.contracts.invocation import InvokeResult

V1 = EventFormat.V1
V2 = EventFormat.V2
JSON = ("Content-Type", "application/json")
TEXT = ("Content-Type", "text/plain; charset=utf-8")
V2_FAILED = HttpResponse(500, (JSON,), b'{"message":"Internal Server Error"}')
V1_FAILED = HttpResponse(502, (JSON,), b'{"message":"Internal server error"}')
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"


def payload(value: Any) -> bytes:
    """A handler's result as its runtime serialises it (raw bytes are passed through)."""
    return value if isinstance(value, bytes) else json.dumps(value).encode()


def respond(
    value: Any, fmt: EventFormat, *, status: int = 200, function_error: str | None = None
) -> HttpResponse:
    result = InvokeResult(
        status=status, body=payload(value), request_id="req-1", function_error=function_error
    )
    return http_response(result, fmt)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


V2_STRUCTURED = [
    pytest.param(
        {"statusCode": 201, "body": "hi"}, HttpResponse(201, (TEXT,), b"hi"), id="default-type"
    ),
    pytest.param(
        {"statusCode": 200, "headers": {"Content-Type": "text/html"}, "body": "<p>"},
        HttpResponse(200, (("Content-Type", "text/html"),), b"<p>"),
        id="content-type-given",
    ),
    pytest.param(
        {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": "{}"},
        HttpResponse(200, (("content-type", "application/json"),), b"{}"),
        id="content-type-any-case",
    ),
    pytest.param(
        {"statusCode": 204, "headers": {"Content-Type": None}},
        HttpResponse(204, (), b""),
        id="null-content-type-suppresses-default",
    ),
    pytest.param(
        {"statusCode": 200, "headers": {"X-A": "1", "X-Gone": None}, "body": ""},
        HttpResponse(200, (("X-A", "1"), TEXT), b""),
        id="null-header-omitted",
    ),
    pytest.param(
        {"statusCode": 200, "cookies": ["a=1; Path=/", "b=2; HttpOnly"], "headers": {"X-A": "1"}},
        HttpResponse(
            200,
            (("X-A", "1"), ("Set-Cookie", "a=1; Path=/"), ("Set-Cookie", "b=2; HttpOnly"), TEXT),
            b"",
        ),
        id="cookies-one-set-cookie-each",
    ),
    pytest.param(
        {"statusCode": 200, "cookies": None, "headers": None, "body": None},
        HttpResponse(200, (TEXT,), b""),
        id="nulls-are-absent",
    ),
    pytest.param(
        {"statusCode": 200, "body": "wörld €"},
        HttpResponse(200, (TEXT,), "wörld €".encode()),
        id="unicode-body-utf8",
    ),
    pytest.param(
        {"statusCode": 200, "isBase64Encoded": True, "body": b64(PNG)},
        HttpResponse(200, (TEXT,), PNG),
        id="base64-body-decoded",
    ),
    pytest.param(
        {"statusCode": 200, "isBase64Encoded": "true", "body": b64(b"x")},
        HttpResponse(200, (TEXT,), b"x"),
        id="base64-flag-as-string",
    ),
    pytest.param(
        {"statusCode": 200, "isBase64Encoded": False, "body": "aGk="},
        HttpResponse(200, (TEXT,), b"aGk="),
        id="not-base64-kept-as-text",
    ),
    pytest.param(
        {"statusCode": "404", "body": "no"}, HttpResponse(404, (TEXT,), b"no"), id="status-string"
    ),
    pytest.param({"statusCode": 100}, HttpResponse(100, (TEXT,), b""), id="status-lowest"),
    pytest.param({"statusCode": 599}, HttpResponse(599, (TEXT,), b""), id="status-highest"),
    pytest.param(
        {"statusCode": 200, "headers": {"X-N": 5, "X-F": 1.5, "X-B": True, "X-C": False}},
        HttpResponse(
            200, (("X-N", "5"), ("X-F", "1.5"), ("X-B", "true"), ("X-C", "false"), TEXT), b""
        ),
        id="scalar-header-values-as-text",
    ),
    pytest.param(
        {"statusCode": 200, "multiValueHeaders": {"X-M": ["1", "2"]}},
        HttpResponse(200, (TEXT,), b""),
        id="multi-value-headers-not-in-v2",
    ),
    pytest.param(
        {
            "statusCode": 200,
            "headers": {
                "Connection": "close",
                "Transfer-Encoding": "chunked",
                "Content-Length": "999",
                "keep-alive": "timeout=5",
                "Upgrade": "h2c",
                "X-Kept": "yes",
            },
            "body": "abc",
        },
        HttpResponse(200, (("X-Kept", "yes"), TEXT), b"abc"),
        id="hop-by-hop-and-length-dropped",
    ),
    pytest.param(
        {"statusCode": 200, "headers": {"X-Name": "wörld €"}},
        HttpResponse(200, (("X-Name", "wörld €".encode().decode("latin-1")), TEXT), b""),
        id="non-ascii-header-as-utf8-bytes",
    ),
    pytest.param(
        {"statusCode": 302, "headers": {"Location": "/x"}, "extra": "ignored"},
        HttpResponse(302, (("Location", "/x"), TEXT), b""),
        id="unknown-keys-ignored",
    ),
]


@pytest.mark.parametrize(("value", "expected"), V2_STRUCTURED)
def test_v2_structured(value: Any, expected: HttpResponse) -> None:
    assert respond(value, V2) == expected


V2_INFERRED = [
    pytest.param(b'"hello"', id="string-keeps-json-quotes"),
    pytest.param(b"42", id="number"),
    pytest.param(b"null", id="null"),
    pytest.param(b"true", id="boolean"),
    pytest.param(b"[1, 2]", id="array"),
    pytest.param(b'{"message": "hi"}', id="object-without-status"),
    pytest.param(b'{"body": "x", "headers": {"A": "b"}}', id="looks-structured-without-status"),
    pytest.param('{"name": "wörld"}'.encode(), id="unicode"),
    pytest.param(b'{"a": 1}\n', id="trailing-newline-kept"),
]


@pytest.mark.parametrize("raw", V2_INFERRED)
def test_v2_inferred_from_bare_json(raw: bytes) -> None:
    assert respond(raw, V2) == HttpResponse(200, (JSON,), raw)


MALFORMED_BOTH = [
    pytest.param(b"not json", id="invalid-json"),
    pytest.param(b"", id="empty-payload"),
    pytest.param(b"\xff\xfe{", id="not-utf8"),
    pytest.param(b"[" * 100_000 + b"]" * 100_000, id="nested-too-deep"),
    pytest.param({"statusCode": 99}, id="status-below-100"),
    pytest.param({"statusCode": 600}, id="status-above-599"),
    pytest.param({"statusCode": True}, id="status-boolean"),
    pytest.param({"statusCode": 200.5}, id="status-fraction"),
    pytest.param({"statusCode": "abc"}, id="status-text"),
    pytest.param({"statusCode": "²"}, id="status-unicode-digit"),
    pytest.param({"statusCode": None}, id="status-null"),
    pytest.param({"statusCode": 200, "headers": ["A", "b"]}, id="headers-not-object"),
    pytest.param({"statusCode": 200, "headers": {"A": {"b": 1}}}, id="header-value-object"),
    pytest.param({"statusCode": 200, "headers": {"A": ["b"]}}, id="header-value-list"),
    pytest.param(
        {"statusCode": 200, "headers": {"X-A": "1\r\nSet-Cookie: evil=1"}}, id="header-crlf"
    ),
    pytest.param({"statusCode": 200, "headers": {"X-A": "1\nX-B: 2"}}, id="header-lf"),
    pytest.param({"statusCode": 200, "headers": {"X-A": "a\x00b"}}, id="header-nul"),
    pytest.param({"statusCode": 200, "headers": {"X-A\r\nX-B": "1"}}, id="header-name-crlf"),
    pytest.param({"statusCode": 200, "headers": {"Bad Name": "1"}}, id="header-name-space"),
    pytest.param({"statusCode": 200, "headers": {"A:B": "1"}}, id="header-name-colon"),
    pytest.param({"statusCode": 200, "headers": {"": "1"}}, id="header-name-empty"),
    pytest.param({"statusCode": 200, "body": {"a": 1}}, id="body-object"),
    pytest.param({"statusCode": 200, "body": 5}, id="body-number"),
    pytest.param({"statusCode": 200, "isBase64Encoded": True, "body": "%%%"}, id="bad-base64"),
    pytest.param({"statusCode": 200, "isBase64Encoded": "yes", "body": ""}, id="bad-flag"),
]

V2_ONLY_MALFORMED = [
    pytest.param({"statusCode": 200, "cookies": "a=1"}, id="cookies-not-list"),
    pytest.param({"statusCode": 200, "cookies": [{"a": 1}]}, id="cookie-not-text"),
    pytest.param({"statusCode": 200, "cookies": ["a=1\r\nX-Evil: 1"]}, id="cookie-crlf"),
]

V1_ONLY_MALFORMED = [
    pytest.param(b'"hello"', id="bare-string"),
    pytest.param(b"42", id="bare-number"),
    pytest.param(b"null", id="null"),
    pytest.param(b"[1]", id="array"),
    pytest.param({"body": "x"}, id="no-status"),
    pytest.param({"statusCode": 200, "cookies": ["a=1"]}, id="unknown-key"),
    pytest.param({"statusCode": 200, "multiValueHeaders": {"A": "b"}}, id="multi-not-list"),
    pytest.param({"statusCode": 200, "multiValueHeaders": ["A"]}, id="multi-not-object"),
    pytest.param(
        {"statusCode": 200, "multiValueHeaders": {"Set-Cookie": ["a=1\r\nX: 1"]}}, id="multi-crlf"
    ),
]


@pytest.mark.parametrize("value", MALFORMED_BOTH + V2_ONLY_MALFORMED)
def test_v2_malformed_is_500(value: Any) -> None:
    assert respond(value, V2) == V2_FAILED


@pytest.mark.parametrize("value", MALFORMED_BOTH + V1_ONLY_MALFORMED)
def test_v1_malformed_is_502(value: Any) -> None:
    assert respond(value, V1) == V1_FAILED


@pytest.mark.parametrize(("fmt", "failed"), [(V2, V2_FAILED), (V1, V1_FAILED)])
@pytest.mark.parametrize(
    ("status", "function_error", "value"),
    [
        pytest.param(
            200,
            "Unhandled",
            {"errorMessage": "boom", "errorType": "ValueError"},
            id="function-error",
        ),
        pytest.param(200, "Unhandled", {"statusCode": 200, "body": "ok"}, id="function-error-wins"),
        pytest.param(502, None, {"errorType": "Runtime.ImportModuleError"}, id="init-error"),
        pytest.param(500, None, b"agent failure", id="agent-500"),
        pytest.param(202, None, {"statusCode": 200}, id="any-status-but-200"),
    ],
)
def test_failed_invocation(
    fmt: EventFormat,
    failed: HttpResponse,
    status: int,
    function_error: str | None,
    value: Any,
) -> None:
    assert respond(value, fmt, status=status, function_error=function_error) == failed


V1_CASES = [
    pytest.param(
        {"statusCode": 200, "body": "hi"}, HttpResponse(200, (JSON,), b"hi"), id="default-json"
    ),
    pytest.param(
        {"statusCode": 200, "headers": {"Content-Type": "text/html"}, "body": "<p>"},
        HttpResponse(200, (("Content-Type", "text/html"),), b"<p>"),
        id="content-type-given",
    ),
    pytest.param(
        {"statusCode": 204, "headers": {"Content-Type": None}},
        HttpResponse(204, (), b""),
        id="null-content-type-suppresses-default",
    ),
    pytest.param(
        {"statusCode": 204, "multiValueHeaders": {"content-type": None}},
        HttpResponse(204, (), b""),
        id="null-multi-content-type-suppresses-default",
    ),
    pytest.param(
        {
            "statusCode": 200,
            "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"], "Content-Type": ["text/plain"]},
        },
        HttpResponse(
            200,
            (("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("Content-Type", "text/plain")),
            b"",
        ),
        id="multi-value-headers-repeat",
    ),
    pytest.param(
        {"statusCode": 200, "headers": {"X-A": "1"}, "multiValueHeaders": {"X-B": ["2", "3"]}},
        HttpResponse(200, (("X-B", "2"), ("X-B", "3"), ("X-A", "1"), JSON), b""),
        id="merged-distinct-names",
    ),
    pytest.param(
        {"statusCode": 200, "headers": {"X-A": "1"}, "multiValueHeaders": {"X-A": ["1", "2"]}},
        HttpResponse(200, (("X-A", "1"), ("X-A", "2"), JSON), b""),
        id="same-pair-in-both-sent-once",
    ),
    pytest.param(
        {"statusCode": 200, "headers": {"x-a": "1"}, "multiValueHeaders": {"X-A": ["1"]}},
        HttpResponse(200, (("X-A", "1"), JSON), b""),
        id="same-pair-any-case-sent-once",
    ),
    pytest.param(
        {"statusCode": 200, "headers": {"X-A": "3"}, "multiValueHeaders": {"X-A": ["1", "2"]}},
        HttpResponse(200, (("X-A", "1"), ("X-A", "2"), ("X-A", "3"), JSON), b""),
        id="same-name-other-value-merged",
    ),
    pytest.param(
        {"statusCode": 200, "multiValueHeaders": {"X-N": [1, True, None]}},
        HttpResponse(200, (("X-N", "1"), ("X-N", "true"), JSON), b""),
        id="multi-scalars-and-nulls",
    ),
    pytest.param(
        {"statusCode": 200, "headers": {"Content-Length": "1", "Connection": "close"}},
        HttpResponse(200, (JSON,), b""),
        id="hop-by-hop-dropped",
    ),
    pytest.param(
        {"statusCode": 200, "multiValueHeaders": {"Transfer-Encoding": ["chunked"]}},
        HttpResponse(200, (JSON,), b""),
        id="hop-by-hop-dropped-from-multi",
    ),
    pytest.param(
        {"statusCode": 200, "isBase64Encoded": True, "body": b64(PNG)},
        HttpResponse(200, (JSON,), PNG),
        id="base64-body-decoded",
    ),
    pytest.param(
        {"statusCode": "201", "body": "wörld"},
        HttpResponse(201, (JSON,), "wörld".encode()),
        id="status-string-unicode-body",
    ),
    pytest.param(
        {
            "statusCode": 200,
            "headers": None,
            "multiValueHeaders": None,
            "body": None,
            "isBase64Encoded": False,
        },
        HttpResponse(200, (JSON,), b""),
        id="every-key-null",
    ),
]


@pytest.mark.parametrize(("value", "expected"), V1_CASES)
def test_v1(value: Any, expected: HttpResponse) -> None:
    assert respond(value, V1) == expected


@pytest.mark.parametrize("fmt", [V2, V1])
@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(bytes(range(256)), id="every-byte"),
        pytest.param(PNG * 50, id="image"),
        pytest.param("€ ü".encode(), id="utf8"),
    ],
)
def test_base64_response_round_trip(fmt: EventFormat, data: bytes) -> None:
    value = {"statusCode": 200, "isBase64Encoded": True, "body": b64(data)}
    assert respond(value, fmt).body == data


@pytest.mark.parametrize(
    ("status", "message", "body"),
    [
        pytest.param(
            500, "Internal Server Error", b'{"message":"Internal Server Error"}', id="500"
        ),
        pytest.param(503, "Service Unavailable", b'{"message":"Service Unavailable"}', id="503"),
        pytest.param(429, "Too Many Requests", b'{"message":"Too Many Requests"}', id="429"),
        pytest.param(
            413, "Request Entity Too Large", b'{"message":"Request Entity Too Large"}', id="413"
        ),
        pytest.param(
            504, "Endpoint request timed out", b'{"message":"Endpoint request timed out"}', id="504"
        ),
        pytest.param(400, 'bad "x"\n', b'{"message":"bad \\"x\\"\\n"}', id="escaped"),
        pytest.param(403, "Verboten ü", '{"message":"Verboten ü"}'.encode(), id="unicode"),
    ],
)
def test_error_response(status: int, message: str, body: bytes) -> None:
    response = error_response(status, message)
    assert response == HttpResponse(status, (JSON,), body)
    assert json.loads(response.body) == {"message": message}
