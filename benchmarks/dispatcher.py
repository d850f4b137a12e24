"""P6: messages per second from a Redis stream into a no-op Function, through the real path.

    .venv/bin/python benchmarks/dispatcher.py [--messages 50000] [--batch-sizes 100,1]
                                              [--concurrency 6]

The path: a redis-server started here (127.0.0.1, no persistence) -> ``RedisStreamsSource`` ->
the delivery loop (``Delivery``: batches, SQS records, outcomes) -> ``ActivatorInvoker`` (its own
keep-alive HTTP/1.1 client) -> the activator's Invoke API (its HTTP server, app, proxy and pool
in this process, on uvloop, told its pods the way ``kube`` would) -> real agents
(runtime-images/agent, built with Go) -> the Python runtime -> a no-op handler (``return None``).

Each batch size runs with one poller (one delivery loop, an EventSource's default) and, when
``--concurrency`` N is above 1, again with N pollers: N delivery loops with a source each (Redis
consumers ``bench``, ``bench-1``, ...), as an EventSource with ``maxConcurrency: N`` has. The
Function has as many instances as pollers: an agent runs one invocation at a time (Lambda's
one event per instance), so N agents are started, on 127.0.0.1, 127.0.0.2, ... (the activator
keys pods by IP) and the activator is told all of a run's as the Function's pods.

For each run: the stream is pre-filled with the messages (not timed), the loops start, and
the clock stops when every message is settled. Printed per run: msg/s next to the target
(>= 5,000 msg/s with 0 lost: "target met" or "MISSED"), invocations, and the CPU seconds (and
microseconds per message) of this process (dispatcher + activator), of the agents with their
runtimes, and of redis-server: on a small machine their sum per message is what bounds the rate.
``lost = produced - acked - dead``, where acked is what Redis says the group acknowledged
(entries read minus those still pending) and dead the dead-letter stream's length. Exits
non-zero when a run does not finish or loses a message, never for a missed rate.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis
import redis.asyncio

from lambdalet.activator.app import Activator
from lambdalet.activator.http1 import serve
from lambdalet.activator.metrics import Metrics
from lambdalet.activator.model import FunctionConfig
from lambdalet.activator.proxy import Proxy
from lambdalet.activator.upstream import Pool
from lambdalet.dispatcher.delivery.invoker import ActivatorInvoker, InvokerSettings
from lambdalet.dispatcher.delivery.loop import Delivery, DeliverySettings
from lambdalet.dispatcher.delivery.outcome import Policy
from lambdalet.dispatcher.replica.runners import poller_consumer, total_stats
from lambdalet.dispatcher.sources.redis_streams import (
    RedisStreamsConfig,
    RedisStreamsSource,
    connector,
)
from tests.kit.ports import free_port

REPO = Path(__file__).resolve().parents[1]
NAMESPACE, FUNCTION = "bench", "noop"
STREAM, DLQ = "bench-orders", "bench-orders-dlq"
HANDLER = "def handler(event, context):\n    return None\n"
TARGET_RATE = 5_000  # msg/s
RUN_TIMEOUT = 900.0  # seconds one run may take
FILL_CHUNK = 5_000  # XADDs per pipeline when pre-filling
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Pollers (and instances) of each batch size's second run. On 2 cores, batch size 1: 1 poller
# ~1,050 msg/s, 2 ~1,750, 4 ~1,800, 6 ~1,900, 8 ~1,750: from 2 pollers on the cores are busy
# and the CPU per message of the three processes bounds the rate; more agents only contend.
DEFAULT_CONCURRENCY = 6


@dataclass(frozen=True)
class Result:
    batch_size: int
    concurrency: int
    produced: int
    acked: int
    dead: int
    seconds: float
    invocations: int
    own_cpu: float  # this process: dispatcher + activator
    agent_cpu: float  # the agents and their runtimes
    redis_cpu: float
    finished: bool

    @property
    def lost(self) -> int:
        return self.produced - self.acked - self.dead

    @property
    def rate(self) -> float:
        return self.acked / self.seconds if self.seconds > 0 else 0.0


# -- processes ------------------------------------------------------------------------------------


@contextmanager
def redis_server(workdir: Path) -> Iterator[tuple[int, int]]:
    """A redis-server on 127.0.0.1 without persistence: (pid, port)."""
    executable = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = free_port()
    args = [
        executable, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(workdir),
        "--save", "", "--appendonly", "no", "--logfile", str(workdir / "redis.log"),
    ]  # fmt: skip
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"redis-server did not start; see {workdir}") from None
                time.sleep(0.05)
        client.close()
        yield process.pid, port
    finally:
        process.terminate()
        process.wait(10)


def cpu_seconds(pids: Sequence[int]) -> float:
    """utime + stime of the processes and their children's, from /proc."""
    total = 0.0
    for pid in pids:
        for child in [pid, *children(pid)]:
            try:
                fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return total


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found + [grand for child in found for grand in children(child)]


# -- one run --------------------------------------------------------------------------------------


class NoTokens:
    async def token(self, namespace: str, secret: str, key: str) -> str | None:
        return None


async def fill(client: redis.asyncio.Redis, count: int) -> None:
    body = '{"order": %d, "item": "widget", "quantity": 1}'
    for start in range(0, count, FILL_CHUNK):
        pipe = client.pipeline(transaction=False)
        for n in range(start, min(count, start + FILL_CHUNK)):
            pipe.xadd(STREAM, {"body": body % n})
        await pipe.execute()


async def group_acked(client: redis.asyncio.Redis, group: str) -> tuple[int, int]:
    """(entries the group read and acknowledged, entries still pending)."""
    for info in await client.xinfo_groups(STREAM):
        if info["name"] in (group, group.encode()):
            read = int(info.get("entries-read") or 0)
            pending = int(info["pending"])
            return read - pending, pending
    return 0, 0


@dataclass(frozen=True)
class Instance:
    """An agent serving the Function, as a pod: its address and process."""

    ip: str
    port: int
    pid: int


def pollers(
    redis_url: str, group: str, invoker: ActivatorInvoker, settings: DeliverySettings, count: int
) -> list[Delivery]:
    """``count`` delivery loops with a source each, as ``runners.QueueRunner`` builds them."""
    return [
        Delivery(
            RedisStreamsSource(
                connector(redis_url, max_wait=1.0),
                RedisStreamsConfig(
                    stream=STREAM,
                    consumer=poller_consumer("bench", index),
                    group=group,
                    dead_letter_stream=DLQ,
                    max_wait=1.0,
                ),
            ),
            invoker,
            settings,
        )
        for index in range(count)
    ]


async def run_one(
    batch_size: int,
    concurrency: int,
    messages: int,
    redis_port: int,
    redis_pid: int,
    instances: Sequence[Instance],
) -> Result:
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    client = redis.asyncio.Redis.from_url(redis_url)
    await client.flushall()
    await fill(client, messages)

    metrics = Metrics()
    proxy = Proxy(Pool(), poke=lambda key: None, metrics=metrics)
    config = FunctionConfig(NAMESPACE, FUNCTION, per_instance=1, timeout_seconds=30.0)
    proxy.set_config(config)
    pods = instances[:concurrency]
    proxy.set_ready(config.key, {pod.ip: pod.port for pod in pods})
    app = Activator(proxy, proxy, tokens=NoTokens(), async_queue=None, metrics=metrics)
    server = await serve(app.handle, "127.0.0.1", 0)
    activator_url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    invoker = ActivatorInvoker(InvokerSettings(activator_url, max_connections=concurrency))
    group = f"bench-{batch_size}-{concurrency}"
    settings = DeliverySettings(
        config.key,
        batch_size=batch_size,
        policy=Policy(max_retries=2, dead_letter=True),
        receive_wait=1.0,
    )
    deliveries = pollers(redis_url, group, invoker, settings, concurrency)

    agent_pids = [pod.pid for pod in pods]
    own_before, agent_before, redis_before = (
        os.times(),
        cpu_seconds(agent_pids),
        cpu_seconds([redis_pid]),
    )
    started = time.monotonic()
    tasks = [asyncio.create_task(delivery.run()) for delivery in deliveries]
    while True:
        stats = total_stats([delivery.stats for delivery in deliveries])
        if stats.acked + stats.dead_lettered + stats.dropped >= messages:
            break
        if any(task.done() for task in tasks) or time.monotonic() - started > RUN_TIMEOUT:
            break
        await asyncio.sleep(0.01)
    seconds = time.monotonic() - started
    own_after = os.times()
    agent_cpu = cpu_seconds(agent_pids) - agent_before
    redis_cpu = cpu_seconds([redis_pid]) - redis_before
    for delivery in deliveries:
        delivery.stop()
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
    finally:
        for task in tasks:
            task.cancel()
    stats = total_stats([delivery.stats for delivery in deliveries])
    acked, pending = await group_acked(client, group)
    dead = int(await client.xlen(DLQ))
    await invoker.aclose()
    server.close()
    proxy.close()
    await client.aclose()
    own = own_after.user + own_after.system - own_before.user - own_before.system
    return Result(
        batch_size=batch_size,
        concurrency=concurrency,
        produced=messages,
        acked=acked,
        dead=dead,
        seconds=seconds,
        invocations=stats.invocations,
        own_cpu=own,
        agent_cpu=agent_cpu,
        redis_cpu=redis_cpu,
        finished=pending == 0 and acked + dead == messages,
    )


# -- report ---------------------------------------------------------------------------------------


def row(result: Result) -> str:
    verdict = "target met" if result.rate >= TARGET_RATE and result.lost == 0 else "MISSED"
    us = 1e6 / max(result.acked, 1)  # microseconds per message, per CPU second
    total = result.own_cpu + result.agent_cpu + result.redis_cpu
    return "\n".join(
        [
            f"P6 batch size {result.batch_size:>4}, {result.concurrency} poller(s): "
            f"{result.rate:>8,.0f} msg/s  (target >= {TARGET_RATE:,} msg/s, 0 lost: {verdict})",
            f"    produced {result.produced:,}, acked {result.acked:,}, dead {result.dead:,}, "
            f"lost {result.lost:,}; {result.invocations:,} invocations in {result.seconds:.2f} s",
            f"    CPU: dispatcher + activator {result.own_cpu:.2f} s ({result.own_cpu * us:.0f} "
            f"us/msg), agents + runtimes {result.agent_cpu:.2f} s ({result.agent_cpu * us:.0f} "
            f"us/msg), redis-server {result.redis_cpu:.2f} s ({result.redis_cpu * us:.0f} us/msg); "
            f"sum {total * us:.0f} us/msg",
        ]
    )


def runs(batch_sizes: Sequence[int], concurrency: int) -> list[tuple[int, int]]:
    """(batch size, pollers) of each run: each size with one poller, and with N when N > 1."""
    levels = sorted({1, concurrency})
    return [(size, level) for size in batch_sizes for level in levels]


async def bench(
    plan: Sequence[tuple[int, int]],
    messages: int,
    redis_port: int,
    redis_pid: int,
    instances: Sequence[Instance],
) -> list[Result]:
    return [
        await run_one(size, level, messages, redis_port, redis_pid, instances)
        for size, level in plan
    ]


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=50_000, help="pre-filled per run")
    parser.add_argument("--batch-sizes", default="100,1", help="comma-separated")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=DEFAULT_CONCURRENCY,
        help="pollers (maxConcurrency) and Function instances of the second run of each batch "
        f"size (default {DEFAULT_CONCURRENCY}; 1: one run each, one poller)",
    )
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.batch_sizes.split(",")]
    if not 1 <= args.concurrency <= 250:
        parser.error("--concurrency must be within 1..250 (one loopback address per instance)")
    plan = runs(sizes, args.concurrency)
    sys.path.insert(0, str(REPO))
    import uvloop

    from tests.kit.servers.agent import build_agent, running_agent

    with tempfile.TemporaryDirectory(prefix="lambdalet-bench-dispatcher-") as scratch:
        binary = build_agent(Path(scratch))
        env = {"LAMBDALET_CONCURRENCY": "1", "AWS_LAMBDA_FUNCTION_NAME": FUNCTION}
        with ExitStack() as stack:
            redis_pid, redis_port = stack.enter_context(redis_server(Path(scratch)))
            instances = []
            for index in range(args.concurrency):
                workdir = Path(scratch, f"pod{index}")
                agent = stack.enter_context(
                    running_agent(binary, workdir, {"app.py": HANDLER}, env=env)
                )
                instances.append(Instance(f"127.0.0.{index + 1}", agent.port, agent.process.pid))
            print(
                f"P6: {args.messages:,} messages per run; concurrency {args.concurrency}: "
                f"1 or {args.concurrency} delivery loop(s) -> activator (in-process, uvloop) -> "
                "as many agents + Python runtimes (no-op handler, one invocation at a time each)"
            )
            results = uvloop.run(bench(plan, args.messages, redis_port, redis_pid, instances))
    failed = False
    for result in results:
        print(row(result))
        if not result.finished or result.lost:
            print(
                f"    ERROR: run with batch size {result.batch_size} and {result.concurrency} "
                "poller(s) did not settle every message"
            )
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
