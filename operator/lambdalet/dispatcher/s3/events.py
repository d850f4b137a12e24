"""Bucket notifications, pure: a MinIO (or S3) notification record → the S3 record Lambda sends.

Where it sits: MinIO's webhook target POSTs each bucket event to ``receiver``; the receiver
calls ``parse_records`` on the body, ``select`` with the EventSource's ``S3Filter`` and region,
and invokes the Function with ``event_payload``. Nothing here does I/O.

MinIO writes records in the S3 structure with its own accents; handlers written for Lambda's S3
trigger (and parsers such as Powertools' ``S3Schema``) expect AWS's, so each record is rebuilt
field by field rather than patched (MinIO-only fields cannot leak)::

    MinIO                                          AWS, as delivered
    eventSource "minio:s3"                         "aws:s3"
    eventVersion "2.0"                             "2.1"
    eventName "s3:ObjectCreated:Put"               "ObjectCreated:Put"
    awsRegion "" (or MinIO's site region)          the EventSource's region (us-east-1)
    requestParameters {principalId, region,        {"sourceIPAddress": "127.0.0.1"}
      sourceIPAddress "[::1]" or "127.0.0.1"}        (brackets and any port removed)
    responseElements {x-amz-request-id, x-amz-id-2, {x-amz-request-id, x-amz-id-2}
      x-minio-origin-endpoint, x-minio-deployment-id, content-length}
    s3.object.key "in%2Fhello+world.txt"           "in/hello+world.txt"
    s3.object {contentType, userMetadata}           dropped
    source {host, port, userAgent}                 dropped

Keys: both encode the key as an HTML form value, so ``urllib.parse.unquote_plus`` gives the key
back. MinIO (Go's ``url.QueryEscape``) also encodes "/", S3 does not; the key is decoded once and
encoded again the way S3 does: space → "+", "/" kept, every other byte outside ``A-Za-z0-9_.-~``
as %XX of its UTF-8 ("Grüße 1.txt" → "Gr%C3%BC%C3%9Fe+1.txt"). A record already in AWS's shape
comes out unchanged (``normalise`` is idempotent), so S3 itself may feed the same path.

Filters (``events``, ``prefix``, ``suffix`` of the EventSource) apply to the *decoded* key, as
S3's own notification filters do; ``*`` in an event name matches any run of characters
("s3:ObjectCreated:*" matches "s3:ObjectCreated:CompleteMultipartUpload").
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus, unquote_plus

from lambdalet.api.eventsource import S3

DEFAULT_REGION = "us-east-1"
EVENT_VERSION = "2.1"
SCHEMA_VERSION = "1.0"
EVENT_NAME_PREFIX = "s3:"
DEFAULT_EVENTS = ("s3:ObjectCreated:*",)
_KEPT_RESPONSE_ELEMENTS = ("x-amz-request-id", "x-amz-id-2")
_KEY_SAFE = "/"  # besides quote_plus's own A-Za-z0-9_.-~


class S3EventError(ValueError):
    """A notification body or record that is not an S3 event (the receiver answers 400)."""


@dataclass(frozen=True)
class S3Filter:
    """Which records an EventSource delivers: event name patterns, key prefix and suffix."""

    events: tuple[str, ...] = DEFAULT_EVENTS
    prefix: str | None = None
    suffix: str | None = None

    @classmethod
    def from_spec(cls, spec: S3) -> S3Filter:
        return cls(events=tuple(spec.events), prefix=spec.prefix, suffix=spec.suffix)

    def matches(self, event_name: str, key: str) -> bool:
        """``event_name`` with or without "s3:"; ``key`` decoded."""
        name = with_prefix(event_name)
        if not any(event_matches(pattern, name) for pattern in self.events):
            return False
        if self.prefix and not key.startswith(self.prefix):
            return False
        return not (self.suffix and not key.endswith(self.suffix))


def with_prefix(event_name: str) -> str:
    """ "ObjectCreated:Put" → "s3:ObjectCreated:Put" (a name that has it is returned as is)."""
    if event_name.startswith(EVENT_NAME_PREFIX):
        return event_name
    return EVENT_NAME_PREFIX + event_name


def without_prefix(event_name: str) -> str:
    """ "s3:ObjectCreated:Put" → "ObjectCreated:Put", the name AWS puts in a record."""
    return event_name.removeprefix(EVENT_NAME_PREFIX)


def event_matches(pattern: str, event_name: str) -> bool:
    """Whether ``event_name`` matches ``pattern``, in which ``*`` stands for any run of chars."""
    regex = ".*".join(re.escape(part) for part in with_prefix(pattern).split("*"))
    return re.fullmatch(regex, with_prefix(event_name)) is not None


def decode_key(encoded: str) -> str:
    """The object key a notification names: "in%2Fhello+world.txt" → "in/hello world.txt"."""
    return unquote_plus(encoded, errors="strict")


def encode_key(key: str) -> str:
    """The key as S3 writes it in a record: "in/hello world.txt" → "in/hello+world.txt"."""
    return quote_plus(key, safe=_KEY_SAFE)


def bare_ip(address: str) -> str:
    """An address without brackets or port: "[::1]:9000" → "::1", "10.0.0.7:80" → "10.0.0.7".

    Anything that is not an IP address (AWS writes "s3.amazonaws.com" for its own requests) is
    returned unchanged.
    """
    candidate = address
    if candidate.startswith("["):
        candidate = candidate[1:].partition("]")[0]
    elif candidate.count(":") == 1:
        candidate = candidate.partition(":")[0]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return address


def aws_time(text: str) -> str:
    """ISO 8601 in UTC with milliseconds, as S3 writes it: "2026-02-20T10:11:12.345Z"."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise S3EventError(f"eventTime {text!r} is not an ISO 8601 time") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_records(body: bytes) -> list[Mapping[str, Any]]:
    """The records of a webhook body: MinIO's ``{"EventName", "Key", "Records": [...]}`` or an
    S3 event ``{"Records": [...]}``. Raises ``S3EventError`` for anything else."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise S3EventError(f"body is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise S3EventError("body is not a JSON object")
    records = document.get("Records")
    if not isinstance(records, list):
        raise S3EventError("body has no Records list")
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise S3EventError(f"Records[{index}] is not an object")
    return records


def normalise(record: Mapping[str, Any], region: str = DEFAULT_REGION) -> dict[str, Any]:
    """One record in AWS's shape (module docstring); raises ``S3EventError`` when malformed."""
    s3 = _object(record, "s3")
    bucket = _object(s3, "bucket")
    obj = _object(s3, "object")
    name = _string(bucket, "name")
    event_name = without_prefix(_string(record, "eventName"))
    out_object: dict[str, Any] = {"key": encode_key(_key(obj))}
    size = obj.get("size")
    if size is not None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise S3EventError(f"s3.object.size {size!r} is not a byte count")
        out_object["size"] = size
    elif event_name.startswith("ObjectCreated:"):
        out_object["size"] = 0  # MinIO omits a zero size (Go's omitempty); S3 writes 0
    for field in ("eTag", "versionId", "sequencer"):
        value = _optional_string(obj, field)
        if value:
            out_object[field] = value
    response = _optional_object(record, "responseElements")
    request = _optional_object(record, "requestParameters")
    return {
        "eventVersion": EVENT_VERSION,
        "eventSource": "aws:s3",
        "awsRegion": region,
        "eventTime": aws_time(_string(record, "eventTime")),
        "eventName": event_name,
        "userIdentity": {"principalId": _principal(record, "userIdentity")},
        "requestParameters": {
            "sourceIPAddress": bare_ip(_optional_string(request, "sourceIPAddress") or "")
        },
        "responseElements": {
            field: _optional_string(response, field) or "" for field in _KEPT_RESPONSE_ELEMENTS
        },
        "s3": {
            "s3SchemaVersion": SCHEMA_VERSION,
            "configurationId": _optional_string(s3, "configurationId") or "",
            "bucket": {
                "name": name,
                "ownerIdentity": {"principalId": _principal(bucket, "ownerIdentity")},
                "arn": f"arn:aws:s3:::{name}",
            },
            "object": out_object,
        },
    }


def select(
    records: Sequence[Mapping[str, Any]], event_filter: S3Filter, region: str = DEFAULT_REGION
) -> list[dict[str, Any]]:
    """The records ``event_filter`` lets through, normalised, in their order."""
    selected = []
    for raw in records:
        record = normalise(raw, region)
        key = decode_key(record["s3"]["object"]["key"])
        if event_filter.matches(record["eventName"], key):
            selected.append(record)
    return selected


def event_payload(records: Sequence[Mapping[str, Any]]) -> bytes:
    """The invocation payload: ``{"Records": [...]}`` as UTF-8 JSON."""
    return json.dumps({"Records": list(records)}, separators=(",", ":")).encode()


def _key(obj: Mapping[str, Any]) -> str:
    try:
        return decode_key(_string(obj, "key"))
    except UnicodeDecodeError as exc:
        raise S3EventError("s3.object.key is not URL-encoded UTF-8") from exc


def _object(parent: Mapping[str, Any], field: str) -> Mapping[str, Any]:
    value = parent.get(field)
    if not isinstance(value, dict):
        raise S3EventError(f"{field} is missing or not an object")
    return value


def _optional_object(parent: Mapping[str, Any], field: str) -> Mapping[str, Any]:
    value = parent.get(field)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise S3EventError(f"{field} is not an object")
    return value


def _string(parent: Mapping[str, Any], field: str) -> str:
    value = parent.get(field)
    if not isinstance(value, str) or not value:
        raise S3EventError(f"{field} is missing or not a string")
    return value


def _optional_string(parent: Mapping[str, Any], field: str) -> str | None:
    value = parent.get(field)
    if value is not None and not isinstance(value, str):
        raise S3EventError(f"{field} is not a string")
    return value


def _principal(parent: Mapping[str, Any], field: str) -> str:
    return _optional_string(_optional_object(parent, field), "principalId") or ""
