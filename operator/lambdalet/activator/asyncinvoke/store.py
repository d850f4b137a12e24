"""The Redis side of asynchronous invocations: key names and the atomic moves between them.

Where it sits: ``queue`` (enqueue and the worker) decides; this module only stores. Every move
that takes an event out of a function's stream and puts it somewhere else (a delayed retry, a
destination, the dead-letter stream) is one Lua script, so it happens entirely or not at all,
and it first acknowledges the entry: when two workers hold the same entry (one was presumed
dead and its entry reclaimed), only the first to finish moves it, the other finds it gone.

Keys, with ``prefix`` "lambdalet" (namespaces and names hold no ':', so they cannot collide):

    lambdalet:async:<namespace>:<name>   stream of one Function's events (waiting and in
                                         progress), consumer group ``group``; acknowledged
                                         entries are deleted, so XLEN is waiting + in progress
    lambdalet:async-streams              set of those streams: what workers read
    lambdalet:async-delayed              sorted set: retry id -> wall-clock second it is due
    lambdalet:async-retry:<retry id>     hash: the fields of a delayed event, plus ``_stream``
    lambdalet:async-delayed-count        hash: stream -> how many of its events are delayed
    lambdalet:dlq:<namespace>:<name>     dead-letter stream of a Function with no onFailure

One stream per Function rather than one shared stream: a backlog of one Function does not hold
up the others' events, and its depth and bound are XLEN + HGET, two O(1) reads. The scripts
name keys they compute (a retry's stream), so this needs a single Redis server (with replicas
or Sentinel), not Redis Cluster.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from lambdalet.contracts.keys import Key

# KEYS: destination stream, delayed-count hash, stream set, source stream.
# ARGV: group, limit (0: none), register ("1": a function stream), source id ("": none), fields.
# Returns -1: destination full; 0: source entry already handled elsewhere; 1: moved.
_ADD = """
local limit = tonumber(ARGV[2])
if limit > 0 then
  local delayed = tonumber(redis.call('HGET', KEYS[2], KEYS[1]) or '0')
  if redis.call('XLEN', KEYS[1]) + delayed >= limit then return -1 end
end
if ARGV[4] ~= '' then
  if redis.call('XACK', KEYS[4], ARGV[1], ARGV[4]) == 0 then return 0 end
  redis.call('XDEL', KEYS[4], ARGV[4])
end
if ARGV[3] == '1' then
  if redis.call('EXISTS', KEYS[1]) == 0 then
    redis.call('XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')
  end
  redis.call('SADD', KEYS[3], KEYS[1])
end
redis.call('XADD', KEYS[1], '*', unpack(ARGV, 5))
return 1
"""

# KEYS: source stream, delayed set, retry hash, delayed-count hash.
# ARGV: group, source id, due, retry id, fields. Returns 0: already handled elsewhere; 1: moved.
_RETRY_LATER = """
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[3], '_stream', KEYS[1], unpack(ARGV, 5))
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
redis.call('HINCRBY', KEYS[4], KEYS[1], 1)
return 1
"""

# KEYS: delayed set, delayed-count hash. ARGV: now, most to move, retry hash prefix.
# Moves due retries back to the end of their streams; returns {moved, next due or nil}.
_PROMOTE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(due) do
  local hash = ARGV[3] .. member
  local flat = redis.call('HGETALL', hash)
  local stream, fields = nil, {}
  for i = 1, #flat, 2 do
    if flat[i] == '_stream' then
      stream = flat[i + 1]
    else
      fields[#fields + 1] = flat[i]
      fields[#fields + 1] = flat[i + 1]
    end
  end
  if stream ~= nil and #fields > 0 then
    redis.call('XADD', stream, '*', unpack(fields))
    if redis.call('HINCRBY', KEYS[2], stream, -1) <= 0 then redis.call('HDEL', KEYS[2], stream) end
  end
  redis.call('DEL', hash)
  redis.call('ZREM', KEYS[1], member)
end
local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {#due, nxt[2] or false}
"""

# KEYS: stream. ARGV: group, id. Returns 1 when this call acknowledged (and deleted) the entry.
_ACK = """
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
"""

ADDED, ALREADY_HANDLED, FULL = 1, 0, -1


@dataclass(frozen=True)
class Entry:
    """One stream entry delivered to this consumer."""

    stream: str
    id: str
    fields: Mapping[bytes, bytes]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _entries(stream: bytes | str, items: Sequence[Any]) -> list[Entry]:
    # A pending entry deleted meanwhile comes back with no fields (Redis < 7); skip it.
    return [Entry(_text(stream), _text(item[0]), item[1]) for item in items if item[1] is not None]


class AsyncStore:
    """Keys and atomic moves of the asynchronous queue; see the module docstring."""

    def __init__(self, client: Redis, *, prefix: str = "lambdalet", group: str) -> None:
        self._client = client
        self._prefix = prefix
        self._group = group
        self._streams_key = f"{prefix}:async-streams"
        self._delayed_key = f"{prefix}:async-delayed"
        self._count_key = f"{prefix}:async-delayed-count"
        self._retry_prefix = f"{prefix}:async-retry:"
        self._with_group: set[str] = set()
        self._add = client.register_script(_ADD)
        self._retry_later = client.register_script(_RETRY_LATER)
        self._promote = client.register_script(_PROMOTE)
        self._ack = client.register_script(_ACK)

    def stream(self, key: Key) -> str:
        return f"{self._prefix}:async:{key[0]}:{key[1]}"

    def dead_letter_stream(self, key: Key) -> str:
        return f"{self._prefix}:dlq:{key[0]}:{key[1]}"

    def key_of(self, stream: str) -> Key:
        namespace, _, name = stream.removeprefix(f"{self._prefix}:async:").partition(":")
        return (namespace, name)

    async def add(
        self,
        stream: str,
        fields: Mapping[bytes, bytes],
        *,
        limit: int = 0,
        function_stream: bool = False,
        source: Entry | None = None,
    ) -> int:
        """XADD ``fields`` to ``stream``, acknowledging and deleting ``source`` in the same step.

        A function stream gets the consumer group and joins the set workers read; ``limit``
        bounds its depth (see ``depth``). Returns ADDED, ALREADY_HANDLED or FULL.
        """
        flat = [part for pair in fields.items() for part in pair]
        result = await self._add(
            keys=[stream, self._count_key, self._streams_key, source.stream if source else stream],
            args=[
                self._group,
                limit,
                "1" if function_stream else "0",
                source.id if source else "",
                *flat,
            ],
        )
        return int(result)

    async def retry_later(
        self, entry: Entry, fields: Mapping[bytes, bytes], *, due_at: float, retry_id: str
    ) -> bool:
        """Move ``entry`` into the delayed set, as ``fields``, until ``due_at``."""
        flat = [part for pair in fields.items() for part in pair]
        result = await self._retry_later(
            keys=[entry.stream, self._delayed_key, self._retry_prefix + retry_id, self._count_key],
            args=[self._group, entry.id, repr(due_at), retry_id, *flat],
        )
        return int(result) == ADDED

    async def ack(self, entry: Entry) -> bool:
        return int(await self._ack(keys=[entry.stream], args=[self._group, entry.id])) == ADDED

    async def promote(self, now: float, *, limit: int = 1000) -> float | None:
        """Move up to ``limit`` retries due by ``now`` back into their streams.

        Returns when the next remaining retry is due, or None when none is left.
        """
        _moved, next_due = await self._promote(
            keys=[self._delayed_key, self._count_key],
            args=[repr(now), limit, self._retry_prefix],
        )
        return None if next_due is None else float(next_due)

    async def depth(self, key: Key) -> int:
        """Events of a Function waiting, in progress or delayed: XLEN + HGET, one round trip."""
        stream = self.stream(key)
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.xlen(stream)
            pipe.hget(self._count_key, stream)
            length, delayed = await pipe.execute()
        return int(length) + int(delayed or 0)

    async def streams(self) -> list[str]:
        """The function streams, each with the consumer group (created here when missing)."""
        names = sorted(_text(name) for name in await self._client.smembers(self._streams_key))
        for name in names:
            if name not in self._with_group:
                try:
                    await self._client.xgroup_create(name, self._group, id="0", mkstream=True)
                except ResponseError as exc:
                    if "BUSYGROUP" not in str(exc):
                        raise
                self._with_group.add(name)
        return names

    async def read(
        self, consumer: str, streams: Sequence[str], *, count: int, block_ms: int | None, new: bool
    ) -> list[Entry]:
        """Entries of ``streams`` for ``consumer``: new ones (``new``), else its own pending ones.

        ``count`` applies per stream: entries already waiting in several streams come back
        together, so the result may hold more than ``count`` entries.
        """
        start = ">" if new else "0"
        try:
            reply = await self._client.xreadgroup(
                self._group, consumer, dict.fromkeys(streams, start), count=count, block=block_ms
            )
        except ResponseError as exc:
            self._lost_group(exc)
            return []
        pairs = reply.items() if isinstance(reply, dict) else (reply or [])
        return [entry for stream, items in pairs for entry in _entries(stream, items)]

    def _lost_group(self, exc: ResponseError) -> None:
        """A stream deleted and created again (by a late retry) lost its group: make it again."""
        if "NOGROUP" not in str(exc):
            raise exc
        self._with_group.clear()

    async def claim_idle(
        self, stream: str, consumer: str, *, min_idle_ms: int, count: int
    ) -> list[Entry]:
        """Take over entries of ``stream`` that another consumer left unacknowledged too long."""
        try:
            reply = await self._client.xautoclaim(
                stream, self._group, consumer, min_idle_ms, "0-0", count=count
            )
        except ResponseError as exc:
            self._lost_group(exc)
            return []
        return _entries(stream, reply[1])

    async def reconfirm(self, entry: Entry, consumer: str, *, min_idle_ms: int) -> bool:
        """Whether ``consumer`` still holds ``entry`` after ``min_idle_ms`` (and reset its idle).

        Succeeds only if nobody claimed it meanwhile: a claim resets the idle time below it.
        """
        claimed = await self._client.xclaim(
            entry.stream, self._group, consumer, min_idle_ms, [entry.id], justid=True
        )
        return bool(claimed)
