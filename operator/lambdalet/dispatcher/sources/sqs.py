"""The SQS event source: one queue of AWS SQS or an SQS-compatible server (ElasticMQ), as a
``Source``.

Where it sits: the delivery loop calls ``receive`` / ``ack`` / ``retry`` / ``dead_letter`` on an
``SqsSource`` built from an EventSource's ``sqs`` block; ``depth`` feeds queue-depth scaling. It
is the only dispatcher code that speaks SQS. Nothing is created: the queue and the dead-letter
queue must exist (``start`` asks for their attributes; a missing one is a ``SourceConfigError``).

Choices, and why:

* The client is botocore's (boto3 is not needed), called through a small thread pool of the
  source's own (``WORKERS`` threads, as many pooled connections): a long poll holds one thread
  for up to 20 s while settling and ``depth`` use the others. Every call is bounded by botocore's
  connect and read timeouts (the read timeout exceeds the longest long poll) and by an
  ``asyncio.timeout`` around it. Only the dispatcher imports this module.
* ``receive`` long-polls (``WaitTimeSeconds``, at most 20 s per call, again while nothing came
  and the wait lasts) for the first messages, then takes what is there at once (no wait) until
  it has ``max_messages``: SQS hands out at most 10 per call. ``VisibilityTimeout`` is set on
  every receive: the longest the delivery loop may hold a batch plus a margin
  (``visibility_timeout``); a consumer that dies holding messages gives them back when it ends.
  A receive cancelled while its call runs gives the messages back (visibility 0) when the call
  returns.
* ``receive_count`` is SQS's ApproximateReceiveCount, ``sent_at_ms`` SentTimestamp,
  ``first_received_at_ms`` ApproximateFirstReceiveTimestamp, ``sender`` SenderId, all kept by the
  server across redeliveries and dispatcher restarts. String and Number message attributes
  become attribute strings; a Binary attribute becomes the base64 text of its bytes (the record
  then shows it as a String: ``Message.attributes`` holds text only). The dead letter keeps the
  original, typed attributes.
* ``ack`` is DeleteMessageBatch and ``retry`` ChangeMessageVisibilityBatch to 0 (the server
  redelivers at once and counts the delivery), 10 entries per call. An entry refused with
  ReceiptHandleIsInvalid is no longer ours (deleted already, e.g. when the loop does a failed
  step again, or handed to another consumer after its visibility timeout, which will settle it):
  logged, not an error. Any other refused entry raises ``SourceError``.
* ``dead_letter`` sends copies with SendMessageBatch to the dead-letter queue URL (body, the
  original attributes, and ``lambdalet.reason``, ``lambdalet.sourceArn``,
  ``lambdalet.messageId``, ``lambdalet.receiveCount`` as far as SQS' 10 attributes per message
  allow: the user's are never dropped), checks every entry, and deletes only the messages whose
  copy was accepted; a failed copy raises ``SourceError`` and its message stays in flight. Copies
  made are remembered (bounded) so that doing the step again does not copy a message twice.
  A FIFO dead-letter queue gets the original's MessageGroupId and the MessageId for
  deduplication.
* ``depth`` is ApproximateNumberOfMessages + ApproximateNumberOfMessagesNotVisible.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import botocore.session  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import (  # type: ignore[import-untyped]
    BotoCoreError,
    ClientError,
    NoCredentialsError,
)

from lambdalet.api.eventsource import DeadLetter, DeadLetterType, Sqs
from lambdalet.dispatcher.sources.source import (
    Build,
    Message,
    SecretReader,
    Source,
    SourceConfigError,
    SourceError,
)

log = logging.getLogger(__name__)

MAX_BATCH = 10  # entries of one Receive/Delete/ChangeMessageVisibility/SendMessageBatch call
MAX_BATCH_BYTES = 262_144  # payload of one SendMessageBatch (bodies and attributes)
MAX_ATTRIBUTES = 10  # message attributes per message
MAX_WAIT = 20  # longest WaitTimeSeconds
MAX_VISIBILITY = 43_200  # longest VisibilityTimeout (12 h)
VISIBILITY_MARGIN = 30.0  # seconds beyond the longest hold of a batch
WORKERS = 4
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = MAX_WAIT + 10.0  # a long poll answers after at most MAX_WAIT
CALL_DEADLINE = 2 * (CONNECT_TIMEOUT + READ_TIMEOUT) + 5.0  # two attempts, then give up
REMEMBERED = 10_000  # receipt handles of dead-letter copies made, for a repeated step
INVALID_HANDLE = "ReceiptHandleIsInvalid"
MISSING_QUEUE = {"QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue"}
REFUSED = {  # credentials or rights: retrying will not help until the Secret or policy changes
    "AccessDenied",
    "AccessDeniedException",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "UnrecognizedClientException",
    "InvalidAddress",
}
OWN_ATTRIBUTES = (  # added to dead letters in this order, as far as room allows
    "lambdalet.reason",
    "lambdalet.sourceArn",
    "lambdalet.messageId",
    "lambdalet.receiveCount",
)

T = TypeVar("T")
Raw = Mapping[str, Any]  # one message as botocore returns it


# --- the pure part ------------------------------------------------------------------------------


def visibility_timeout(held_seconds: float, margin: float = VISIBILITY_MARGIN) -> int:
    """The VisibilityTimeout of a receive: the longest the loop holds a batch, plus a margin.

    E.g. a 3 s Function (invoke timeout 60 + 3 + 5 = 68 s) with a 30 s failure hold and no
    batch window: 68 + 30 + 0 + 30 = 128 s.
    """
    return min(MAX_VISIBILITY, max(0, math.ceil(held_seconds + margin)))


def arn_of(queue_url: str, region: str) -> str:
    """arn:aws:sqs:<region>:<account>:<name> of a queue URL (…/<account>/<name>)."""
    parts = [p for p in urlsplit(queue_url).path.split("/") if p]
    account = parts[-2] if len(parts) >= 2 else "000000000000"
    name = parts[-1] if parts else ""
    return f"arn:aws:sqs:{region}:{account}:{name}"


def attribute_text(attribute: Raw) -> str:
    """The text of one message attribute: String/Number as given, Binary as base64."""
    if attribute.get("DataType", "").startswith("Binary"):
        value = attribute.get("BinaryValue", b"")
        return base64.b64encode(value if isinstance(value, bytes) else str(value).encode()).decode()
    return str(attribute.get("StringValue", ""))


def message_of(raw: Raw, now_ms: int) -> Message:
    """A received SQS message as a ``Message`` (see the module docstring for the fields)."""
    system = raw.get("Attributes", {})
    sent = int(system.get("SentTimestamp", 0)) or now_ms
    attributes = raw.get("MessageAttributes", {})
    return Message(
        id=raw["MessageId"],
        body=raw.get("Body", "").encode("utf-8", "surrogatepass"),
        receive_count=int(system.get("ApproximateReceiveCount", 1)),
        sent_at_ms=sent,
        first_received_at_ms=int(system.get("ApproximateFirstReceiveTimestamp", 0)) or now_ms,
        sender=str(system.get("SenderId", "")),
        attributes={name: attribute_text(value) for name, value in attributes.items()},
        handle=_Handle(raw["ReceiptHandle"], attributes, system.get("MessageGroupId")),
    )


def dead_letter_entry(
    message: Message, entry_id: str, reason: str, source_arn: str
) -> dict[str, Any]:
    """The SendMessageBatch entry of a message's dead letter (FIFO fields added by the caller)."""
    handle = _handle(message)
    attributes: dict[str, Any] = dict(handle.attributes)
    own = (reason, source_arn, message.id, str(message.receive_count))
    for name, value in zip(OWN_ATTRIBUTES, own, strict=True):
        if len(attributes) >= MAX_ATTRIBUTES:
            break
        attributes[name] = {"DataType": "String", "StringValue": value or "-"}
    entry: dict[str, Any] = {
        "Id": entry_id,
        "MessageBody": message.body.decode("utf-8", "surrogatepass"),
    }
    if attributes:
        entry["MessageAttributes"] = attributes
    return entry


def entry_size(entry: Mapping[str, Any]) -> int:
    """Bytes an entry counts toward a batch's payload limit: body, names, types and values."""
    size = len(entry["MessageBody"].encode())
    for name, value in entry.get("MessageAttributes", {}).items():
        data = value.get("BinaryValue") or value.get("StringValue", "").encode()
        size += len(name.encode()) + len(value["DataType"].encode()) + len(data)
    return size


def chunks(items: Sequence[T], size: Callable[[T], int] = lambda _: 0) -> Iterator[list[T]]:
    """Batches of at most MAX_BATCH items and MAX_BATCH_BYTES by ``size`` (a lone larger item
    goes alone: the server judges it)."""
    batch: list[T] = []
    total = 0
    for item in items:
        n = size(item)
        if batch and (len(batch) == MAX_BATCH or total + n > MAX_BATCH_BYTES):
            yield batch
            batch, total = [], 0
        batch.append(item)
        total += n
    if batch:
        yield batch


# --- the I/O shell ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Handle:
    receipt: str
    attributes: Mapping[str, Any]  # the message attributes as received (typed), for dead letters
    group: str | None  # MessageGroupId on a FIFO queue


@dataclass(frozen=True)
class SqsConfig:
    queue_url: str
    visibility_timeout: int  # seconds; see ``visibility_timeout``
    region: str = "us-east-1"
    endpoint: str | None = None  # None: AWS for the region
    dead_letter_url: str | None = None
    max_wait: int = MAX_WAIT


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str


class SqsSource:
    """One SQS queue as a ``Source``; see the module docstring for the choices."""

    def __init__(self, config: SqsConfig, credentials: Credentials | None = None) -> None:
        self._config = config
        self._credentials = credentials
        self._arn = arn_of(config.queue_url, config.region)
        self._client: Any = None
        self._pool: ThreadPoolExecutor | None = None
        self._copied: OrderedDict[str, None] = OrderedDict()  # receipts with a dead letter made

    @classmethod
    def from_spec(
        cls,
        spec: Sqs,
        *,
        visibility_timeout: int,
        credentials: Credentials | None = None,
        dead_letter: DeadLetter | None = None,
    ) -> SqsSource:
        """A source for an EventSource's ``sqs`` (credentials read from its Secret)."""
        if dead_letter is not None and dead_letter.type != DeadLetterType.SQS:
            raise SourceConfigError(
                f"an SQS source dead-letters to an sqs queue URL, not {dead_letter.type}"
            )
        config = SqsConfig(
            queue_url=spec.queue_url,
            visibility_timeout=visibility_timeout,
            region=spec.region,
            endpoint=spec.endpoint,
            dead_letter_url=dead_letter.target if dead_letter else None,
        )
        return cls(config, credentials)

    @property
    def arn(self) -> str:
        return self._arn

    async def start(self) -> None:
        if self._client is None:
            self._pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="sqs")
            self._client = self._new_client()
        for url in filter(None, (self._config.queue_url, self._config.dead_letter_url)):
            await self._call("GetQueueAttributes", QueueUrl=url, AttributeNames=["QueueArn"])

    async def receive(self, max_messages: int, wait_seconds: float) -> list[Message]:
        if max_messages < 1:
            raise ValueError(f"max_messages must be at least 1, not {max_messages}")
        deadline = time.monotonic() + max(0.0, wait_seconds)
        out: list[Message] = []
        while len(out) < max_messages:
            left = deadline - time.monotonic()
            wait = 0 if out else min(self._config.max_wait, max(0, int(left)))
            try:
                raws = await self._receive(min(MAX_BATCH, max_messages - len(out)), wait)
            except SourceError:
                if out:
                    return out  # received already: deliver them; the next call meets the error
                raise
            now_ms = time.time_ns() // 1_000_000
            out += [message_of(raw, now_ms) for raw in raws]
            if not raws and (out or deadline - time.monotonic() < 1):
                break  # the queue has no more at once, or the wait is over
        return out

    async def ack(self, messages: Sequence[Message]) -> None:
        await self._settle("DeleteMessageBatch", messages, {})

    async def retry(self, messages: Sequence[Message]) -> None:
        await self._settle("ChangeMessageVisibilityBatch", messages, {"VisibilityTimeout": 0})

    async def dead_letter(self, messages: Sequence[Message], reason: str) -> None:
        target = self._config.dead_letter_url
        if target is None:
            raise SourceConfigError(f"no dead-letter queue for {self._config.queue_url}")
        fresh = [m for m in messages if _handle(m).receipt not in self._copied]
        entries = [dead_letter_entry(m, str(i), reason, self._arn) for i, m in enumerate(fresh)]
        if target.endswith(".fifo"):
            for entry, message in zip(entries, fresh, strict=True):
                entry["MessageGroupId"] = _handle(message).group or "lambdalet"
                entry["MessageDeduplicationId"] = message.id
        failed: list[str] = []
        for batch in chunks(entries, entry_size):
            reply = await self._call("SendMessageBatch", QueueUrl=target, Entries=batch)
            for ok in reply.get("Successful", ()):
                self._remember(_handle(fresh[int(ok["Id"])]).receipt)
            failed += [f"{f.get('Code')}: {f.get('Message')}" for f in reply.get("Failed", ())]
        copied = [m for m in messages if _handle(m).receipt in self._copied]
        await self.ack(copied)
        if failed:
            raise SourceError(f"{len(failed)} dead letters refused by {target}: {failed[:3]}")

    async def depth(self) -> int | None:
        reply = await self._call(
            "GetQueueAttributes",
            QueueUrl=self._config.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )
        attributes = reply.get("Attributes", {})
        return int(attributes.get("ApproximateNumberOfMessages", 0)) + int(
            attributes.get("ApproximateNumberOfMessagesNotVisible", 0)
        )

    async def close(self) -> None:
        client, self._client = self._client, None
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)  # a long poll ends by its timeout
        if client is not None:
            client.close()

    # -- calls ------------------------------------------------------------------------------------

    def _new_client(self) -> Any:
        config = self._config
        keys: dict[str, str] = {}
        if self._credentials is not None:
            keys = {
                "aws_access_key_id": self._credentials.access_key_id,
                "aws_secret_access_key": self._credentials.secret_access_key,
            }
        return botocore.session.get_session().create_client(
            "sqs",
            region_name=config.region,
            endpoint_url=config.endpoint,
            config=Config(
                connect_timeout=CONNECT_TIMEOUT,
                read_timeout=READ_TIMEOUT,
                retries={"mode": "standard", "total_max_attempts": 2},
                max_pool_connections=WORKERS,
            ),
            **keys,
        )

    async def _receive(self, count: int, wait: int) -> list[Raw]:
        """One ReceiveMessage; its messages are given back if the caller is cancelled meanwhile."""
        client, pool = self._started()
        url = self._config.queue_url
        future: Future[Any] = pool.submit(
            _run,
            client,
            "ReceiveMessage",
            QueueUrl=url,
            MaxNumberOfMessages=count,
            WaitTimeSeconds=wait,
            VisibilityTimeout=self._config.visibility_timeout,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        try:
            async with asyncio.timeout(CALL_DEADLINE):
                reply = await asyncio.shield(asyncio.wrap_future(future))
        except asyncio.CancelledError:
            future.add_done_callback(lambda done: _give_back(client, pool, url, done))
            raise
        except TimeoutError as exc:
            future.add_done_callback(lambda done: _give_back(client, pool, url, done))
            raise SourceError(f"{url}: ReceiveMessage did not answer in time") from exc
        messages: list[Raw] = reply.get("Messages", [])
        return messages

    async def _settle(
        self, operation: str, messages: Sequence[Message], extra: Mapping[str, Any]
    ) -> None:
        """A Delete/ChangeMessageVisibility batch call per 10 messages; see the docstring for
        which refused entries are errors."""
        failed: list[str] = []
        for batch in chunks(messages):
            entries = [
                {"Id": str(i), "ReceiptHandle": _handle(m).receipt, **extra}
                for i, m in enumerate(batch)
            ]
            reply = await self._call(operation, QueueUrl=self._config.queue_url, Entries=entries)
            for entry in reply.get("Failed", ()):
                message = batch[int(entry["Id"])]
                if entry.get("Code") == INVALID_HANDLE:
                    log.info("%s: message %s is no longer ours to settle", operation, message.id)
                else:
                    failed.append(f"{message.id}: {entry.get('Code')}: {entry.get('Message')}")
        if failed:
            raise SourceError(f"{operation} refused {len(failed)} entries: {failed[:3]}")

    async def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        client, pool = self._started()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(CALL_DEADLINE):
                reply: dict[str, Any] = await loop.run_in_executor(
                    pool, lambda: _run(client, operation, **params)
                )
        except TimeoutError as exc:
            raise SourceError(f"{operation} did not answer in time") from exc
        return reply

    def _started(self) -> tuple[Any, ThreadPoolExecutor]:
        if self._client is None or self._pool is None:
            raise SourceError("the SQS source is not started")
        return self._client, self._pool

    def _remember(self, receipt: str) -> None:
        self._copied[receipt] = None
        while len(self._copied) > REMEMBERED:
            self._copied.popitem(last=False)


def _run(client: Any, operation: str, **params: Any) -> dict[str, Any]:
    """One botocore call (in a worker thread), its errors mapped once to the source's."""
    method = getattr(client, _snake(operation))
    try:
        reply: dict[str, Any] = method(**params)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        where = params.get("QueueUrl", "")
        if code in MISSING_QUEUE:
            raise SourceConfigError(
                f"queue {where} does not exist; create it (Lambdalet creates no queues)"
            ) from exc
        if code in REFUSED:
            raise SourceConfigError(f"{where} refused the credentials or access: {code}") from exc
        raise SourceError(f"{operation} {where}: {code}: {error.get('Message')}") from exc
    except NoCredentialsError as exc:
        raise SourceConfigError("no AWS credentials: set credentialsSecret") from exc
    except BotoCoreError as exc:
        raise SourceError(f"{operation}: {type(exc).__name__}: {exc}") from exc
    return reply


def _give_back(client: Any, pool: ThreadPoolExecutor, url: str, done: Future[Any]) -> None:
    """Messages of a receive nobody waits for any more: visible again at once."""
    if done.cancelled() or done.exception() is not None:
        return
    entries = [
        {"Id": str(i), "ReceiptHandle": raw["ReceiptHandle"], "VisibilityTimeout": 0}
        for i, raw in enumerate(done.result().get("Messages", []))
    ]
    if entries:
        try:
            pool.submit(_run, client, "ChangeMessageVisibilityBatch", QueueUrl=url, Entries=entries)
        except RuntimeError:  # the pool is shut down: the visibility timeout gives them back
            log.info("%d received messages return after their visibility timeout", len(entries))


def _handle(message: Message) -> _Handle:
    if not isinstance(message.handle, _Handle):
        raise TypeError(f"message {message.id} was not received from an SqsSource")
    return message.handle


def _snake(operation: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in operation).lstrip("_")


async def credentials_from(secret: SecretReader, name: str) -> Credentials:
    """The key pair in Secret ``name`` (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``)."""
    return Credentials(
        access_key_id=await secret(name, "AWS_ACCESS_KEY_ID"),
        secret_access_key=await secret(name, "AWS_SECRET_ACCESS_KEY"),
    )


async def build(request: Build) -> list[Source]:
    """One independent receiver per poller for an EventSource's ``sqs``."""
    block = request.spec.sqs
    assert block is not None
    credentials = None
    if block.credentials_secret is not None:
        credentials = await credentials_from(request.secret, block.credentials_secret.name)
    return [
        SqsSource.from_spec(
            block,
            visibility_timeout=visibility_timeout(request.held),
            credentials=credentials,
            dead_letter=request.spec.dead_letter,
        )
        for _ in request.consumers
    ]
