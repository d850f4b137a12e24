"""A batch of queue messages as the SQS event Lambda sends: pure shaping, no I/O.

Where it sits: ``delivery`` gathers ``source.Message`` values from any broker and calls
``encode_record`` once per message and ``encode_event`` once per batch; the bytes go to the
activator's Invoke API unchanged. Handlers written for Lambda's SQS trigger (and libraries that
parse its events, e.g. Powertools' ``SqsSchema``) read them as they are::

    {"Records": [{"messageId": "1700000000000-0",
                  "receiptHandle": "MTcwMDAwMDAwMDAwMC0wIzE=",
                  "body": "{\\"order\\": 7}",
                  "attributes": {"ApproximateReceiveCount": "1",
                                 "SentTimestamp": "1700000000000",
                                 "SenderId": "",
                                 "ApproximateFirstReceiveTimestamp": "1700000000125"},
                  "messageAttributes": {"tenant": {"stringValue": "acme",
                                                   "stringListValues": [],
                                                   "binaryListValues": [],
                                                   "dataType": "String"}},
                  "md5OfMessageAttributes": "<md5, or null without attributes>",
                  "md5OfBody": "<md5 of body>",
                  "eventSource": "aws:sqs",
                  "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:orders",
                  "awsRegion": "us-east-1"}]}

Choices where a broker is not SQS:

* ``body``: SQS bodies are text. A body that is valid UTF-8 is passed as that text. Any other
  bytes are passed base64-encoded (lossless, never a silent replacement character) and the record
  gets the message attribute ``lambdalet.bodyEncoding`` = ``base64`` so a handler can tell.
  ``md5OfBody`` is the MD5 of the ``body`` string as delivered (UTF-8), as SQS computes it.
* ``receiptHandle``: base64 of ``<messageId>#<receive count>``; it names one delivery of one
  message. Nothing reads it back (the dispatcher acknowledges for the handler).
* ``md5OfMessageAttributes``: computed with SQS's algorithm (names sorted; each name, data type,
  transport type 1 and value, lengths as 4-byte big-endian prefixes); null without attributes.
* ``awsRegion`` is the region field of the source's ARN.

The event must fit Lambda's synchronous payload limit (``PAYLOAD_LIMIT``, the activator's
``SYNC_PAYLOAD_LIMIT``); ``fitting`` says how many encoded records do.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from collections.abc import Mapping, Sequence

from lambdalet.dispatcher.sources.source import Message

# Lambda's RequestResponse payload limit; the activator answers 413 above it
# (lambdalet.activator.app.SYNC_PAYLOAD_LIMIT).
PAYLOAD_LIMIT = 6 * 1024 * 1024
BODY_ENCODING_ATTRIBUTE = "lambdalet.bodyEncoding"
DEFAULT_REGION = "us-east-1"
_EVENT_HEAD = b'{"Records": ['
_EVENT_TAIL = b"]}"
_SEPARATOR = b", "
_STRING_TRANSPORT = 1  # SQS's transport type code of String and Number attributes


def region_of(arn: str) -> str:
    """The region field of an ARN (arn:aws:sqs:<region>:<account>:<name>); us-east-1 if none."""
    parts = arn.split(":")
    return parts[3] if len(parts) >= 6 and parts[0] == "arn" and parts[3] else DEFAULT_REGION


def body_text(body: bytes) -> tuple[str, bool]:
    """The record's body: the UTF-8 text, or base64 when the bytes are not UTF-8 (True)."""
    try:
        return body.decode("utf-8"), False
    except UnicodeDecodeError:
        return base64.b64encode(body).decode("ascii"), True


def receipt_handle(message: Message) -> str:
    """An opaque handle for one delivery: base64 of ``<id>#<receive count>``."""
    raw = f"{message.id}#{message.receive_count}".encode()
    return base64.b64encode(raw).decode("ascii")


def attributes_md5(attributes: Mapping[str, str]) -> str | None:
    """SQS's MD5OfMessageAttributes of String attributes; None when there are none.

    Worked example: {"a": "b"} hashes the bytes
    00 00 00 01 'a'  00 00 00 06 'String'  01  00 00 00 01 'b'.
    """
    if not attributes:
        return None
    digest = hashlib.md5(usedforsecurity=False)
    for name in sorted(attributes):
        for part in (name, "String"):
            encoded = part.encode("utf-8", "surrogatepass")
            digest.update(struct.pack(">I", len(encoded)) + encoded)
        value = attributes[name].encode("utf-8", "surrogatepass")
        digest.update(bytes((_STRING_TRANSPORT,)) + struct.pack(">I", len(value)) + value)
    return digest.hexdigest()


def record(message: Message, *, arn: str, region: str) -> dict[str, object]:
    """One SQS record of ``message`` (see the module docstring for the shape)."""
    body, encoded = body_text(message.body)
    attributes = dict(message.attributes)
    if encoded:
        attributes[BODY_ENCODING_ATTRIBUTE] = "base64"
    return {
        "messageId": message.id,
        "receiptHandle": receipt_handle(message),
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": str(message.receive_count),
            "SentTimestamp": str(message.sent_at_ms),
            "SenderId": message.sender,
            "ApproximateFirstReceiveTimestamp": str(message.first_received_at_ms),
        },
        "messageAttributes": {
            name: {
                "stringValue": value,
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": "String",
            }
            for name, value in attributes.items()
        },
        "md5OfMessageAttributes": attributes_md5(attributes),
        "md5OfBody": hashlib.md5(body.encode("utf-8"), usedforsecurity=False).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": arn,
        "awsRegion": region,
    }


def encode_record(message: Message, *, arn: str, region: str) -> bytes:
    """The record as JSON bytes (ASCII: any text survives, whatever the attribute values)."""
    return json.dumps(record(message, arn=arn, region=region)).encode("ascii")


def encode_event(records: Sequence[bytes]) -> bytes:
    """The SQS event of already encoded records: ``{"Records": [r1, r2, ...]}``."""
    return _EVENT_HEAD + _SEPARATOR.join(records) + _EVENT_TAIL


def event_size(record_sizes: Sequence[int]) -> int:
    """Bytes ``encode_event`` makes of records of these sizes."""
    if not record_sizes:
        return len(_EVENT_HEAD) + len(_EVENT_TAIL)
    separators = len(_SEPARATOR) * (len(record_sizes) - 1)
    return len(_EVENT_HEAD) + sum(record_sizes) + separators + len(_EVENT_TAIL)


def fitting(record_sizes: Sequence[int], limit: int = PAYLOAD_LIMIT) -> int:
    """How many of the records, from the first, make an event of at most ``limit`` bytes.

    E.g. sizes (100, 100) with limit 217: 13 + 100 + 2 + 100 + 2 = 217 -> 2; limit 216 -> 1.
    0 means the first record alone is too large.
    """
    size = len(_EVENT_HEAD) + len(_EVENT_TAIL)
    for count, record_size in enumerate(record_sizes):
        size += record_size + (len(_SEPARATOR) if count else 0)
        if size > limit:
            return count
    return len(record_sizes)
