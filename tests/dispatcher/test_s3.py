"""Table tests of ``lambdalet.dispatcher.s3.events``: MinIO notification records → AWS S3 records.

The MinIO bodies below were captured from a real MinIO server (the build of
tests/kit/servers/minio.py) posting to a webhook target; the AWS record is the example of
Amazon S3's "Event message structure" page, which the normalisation must leave as it is.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from lambdalet.dispatcher.s3.events import (
    S3EventError,
    S3Filter,
    aws_time,
    bare_ip,
    decode_key,
    encode_key,
    event_matches,
    event_payload,
    normalise,
    parse_records,
    select,
)

# Posted by MinIO (RELEASE pseudo-version 0.0.0-20260212201848-7aac2a2c5b7c) for
# put_object("samples", "in/hello world.txt", b"hello") and remove_object of it.
MINIO_PUT = (
    b'{"EventName":"s3:ObjectCreated:Put","Key":"samples/in/hello world.txt","Records":[{"even'
    b'tVersion":"2.0","eventSource":"minio:s3","awsRegion":"","eventTime":"2026-11-22T14:26:02'
    b'.577Z","eventName":"s3:ObjectCreated:Put","userIdentity":{"principalId":"lambdalet"},"re'
    b'questParameters":{"principalId":"lambdalet","region":"","sourceIPAddress":"127.0.0.1"},"'
    b'responseElements":{"x-amz-id-2":"46ea154be5c4cc817013d619aeb79fce5002063190677ad9cffa890'
    b'900b832b4","x-amz-request-id":"18EA6430E22387B0","x-minio-deployment-id":"96f9c3d0-5b75-'
    b'4f0e-82cb-072cb8a59f36","x-minio-origin-endpoint":"http://127.0.0.1:53023"},"s3":{"s3Sch'
    b'emaVersion":"1.0","configurationId":"Config","bucket":{"name":"samples","ownerIdentity":'
    b'{"principalId":"lambdalet"},"arn":"arn:aws:s3:::samples"},"object":{"key":"in%2Fhello+wo'
    b'rld.txt","size":5,"eTag":"5d41402abc4b2a76b9719d911017c592","contentType":"application/o'
    b'ctet-stream","userMetadata":{"content-type":"application/octet-stream"},"sequencer":"18E'
    b'A6430E2296E9D"}},"source":{"host":"127.0.0.1","port":"","userAgent":"MinIO (Linux; x86_6'
    b'4) minio-py/7.2.20"}}]}'
)
MINIO_DELETE = (
    b'{"EventName":"s3:ObjectRemoved:Delete","Key":"samples/in/hello world.txt","Records":[{"e'
    b'ventVersion":"2.0","eventSource":"minio:s3","awsRegion":"","eventTime":"2026-11-22T14:26'
    b':02.579Z","eventName":"s3:ObjectRemoved:Delete","userIdentity":{"principalId":"lambdalet'
    b'"},"requestParameters":{"principalId":"lambdalet","region":"","sourceIPAddress":"127.0.0'
    b'.1"},"responseElements":{"content-length":"0","x-amz-id-2":"46ea154be5c4cc817013d619aeb7'
    b'9fce5002063190677ad9cffa890900b832b4","x-amz-request-id":"18EA6430E24E8EE0","x-minio-dep'
    b'loyment-id":"96f9c3d0-5b75-4f0e-82cb-072cb8a59f36","x-minio-origin-endpoint":"http://127'
    b'.0.0.1:53023"},"s3":{"s3SchemaVersion":"1.0","configurationId":"Config","bucket":{"name"'
    b':"samples","ownerIdentity":{"principalId":"lambdalet"},"arn":"arn:aws:s3:::samples"},"ob'
    b'ject":{"key":"in%2Fhello+world.txt","sequencer":"18EA6430E254FD32"}},"source":{"host":"1'
    b'27.0.0.1","port":"","userAgent":"MinIO (Linux; x86_64) minio-py/7.2.20"}}]}'
)


AWS_RECORD: dict[str, Any] = {
    "eventVersion": "2.1",
    "eventSource": "aws:s3",
    "awsRegion": "us-west-2",
    "eventTime": "1970-01-01T00:00:00.000Z",
    "eventName": "ObjectCreated:Put",
    "userIdentity": {"principalId": "AIDAJDPLRKLG7UEXAMPLE"},
    "requestParameters": {"sourceIPAddress": "172.16.0.1"},
    "responseElements": {
        "x-amz-request-id": "C3D13FE58DE4C810",
        "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD",
    },
    "s3": {
        "s3SchemaVersion": "1.0",
        "configurationId": "testConfigRule",
        "bucket": {
            "name": "amzn-s3-demo-bucket",
            "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
            "arn": "arn:aws:s3:::amzn-s3-demo-bucket",
        },
        "object": {
            "key": "HappyFace.jpg",
            "size": 1024,
            "eTag": "d41d8cd98f00b204e9800998ecf8427e",
            "versionId": "096fKKXTRTtl3on89fVO.nfljtsv6qko",
            "sequencer": "0055AED6DCD90281E5",
        },
    },
}


def minio_record(body: bytes) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(body)["Records"][0]
    return record


def with_changes(record: dict[str, Any], **paths: Any) -> dict[str, Any]:
    """A deep copy with dotted paths set ("s3.object.key") or removed (value ``...``)."""
    changed = copy.deepcopy(record)
    for path, value in paths.items():
        *parents, last = path.split("__")
        node = changed
        for part in parents:
            node = node[part]
        if value is ...:
            node.pop(last, None)
        else:
            node[last] = value
    return changed


# --- the captured MinIO records ---------------------------------------------------------------


def test_minio_put_becomes_the_aws_shape() -> None:
    raw = minio_record(MINIO_PUT)
    assert raw["eventSource"] == "minio:s3"  # the sample is what MinIO sends
    record = normalise(raw)
    assert set(record) == set(AWS_RECORD)
    assert record["eventSource"] == "aws:s3"
    assert record["eventVersion"] == "2.1"
    assert record["eventName"] == "ObjectCreated:Put"
    assert record["awsRegion"] == "us-east-1"
    assert record["eventTime"] == raw["eventTime"]  # MinIO already writes ms and Z
    assert record["userIdentity"] == {"principalId": raw["userIdentity"]["principalId"]}
    assert record["requestParameters"] == {"sourceIPAddress": "127.0.0.1"}
    assert record["responseElements"] == {
        "x-amz-request-id": raw["responseElements"]["x-amz-request-id"],
        "x-amz-id-2": raw["responseElements"]["x-amz-id-2"],
    }
    s3 = record["s3"]
    assert set(s3) == set(AWS_RECORD["s3"])
    assert s3["s3SchemaVersion"] == "1.0"
    assert s3["configurationId"] == raw["s3"]["configurationId"]
    assert s3["bucket"] == {
        "name": raw["s3"]["bucket"]["name"],
        "ownerIdentity": raw["s3"]["bucket"]["ownerIdentity"],
        "arn": f"arn:aws:s3:::{raw['s3']['bucket']['name']}",
    }
    assert s3["object"] == {
        "key": "in/hello+world.txt",
        "size": raw["s3"]["object"]["size"],
        "eTag": raw["s3"]["object"]["eTag"],
        "sequencer": raw["s3"]["object"]["sequencer"],
    }


def test_minio_delete_has_no_size_or_etag() -> None:
    record = normalise(minio_record(MINIO_DELETE), "eu-central-1")
    assert record["eventName"] == "ObjectRemoved:Delete"
    assert record["awsRegion"] == "eu-central-1"
    assert set(record["s3"]["object"]) == {"key", "sequencer"}


def test_minio_only_fields_are_dropped() -> None:
    text = json.dumps(normalise(minio_record(MINIO_PUT)))
    for minio_only in ("minio", '"source"', "userAgent", "contentType", "userMetadata", '"region"'):
        assert minio_only not in text


def test_aws_record_is_a_fixed_point() -> None:
    assert normalise(AWS_RECORD, "us-west-2") == AWS_RECORD


def test_normalise_is_idempotent_on_minio_records() -> None:
    for body in (MINIO_PUT, MINIO_DELETE):
        once = normalise(minio_record(body))
        assert normalise(once) == once


def test_parse_records_reads_minio_bodies() -> None:
    (record,) = parse_records(MINIO_PUT)
    assert record["s3"]["object"]["key"] == "in%2Fhello+world.txt"


# --- rows ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoded", "key", "aws"),
    [
        ("in%2Fhello+world.txt", "in/hello world.txt", "in/hello+world.txt"),
        ("Gr%C3%BC%C3%9Fe+1.txt", "Grüße 1.txt", "Gr%C3%BC%C3%9Fe+1.txt"),
        ("a%2Bb%3Dc%26d.txt", "a+b=c&d.txt", "a%2Bb%3Dc%26d.txt"),
        ("year%3D2026%2Fmonth%3D02%2F", "year=2026/month=02/", "year%3D2026/month%3D02/"),
        ("plain-key_1.0~x", "plain-key_1.0~x", "plain-key_1.0~x"),
        ("100%25+%28final%29", "100% (final)", "100%25+%28final%29"),
        ("in/hello+world.txt", "in/hello world.txt", "in/hello+world.txt"),  # AWS input
    ],
)
def test_keys(encoded: str, key: str, aws: str) -> None:
    assert decode_key(encoded) == key
    assert encode_key(key) == aws
    assert decode_key(aws) == key


@pytest.mark.parametrize(
    ("address", "bare"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("10.0.0.7:54321", "10.0.0.7"),
        ("[::1]", "::1"),
        ("[::1]:9000", "::1"),
        ("[2001:DB8::1]", "2001:db8::1"),
        ("::1", "::1"),
        ("s3.amazonaws.com", "s3.amazonaws.com"),
        ("", ""),
    ],
)
def test_bare_ip(address: str, bare: str) -> None:
    assert bare_ip(address) == bare


@pytest.mark.parametrize(
    ("text", "aws"),
    [
        ("2026-02-20T10:11:12.345Z", "2026-02-20T10:11:12.345Z"),
        ("2026-02-20T10:11:12Z", "2026-02-20T10:11:12.000Z"),
        ("2026-02-20T12:11:12.345678+02:00", "2026-02-20T10:11:12.345Z"),
        ("2026-02-20T10:11:12.3456", "2026-02-20T10:11:12.345Z"),  # naive: read as UTC
    ],
)
def test_aws_time(text: str, aws: str) -> None:
    assert aws_time(text) == aws


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        ("s3:ObjectCreated:*", "s3:ObjectCreated:Put", True),
        ("s3:ObjectCreated:*", "ObjectCreated:CompleteMultipartUpload", True),
        ("s3:ObjectCreated:*", "s3:ObjectRemoved:Delete", False),
        ("s3:ObjectCreated:Put", "s3:ObjectCreated:Put", True),
        ("s3:ObjectCreated:Put", "s3:ObjectCreated:PutRetention", False),
        ("s3:ObjectRemoved:*", "s3:ObjectRemoved:DeleteMarkerCreated", True),
        ("s3:*", "s3:ObjectAccessed:Get", True),
        ("s3:Object*:Delete", "s3:ObjectRemoved:Delete", True),
        ("s3:ObjectCreated:*", "s3:ObjectCreatedX:Put", False),
    ],
)
def test_event_matches(pattern: str, name: str, matches: bool) -> None:
    assert event_matches(pattern, name) is matches


FILTER = S3Filter(events=("s3:ObjectCreated:Put",), prefix="in/", suffix=".txt")


@pytest.mark.parametrize(
    ("event_filter", "name", "key", "matches"),
    [
        (S3Filter(), "s3:ObjectCreated:Put", "anything", True),
        (S3Filter(), "s3:ObjectRemoved:Delete", "anything", False),
        (FILTER, "ObjectCreated:Put", "in/a.txt", True),
        (FILTER, "s3:ObjectCreated:Put", "in/ü d.txt", True),
        (FILTER, "s3:ObjectCreated:Put", "out/a.txt", False),
        (FILTER, "s3:ObjectCreated:Put", "in/a.csv", False),
        (FILTER, "s3:ObjectCreated:Copy", "in/a.txt", False),
        (S3Filter(events=("s3:ObjectCreated:*", "s3:ObjectRemoved:*")), "ObjectRemoved:Delete",
         "k", True),
    ],
)  # fmt: skip
def test_filter(event_filter: S3Filter, name: str, key: str, matches: bool) -> None:
    assert event_filter.matches(name, key) is matches


def test_select_filters_on_the_decoded_key() -> None:
    put = minio_record(MINIO_PUT)  # key in%2Fhello+world.txt
    delete = minio_record(MINIO_DELETE)
    by_prefix = S3Filter(events=("s3:ObjectCreated:*", "s3:ObjectRemoved:*"), prefix="in/")
    assert [r["eventName"] for r in select([put, delete], by_prefix)] == [
        "ObjectCreated:Put",
        "ObjectRemoved:Delete",
    ]
    assert select([put, delete], S3Filter(suffix="world.txt")) == [normalise(put)]
    assert select([put], S3Filter(prefix="in%2F")) == []
    assert select([put], S3Filter(suffix="world+txt")) == []


def test_event_payload() -> None:
    records = select(parse_records(MINIO_PUT), S3Filter())
    assert json.loads(event_payload(records)) == {"Records": records}


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        b"[]",
        b'{"EventName": "s3:ObjectCreated:Put"}',
        b'{"Records": {}}',
        b'{"Records": [1]}',
    ],
)
def test_malformed_bodies(body: bytes) -> None:
    with pytest.raises(S3EventError):
        parse_records(body)


@pytest.mark.parametrize(
    "changes",
    [
        {"s3": ...},
        {"s3__bucket": ...},
        {"s3__bucket__name": ""},
        {"s3__object": "key"},
        {"s3__object__key": ...},
        {"s3__object__key": "%FF%FE"},
        {"s3__object__size": "12"},
        {"s3__object__size": -1},
        {"s3__object__size": True},
        {"s3__object__eTag": 7},
        {"eventName": ...},
        {"eventTime": "yesterday"},
        {"eventTime": ...},
        {"responseElements": []},
        {"requestParameters__sourceIPAddress": 1},
    ],
)
def test_malformed_records(changes: dict[str, Any]) -> None:
    with pytest.raises(S3EventError):
        normalise(with_changes(AWS_RECORD, **changes))


@pytest.mark.parametrize(
    ("changes", "path", "value"),
    [
        ({"s3__object__size": ...}, ("s3", "object", "size"), 0),  # MinIO omits size 0
        ({"responseElements": ...}, ("responseElements", "x-amz-id-2"), ""),
        ({"userIdentity": ...}, ("userIdentity", "principalId"), ""),
        ({"requestParameters": ...}, ("requestParameters", "sourceIPAddress"), ""),
        ({"s3__bucket__arn": "arn:minio:x"}, ("s3", "bucket", "arn"),
         "arn:aws:s3:::amzn-s3-demo-bucket"),
        ({"eventName": "s3:ObjectCreated:Copy"}, ("eventName",), "ObjectCreated:Copy"),
        ({"eventSource": "minio:s3"}, ("eventSource",), "aws:s3"),
        ({"awsRegion": ""}, ("awsRegion",), "us-east-1"),
    ],
)  # fmt: skip
def test_defaults_and_rewrites(changes: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node: Any = normalise(with_changes(AWS_RECORD, **changes))
    for part in path:
        node = node[part]
    assert node == value


def test_version_id_only_when_present() -> None:
    without = normalise(with_changes(AWS_RECORD, s3__object__versionId=...))
    assert "versionId" not in without["s3"]["object"]
    empty = normalise(with_changes(AWS_RECORD, s3__object__versionId=""))
    assert "versionId" not in empty["s3"]["object"]
