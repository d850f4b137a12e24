"""A batch of messages as Lambda's SQS event: shape, bodies, handles, MD5s, the size limit."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest

from lambdalet.dispatcher.delivery.records import (
    BODY_ENCODING_ATTRIBUTE,
    attributes_md5,
    body_text,
    encode_event,
    encode_record,
    event_size,
    fitting,
    receipt_handle,
    record,
    region_of,
)
from lambdalet.dispatcher.sources.source import Message

ARN = "arn:aws:sqs:eu-west-1:000000000000:orders"


def message(
    id: str = "1700000000000-0",
    body: bytes = b'{"order": 7}',
    *,
    receive_count: int = 1,
    attributes: dict[str, str] | None = None,
    sender: str = "",
) -> Message:
    return Message(
        id=id,
        body=body,
        receive_count=receive_count,
        sent_at_ms=1700000000000,
        first_received_at_ms=1700000000125,
        sender=sender,
        attributes=attributes or {},
    )


def test_a_record_has_the_shape_lambda_sends() -> None:
    got = record(
        message(attributes={"tenant": "acme"}, sender="producer-1"), arn=ARN, region="eu-west-1"
    )

    assert got == {
        "messageId": "1700000000000-0",
        "receiptHandle": base64.b64encode(b"1700000000000-0#1").decode(),
        "body": '{"order": 7}',
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1700000000000",
            "SenderId": "producer-1",
            "ApproximateFirstReceiveTimestamp": "1700000000125",
        },
        "messageAttributes": {
            "tenant": {
                "stringValue": "acme",
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": "String",
            }
        },
        "md5OfMessageAttributes": attributes_md5({"tenant": "acme"}),
        "md5OfBody": hashlib.md5(b'{"order": 7}').hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": ARN,
        "awsRegion": "eu-west-1",
    }


def test_the_event_is_valid_json_of_the_records_in_order() -> None:
    batch = [message(f"1700000000000-{n}", f"body {n}".encode()) for n in range(3)]
    encoded = [encode_record(m, arn=ARN, region="eu-west-1") for m in batch]

    event = encode_event(encoded)

    doc = json.loads(event)
    assert [r["messageId"] for r in doc["Records"]] == [m.id for m in batch]
    assert [r["body"] for r in doc["Records"]] == ["body 0", "body 1", "body 2"]
    assert len(event) == event_size([len(r) for r in encoded])
    assert json.loads(encode_event([])) == {"Records": []}
    assert len(encode_event([])) == event_size([])


@pytest.mark.parametrize(
    ("body", "text", "encoded"),
    [
        (b"plain", "plain", False),
        (b"", "", False),
        ("grüße ✓".encode(), "grüße ✓", False),
        (b"\xff\xfe\x00binary", base64.b64encode(b"\xff\xfe\x00binary").decode(), True),
        (b"caf\xe9", base64.b64encode(b"caf\xe9").decode(), True),  # Latin-1, not UTF-8
    ],
)
def test_bodies_are_text_or_base64(body: bytes, text: str, encoded: bool) -> None:
    assert body_text(body) == (text, encoded)


def test_a_base64_body_is_marked_and_its_md5_is_of_the_delivered_text() -> None:
    raw = b"\x80\x81 not utf-8"
    doc: dict[str, Any] = json.loads(encode_record(message(body=raw), arn=ARN, region="x"))

    assert base64.b64decode(doc["body"]) == raw
    assert doc["messageAttributes"][BODY_ENCODING_ATTRIBUTE]["stringValue"] == "base64"
    assert doc["md5OfBody"] == hashlib.md5(doc["body"].encode()).hexdigest()


def test_text_bodies_survive_the_json_encoding() -> None:
    body = 'quote " backslash \\ newline \n emoji 🎉 nul \x00'
    doc = json.loads(encode_record(message(body=body.encode()), arn=ARN, region="x"))

    assert doc["body"] == body
    assert BODY_ENCODING_ATTRIBUTE not in doc["messageAttributes"]
    assert doc["md5OfMessageAttributes"] is None


@pytest.mark.parametrize(
    ("attributes", "hashed"),
    [
        # SQS's layout: per name (sorted): len+name, len+"String", transport type 1, len+value.
        ({"a": "b"}, b"\0\0\0\x01a\0\0\0\x06String\x01\0\0\0\x01b"),
        (
            {"z": "1", "b": "ü"},
            b"\0\0\0\x01b\0\0\0\x06String\x01\0\0\0\x02\xc3\xbc"
            b"\0\0\0\x01z\0\0\0\x06String\x01\0\0\0\x011",
        ),
    ],
)
def test_md5_of_message_attributes(attributes: dict[str, str], hashed: bytes) -> None:
    assert attributes_md5(attributes) == hashlib.md5(hashed).hexdigest()
    assert attributes_md5({}) is None


@pytest.mark.parametrize(
    ("id", "count"),
    [("1700000000000-0", 1), ("1700000000000-0", 2), ("a:b#c", 7)],
)
def test_receipt_handles_name_one_delivery(id: str, count: int) -> None:
    handle = receipt_handle(message(id, receive_count=count))

    assert base64.b64decode(handle).decode() == f"{id}#{count}"
    assert handle != receipt_handle(message(id, receive_count=count + 1))


@pytest.mark.parametrize(
    ("arn", "region"),
    [
        ("arn:aws:sqs:eu-west-1:000000000000:orders", "eu-west-1"),
        ("arn:aws:sqs::000000000000:orders", "us-east-1"),
        ("orders", "us-east-1"),
    ],
)
def test_region_of(arn: str, region: str) -> None:
    assert region_of(arn) == region


@pytest.mark.parametrize(
    ("sizes", "limit", "count"),
    [
        # head 13 + tail 2, separators 2: (100, 100) takes 13 + 100 + 2 + 100 + 2 = 217.
        ((100, 100), 217, 2),
        ((100, 100), 216, 1),
        ((100, 100), 115, 1),
        ((100, 100), 114, 0),
        ((), 15, 0),
        ((1, 1, 1), 10_000, 3),
    ],
)
def test_fitting_counts_the_records_within_the_limit(
    sizes: tuple[int, ...], limit: int, count: int
) -> None:
    assert fitting(sizes, limit) == count
    assert event_size(sizes[:count]) <= limit
    if count < len(sizes):
        assert event_size(sizes[: count + 1]) > limit
