"""The Redis Streams source: one stream read through a consumer group (``Source``).

Where it sits: ``delivery`` receives, acks, retries and dead-letters through this class; it is
the only code of the dispatcher that talks to a Redis server for an EventSource.

Choices, and why:

* The group is created with ``XGROUP CREATE <stream> <group> 0 MKSTREAM`` when missing: it starts
  at the beginning of the stream (Lambda's TRIM_HORIZON), so what producers wrote before the
  EventSource existed is delivered too, as an SQS queue would. An existing group is left as it is.
* A stream entry's field ``body`` is the message body; its other fields become message attributes
  (field names and values as text, bytes that are not UTF-8 replaced by U+FFFD). An entry without
  a ``body`` field is delivered in full: its body is a JSON object of all its fields. The entry id
  is the messageId, its milliseconds part the SentTimestamp.
* ``ack`` is ``XACK`` only. Entries stay in the stream: other groups may read it, and bounding it
  (``XADD ... MAXLEN``) is its producers' business.
* ``retry`` keeps the entries pending (so no other consumer takes them) and notes their ids; the
  next ``receive`` takes them first, with ``XCLAIM`` to this consumer, which counts the delivery.
  ``receive_count`` is always Redis' own delivery counter (``XPENDING``), so it survives restarts
  of the dispatcher. ApproximateFirstReceiveTimestamp is remembered across retries; for entries
  reclaimed from another consumer it is not known and the sent time is given instead.
* Entries left pending by a consumer that died (idle longer than ``min_idle``, which must exceed
  the longest time the delivery loop holds a batch: the invoke timeout plus the failure hold) are
  taken over with ``XAUTOCLAIM``, scanning at most every ``reclaim_interval`` seconds.
* ``dead_letter`` copies each entry's fields to the dead-letter stream, with ``lambdalet.id``
  (the original id), ``lambdalet.stream``, ``lambdalet.reason`` and ``lambdalet.receiveCount``,
  and acknowledges it, in one Lua script (atomic): an entry no longer pending (another consumer
  finished it) is not dead-lettered twice, and a failed XADD leaves it pending, never lost. The
  dead-letter stream lives on the same server (a cross-broker target is not supported here).
  Keys of the stream and the dead-letter stream must hash alike on Redis Cluster.
* ``depth`` is the group's ``lag`` (entries not yet delivered to it) plus its ``pending`` count,
  from ``XINFO GROUPS`` (Redis >= 7), without scanning; None when Redis cannot tell the lag
  (after deletions in the middle of the stream).
"""

from __future__ import annotations

import itertools
import json
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, RedisError, ResponseError

from lambdalet.api.eventsource import DeadLetter, DeadLetterType, RedisStreams
from lambdalet.dispatcher.sources.source import (
    Build,
    Message,
    Source,
    SourceConfigError,
    SourceError,
)

BODY_FIELD = b"body"
ACCOUNT = "000000000000"  # the account part of the ARN: there is no AWS account
SOCKET_MARGIN = 10.0  # seconds a blocking read may take beyond its BLOCK time
CONNECT_TIMEOUT = 5.0
RETRY_LIMIT = 10_000  # ids noted for retry (more than any batch); beyond, XAUTOCLAIM gets them

# KEYS: stream, dead-letter stream. ARGV: group, reason, stream name, then per entry:
# id, receive count, number of field values, field values. Returns the entries moved.
_DEAD_LETTER = """
local moved, i = 0, 4
while i <= #ARGV do
  local id, count, n = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  if #redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1) == 1 then
    local fields = {}
    for j = 1, n do fields[j] = ARGV[i + 2 + j] end
    fields[n + 1], fields[n + 2] = 'lambdalet.id', id
    fields[n + 3], fields[n + 4] = 'lambdalet.stream', ARGV[3]
    fields[n + 5], fields[n + 6] = 'lambdalet.reason', ARGV[2]
    fields[n + 7], fields[n + 8] = 'lambdalet.receiveCount', count
    redis.call('XADD', KEYS[2], '*', unpack(fields))
    redis.call('XACK', KEYS[1], ARGV[1], id)
    moved = moved + 1
  end
  i = i + 3 + n
end
return moved
"""


@dataclass(frozen=True)
class RedisStreamsConfig:
    stream: str
    consumer: str  # unique per delivery loop (e.g. <dispatcher pod>-<EventSource uid>)
    group: str = "lambdalet"
    dead_letter_stream: str | None = None
    region: str = "us-east-1"  # for the ARN and the records' awsRegion
    min_idle: float = 300.0  # seconds pending before an entry counts as its consumer's loss
    reclaim_interval: float = 5.0  # seconds between scans for such entries
    max_wait: float = 20.0  # longest BLOCK of one read, seconds


@dataclass(frozen=True)
class _Handle:
    fields: Mapping[bytes, bytes]  # the entry as it is in the stream (for the dead letters)


Connect = Callable[[], "Redis"]
Entry = tuple[bytes, Mapping[bytes, bytes]]  # a stream entry: id, fields


def message_of(
    entry_id: bytes, fields: Mapping[bytes, bytes], receive_count: int, first_received_ms: int
) -> Message:
    """A stream entry as a ``Message`` (see the module docstring for the field rules)."""
    message_id = entry_id.decode()
    sent_at_ms = int(message_id.partition("-")[0])
    body = fields.get(BODY_FIELD)
    if body is None:
        doc = {_text(name): _text(value) for name, value in fields.items()}
        body, attributes = json.dumps(doc).encode(), {}
    else:
        attributes = {
            _text(name): _text(value) for name, value in fields.items() if name != BODY_FIELD
        }
    return Message(
        id=message_id,
        body=body,
        receive_count=receive_count,
        sent_at_ms=sent_at_ms,
        first_received_at_ms=first_received_ms or sent_at_ms,
        attributes=attributes,
        handle=_Handle(fields),
    )


def connector(url: str, *, password: str | None = None, max_wait: float = 20.0) -> Connect:
    """How the source connects: a read may block ``max_wait`` s, so the socket timeout is
    longer; redis-py reconnects once at once (a pooled connection the server closed), beyond
    that the error reaches the delivery loop, which backs off and starts the source again."""

    def connect() -> Redis:
        return Redis.from_url(
            url,
            password=password,
            socket_timeout=max_wait + SOCKET_MARGIN,
            socket_connect_timeout=CONNECT_TIMEOUT,
            retry=Retry(NoBackoff(), 1),
        )

    return connect


class RedisStreamsSource:
    def __init__(self, connect: Connect, config: RedisStreamsConfig) -> None:
        self._connect = connect
        self._config = config
        self._client: Redis | None = None
        self._dead_letter: Any = None  # the registered script (redis' AsyncScript)
        # Entries released by ``retry``: (id, first received ms), taken first by ``receive``.
        self._retries: deque[tuple[bytes, int]] = deque(maxlen=RETRY_LIMIT)
        self._cursor: bytes = b"0-0"  # where the next XAUTOCLAIM continues
        self._next_reclaim = 0.0  # monotonic time of the next scan

    @classmethod
    def from_spec(
        cls,
        spec: RedisStreams,
        *,
        consumer: str,
        password: str | None = None,
        dead_letter: DeadLetter | None = None,
        region: str = "us-east-1",
        min_idle: float = 300.0,
    ) -> RedisStreamsSource:
        """A source for an EventSource's ``redisStreams`` (its password read from the Secret)."""
        if dead_letter is not None and dead_letter.type != DeadLetterType.REDIS_STREAM:
            raise SourceConfigError(
                f"a Redis Streams source dead-letters to a redisStream, not {dead_letter.type}"
            )
        config = RedisStreamsConfig(
            stream=spec.stream,
            consumer=consumer,
            group=spec.consumer_group,
            dead_letter_stream=dead_letter.target if dead_letter else None,
            region=region,
            min_idle=min_idle,
        )
        url = spec.url or f"redis://{spec.address}"
        return cls(connector(url, password=password, max_wait=config.max_wait), config)

    @property
    def arn(self) -> str:
        return f"arn:aws:sqs:{self._config.region}:{ACCOUNT}:{self._config.stream}"

    async def start(self) -> None:
        config = self._config
        if self._client is None:
            self._client = self._connect()
            self._dead_letter = self._client.register_script(_DEAD_LETTER)
        with _errors():
            try:
                await self._client.xgroup_create(config.stream, config.group, "0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def receive(self, max_messages: int, wait_seconds: float) -> list[Message]:
        client = self._started()
        out: list[Message] = []
        try:
            with _errors():
                if self._retries:
                    out += await self._claim_retries(client, max_messages)
                if len(out) < max_messages and time.monotonic() >= self._next_reclaim:
                    held = {m.id for m in out}
                    out += await self._reclaim(client, max_messages - len(out), held)
                if len(out) < max_messages:
                    wait = 0 if out else wait_seconds
                    out += await self._read(client, max_messages - len(out), wait)
        except SourceError:
            if out:
                return out  # claimed already: deliver them; the next call meets the error
            raise
        return out

    async def ack(self, messages: Sequence[Message]) -> None:
        if not messages:
            return
        client = self._started()
        with _errors():
            await client.xack(self._config.stream, self._config.group, *_ids(messages))

    async def retry(self, messages: Sequence[Message]) -> None:
        self._retries.extend((m.id.encode(), m.first_received_at_ms) for m in messages)

    async def dead_letter(self, messages: Sequence[Message], reason: str) -> None:
        config = self._config
        if config.dead_letter_stream is None:
            raise SourceConfigError(f"no dead-letter stream for {config.stream}")
        if not messages:
            return
        self._started()
        args: list[bytes | str | int] = [config.group, reason, config.stream]
        for message in messages:
            fields = _fields(message)
            args += [message.id, message.receive_count, 2 * len(fields)]
            for name, value in fields.items():
                args += [name, value]
        with _errors():
            await self._dead_letter(keys=[config.stream, config.dead_letter_stream], args=args)

    async def depth(self) -> int | None:
        client = self._started()
        with _errors():
            groups = await client.xinfo_groups(self._config.stream)
        for group in groups:
            if _text(group["name"]) == self._config.group:
                lag = group.get("lag")
                return None if lag is None else int(lag) + int(group["pending"])
        return None

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with _errors():
                await client.aclose()

    # -- reading ----------------------------------------------------------------------------------

    def _started(self) -> Redis:
        if self._client is None:
            raise SourceError("the Redis Streams source is not started")
        return self._client

    async def _claim_retries(self, client: Redis, count: int) -> list[Message]:
        config = self._config
        taken = list(itertools.islice(self._retries, count))
        reply: Any = await client.xclaim(
            config.stream, config.group, config.consumer, 0, [entry_id for entry_id, _ in taken]
        )
        messages = await self._messages(client, _entries(reply), dict(taken))
        for _ in taken:  # noted until claimed: a failed claim is tried again next time
            self._retries.popleft()
        return messages

    async def _reclaim(self, client: Redis, count: int, held: set[str]) -> list[Message]:
        """Entries other consumers (or this one, in an earlier life) left pending too long."""
        config = self._config
        reply: Any = await client.xautoclaim(
            config.stream,
            config.group,
            config.consumer,
            int(config.min_idle * 1000),
            self._cursor,
            count=count,
        )
        self._cursor = _bytes(reply[0])
        if self._cursor == b"0-0":
            self._next_reclaim = time.monotonic() + config.reclaim_interval
        fresh = [entry for entry in _entries(reply[1]) if entry[0].decode() not in held]
        reclaimed = {entry_id for entry_id, _ in fresh}
        if any(entry_id in reclaimed for entry_id, _ in self._retries):
            self._retries = deque(
                (item for item in self._retries if item[0] not in reclaimed), maxlen=RETRY_LIMIT
            )
        return await self._messages(client, fresh, {})

    async def _read(self, client: Redis, count: int, wait_seconds: float) -> list[Message]:
        config = self._config
        block = int(min(wait_seconds, config.max_wait) * 1000)
        reply: Any = await client.xreadgroup(
            config.group,
            config.consumer,
            {config.stream: ">"},
            count=count,
            block=block if block >= 1 else None,
        )
        # RESP3: {stream: [[id, fields], ...]}; RESP2: [[stream, [[id, fields], ...]]].
        per_stream = reply.values() if isinstance(reply, dict) else [s[1] for s in reply or ()]
        now_ms = time.time_ns() // 1_000_000
        return [
            message_of(entry_id, fields, 1, now_ms)
            for items in per_stream
            for entry_id, fields in _entries(items)
        ]

    async def _messages(
        self, client: Redis, entries: Sequence[Entry], first_received: Mapping[bytes, int]
    ) -> list[Message]:
        """Claimed entries as messages, with their delivery counts from XPENDING."""
        if not entries:
            return []
        pipe = client.pipeline(transaction=False)
        for entry_id, _ in entries:
            pipe.xpending_range(self._config.stream, self._config.group, entry_id, entry_id, 1)
        pending: list[Any] = await pipe.execute()
        out = []
        for (entry_id, fields), rows in zip(entries, pending, strict=True):
            if not rows:
                continue  # acknowledged meanwhile
            count = int(rows[0]["times_delivered"])
            out.append(message_of(entry_id, fields, count, first_received.get(entry_id, 0)))
        return out


def _entries(items: Any) -> list[Entry]:
    """Stream entries of a reply as (id, fields); entries deleted meanwhile (no fields) left out."""
    out: list[Entry] = []
    for item in items or ():
        entry_id, fields = item[0], item[1]
        if fields:
            out.append((_bytes(entry_id), fields))
    return out


def _bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def _fields(message: Message) -> Mapping[bytes, bytes]:
    handle = message.handle
    if isinstance(handle, _Handle):
        return handle.fields
    return {BODY_FIELD: message.body}


def _ids(messages: Sequence[Message]) -> list[str]:
    return [message.id for message in messages]


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


@contextmanager
def _errors() -> Iterator[None]:
    """Redis errors as the ``Source`` contract's: config errors are the ones a retry won't fix."""
    try:
        yield
    except AuthenticationError as exc:
        raise SourceConfigError(f"Redis refused the credentials: {exc}") from exc
    except ResponseError as exc:
        text = str(exc)
        if text.startswith(("WRONGTYPE", "NOPERM", "NOAUTH")):
            raise SourceConfigError(f"Redis: {text}") from exc
        raise SourceError(f"Redis: {text}") from exc
    except (RedisError, OSError) as exc:
        raise SourceError(f"Redis: {type(exc).__name__}: {exc}") from exc


# Seconds before another consumer's pending entry is taken over (at least: longer when a message
# may be in our hands longer, see ``build``).
MIN_IDLE = 300.0


async def build(request: Build) -> list[Source]:
    """One source per poller for an EventSource's ``redisStreams``, consumers of the one group."""
    block = request.spec.redis_streams
    assert block is not None
    password = None
    if block.password_secret is not None:
        password = await request.secret(block.password_secret.name, block.password_secret.key)
    return [
        RedisStreamsSource.from_spec(
            block,
            consumer=consumer,
            password=password,
            dead_letter=request.spec.dead_letter,
            min_idle=max(MIN_IDLE, request.held + 30.0),
        )
        for consumer in request.consumers
    ]
