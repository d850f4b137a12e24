"""P3 and P4: what the activator adds to a warm invocation, and what one costs it in CPU.

    .venv/bin/python benchmarks/activator.py [--duration 10] [--warmup 2] [--agents 2]

Runs the activator in a process of its own, on uvloop, told its pods the way ``kube`` would, on
127.0.0.2, 127.0.0.3, ... (the proxy keys pods by IP). Load comes from benchmarks/loadgen (Go,
built here), which also serves as the stub pod. Prints each figure next to its baseline from the
same run, and "target met" or "MISSED":

    P3  open loop, 1,000 req/s, in front of N real agents (runtime-images/agent, built with Go)
        serving a no-op Python handler with LAMBDALET_CONCURRENCY=4: p50/p95 latency calling the
        pods directly (the v2 event the activator would send; at most 4 connections per pod, as
        the activator never has more than 4 invocations on one) and through the activator
        (GET /fn/bench/noop/, 16 connections), in 3 alternating rounds of each, so that drift in
        the machine falls on both alike; the figures are the medians of the rounds' percentiles,
        and the difference is the added latency (targets: p50 <= 0.5 ms, p95 <= 2 ms).
    P4  closed loop, 32 connections, through the activator in front of 2 stub pods (loadgen
        -serve, answering as an agent does at once; per_instance 64, so the activator never
        holds a request): requests per CPU-second of the activator process, from
        /proc/<pid>/stat (target: >= 10,000), with the achieved rate and the activator's CPU
        utilisation. The real agents saturate the machine's cores before the activator
        does, so P4 in front of them would measure them; that rate is shown for information,
        with the stubs' own requests per CPU-second, called directly.

and the activator's RSS at the end. Exits non-zero when something fails (a build, a process, a
request), never for a missed target. P4 runs for warmup + duration seconds; P3's rounds and the
informational runs each for warmup / 2 + duration / 3.

The activator side runs as
``benchmarks/activator.py --serve-activator PORT --pods ip:port,... --per-instance N``.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import logging
import os
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from lambdalet.activator.app import Activator
from lambdalet.activator.events import HttpRequest, Route, build_event
from lambdalet.activator.http1 import serve
from lambdalet.activator.metrics import Metrics
from lambdalet.activator.model import FunctionConfig
from lambdalet.activator.proxy import Proxy
from lambdalet.activator.upstream import Pool
from lambdalet.api.function import EventFormat

REPO = Path(__file__).resolve().parents[1]
LOADGEN_SOURCE = REPO / "benchmarks" / "loadgen"
LOADGEN_BINARY = Path.home() / ".cache" / "lambdalet" / "loadgen" / "loadgen"

NAMESPACE, FUNCTION = "bench", "noop"
HTTP_PATH = f"/fn/{NAMESPACE}/{FUNCTION}/"
INVOKE_PATH = "/2015-03-31/functions/function/invocations"
JSON_TYPE = "content-type: application/json"
PER_INSTANCE = 4  # the agents' LAMBDALET_CONCURRENCY
STUB_PODS, STUB_PER_INSTANCE = ("127.0.0.2", "127.0.0.3"), 64
HANDLER = 'def handler(event, context):\n    return {"statusCode": 200, "body": "ok"}\n'

P3_RATE, P3_CONNECTIONS, P3_ROUNDS = 1000, 16, 3
P3_ADDED_P50_MS, P3_ADDED_P95_MS = 0.5, 2.0
P4_CONNECTIONS = 32
P4_PER_CPU_SECOND = 10_000
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# -- the activator process ------------------------------------------------------------------------


class NoTokens:
    async def token(self, namespace: str, secret: str, key: str) -> str | None:
        return None


async def serve_activator(port: int, pods: Mapping[str, int], per_instance: int) -> None:
    """The activator's hot path as ``lambdalet.activator.main`` assembles it, minus the cluster."""
    metrics = Metrics()
    proxy = Proxy(Pool(), poke=lambda key: None, metrics=metrics)
    metrics.watch_loads(proxy.loads)
    config = FunctionConfig(NAMESPACE, FUNCTION, per_instance=per_instance)
    proxy.set_config(config)
    proxy.set_ready(config.key, pods)
    app = Activator(proxy, proxy, tokens=NoTokens(), async_queue=None, metrics=metrics)
    server = await serve(app.handle, "127.0.0.1", port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        server.close()
        proxy.close()


def parse_pods(text: str) -> dict[str, int]:
    """``127.0.0.2:8080,127.0.0.3:8081`` -> {ip: port}."""
    pods = {}
    for item in text.split(","):
        ip, _, port = item.strip().rpartition(":")
        pods[ip] = int(port)
    return pods


# -- values (pure) ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """One loadgen run, as its JSON line reports it."""

    requests: int
    errors: Mapping[str, int]  # HTTP status -> count, plus "transport"
    rate: float
    p50: float  # ms
    p95: float
    p99: float
    max: float
    cpu_s: float  # the load generator's own CPU time

    @classmethod
    def parse(cls, line: str) -> Load:
        doc = json.loads(line)
        latency = doc["latency_ms"]
        errors = {**doc["errors"]["status"]}
        if doc["errors"]["transport"]:
            errors["transport"] = doc["errors"]["transport"]
        return cls(
            doc["requests"],
            errors,
            doc["rate"],
            latency["p50"],
            latency["p95"],
            latency["p99"],
            latency["max"],
            doc["cpu_s"],
        )


@dataclass(frozen=True)
class Sample:
    """CPU seconds (user + system) of the activator and of the backends, at a wall-clock time."""

    wall: float
    activator: float
    backends: float


@dataclass(frozen=True)
class Run:
    """A load run, with what the activator and the backends spent on its counted window."""

    load: Load
    wall: float  # seconds between the two CPU samples
    activator: float  # CPU seconds
    backends: float

    @classmethod
    def between(cls, load: Load, before: Sample, after: Sample) -> Run:
        return cls(
            load,
            after.wall - before.wall,
            after.activator - before.activator,
            after.backends - before.backends,
        )

    @property
    def activator_per_cpu(self) -> float:
        """Requests per CPU-second of the activator."""
        return self.load.requests / max(self.activator, 1e-9)

    @property
    def backends_per_cpu(self) -> float:
        return self.load.requests / max(self.backends, 1e-9)


def median_load(loads: Sequence[Load]) -> Load:
    """Rounds of one measurement as one: the medians of their rates and percentiles, the largest
    maximum, and the sums of the counts. With rounds of p50 0.40, 0.45, 0.41 ms: p50 0.41 ms."""
    errors: dict[str, int] = {}
    for load in loads:
        for kind, count in load.errors.items():
            errors[kind] = errors.get(kind, 0) + count
    return Load(
        sum(load.requests for load in loads),
        errors,
        statistics.median(load.rate for load in loads),
        statistics.median(load.p50 for load in loads),
        statistics.median(load.p95 for load in loads),
        statistics.median(load.p99 for load in loads),
        max(load.max for load in loads),
        sum(load.cpu_s for load in loads),
    )


@dataclass(frozen=True)
class Window:
    """How long a loadgen run lasts, in seconds: uncounted warmup, then the counted duration."""

    warmup: float
    duration: float

    @property
    def args(self) -> tuple[str, ...]:
        return ("-duration", f"{self.duration:g}s", "-warmup", f"{self.warmup:g}s")


def stat_cpu_seconds(stat: str) -> float:
    """utime + stime of a /proc/<pid>/stat line; the command name may contain spaces."""
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def stat_parent(stat: str) -> int:
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def descendants(roots: Sequence[int], stats: Mapping[int, str]) -> set[int]:
    """The roots and every process below them, from each process's stat line."""
    found = set(roots)
    children: dict[int, list[int]] = {}
    for pid, stat in stats.items():
        children.setdefault(stat_parent(stat), []).append(pid)
    todo = list(roots)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def verdict(value: float, target: float, *, at_most: bool) -> str:
    met = value <= target if at_most else value >= target
    return "target met" if met else "MISSED"


# -- processes ------------------------------------------------------------------------------------


def read_stats() -> dict[int, str]:
    stats = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stats[int(entry.name)] = Path(entry.path, "stat").read_text()
            except OSError:  # exited meanwhile
                continue
    return stats


def rss_mib(pid: int) -> tuple[float, float]:
    """(current, peak) resident set size of a process, MiB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def go() -> str:
    from tests.kit.servers.agent import find_go

    found = find_go()
    if found is None:
        raise RuntimeError("the benchmark needs Go: no `go` on PATH nor in /usr/local/go/bin")
    return found


def build_loadgen() -> Path:
    LOADGEN_BINARY.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [go(), "build", "-trimpath", "-o", str(LOADGEN_BINARY), "."],
        cwd=LOADGEN_SOURCE,
        env={**os.environ, "CGO_ENABLED": "0"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"go build of the load generator failed:\n{done.stderr}")
    return LOADGEN_BINARY


def stop(process: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def stub_backend(loadgen: Path, ip: str) -> Iterator[tuple[int, int]]:
    """A stub pod (``loadgen -serve``) on ip and a port of its choosing; yields (pid, port)."""
    process = subprocess.Popen(
        [str(loadgen), "-serve", f"{ip}:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        readable, _, _ = select.select([process.stdout], [], [], 10)
        line = process.stdout.readline() if readable else ""
        if not line.startswith("listening on "):  # "listening on 127.0.0.2:40123"
            process.kill()
            _, err = process.communicate(timeout=10)
            raise RuntimeError(f"the stub backend on {ip} did not start:\n{line}{err}")
        yield process.pid, int(line.rpartition(":")[2])
    finally:
        stop(process)


@contextmanager
def activator_process(
    pods: Mapping[str, int], per_instance: int, log_path: Path
) -> Iterator[tuple[int, int]]:
    """The activator serving the pods; yields (pid, port) once it answers through to a pod."""
    from tests.kit.ports import free_port
    from tests.kit.wait import wait_for

    port = free_port()
    pods_arg = ",".join(f"{ip}:{p}" for ip, p in pods.items())
    command = [
        *(sys.executable, __file__, "--serve-activator", str(port)),
        *("--pods", pods_arg, "--per-instance", str(per_instance)),
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

    def answers() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"the activator exited:\n{log_path.read_text()}")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            connection.request("GET", HTTP_PATH)
            return connection.getresponse().status == 200
        except OSError:
            return False
        finally:
            connection.close()

    try:
        wait_for(answers, 20, what="the activator to answer through to a pod", interval=0.05)
        yield process.pid, port
    finally:
        stop(process)


@dataclass(frozen=True)
class Bed:
    """The running backends and activator, and the load generator to drive them."""

    loadgen: Path
    activator_pid: int
    activator_port: int
    pods: Mapping[str, int]  # ip -> port
    backend_pids: tuple[int, ...]  # with their children (an agent's runtimes)

    @property
    def activator_url(self) -> str:
        return f"http://127.0.0.1:{self.activator_port}{HTTP_PATH}"

    @property
    def pod_urls(self) -> tuple[str, ...]:
        """loadgen's -url arguments for calling the pods directly, one connection each in turn."""
        pods = [f"http://{ip}:{port}{INVOKE_PATH}" for ip, port in self.pods.items()]
        return tuple(arg for url in pods for arg in ("-url", url))

    def direct_args(self) -> tuple[str, ...]:
        """The pods' URLs and the v2 event the activator would send them, as loadgen arguments."""
        event = direct_event(self.activator_port).decode()
        return (*self.pod_urls, "-body", event, "-header", JSON_TYPE)

    def measure(self) -> Sample:
        stats = read_stats()
        backends = descendants(self.backend_pids, stats)
        return Sample(
            time.monotonic(),
            stat_cpu_seconds(stats[self.activator_pid]),
            sum(stat_cpu_seconds(stats[pid]) for pid in backends if pid in stats),
        )

    def load(self, window: Window, *args: str) -> Run:
        """One loadgen run; CPU is sampled when its counted window begins and after it ends."""
        process = subprocess.Popen(
            [str(self.loadgen), *args, *window.args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stderr is not None
        before, noise = None, []
        for line in process.stderr:
            if line.strip() == "measuring":
                before = self.measure()
                break
            noise.append(line)
        out, err = process.communicate(timeout=window.warmup + window.duration + 60)
        after = self.measure()
        if process.returncode != 0 or before is None:
            raise RuntimeError(f"loadgen failed ({process.returncode}):\n{''.join(noise)}{err}")
        return Run.between(Load.parse(out), before, after)


def direct_event(port: int) -> bytes:
    """The v2 event the activator builds for loadgen's GET, so the direct calls carry the same."""
    request = HttpRequest(
        method="GET",
        path=HTTP_PATH,
        query="",
        headers=(("Host", f"127.0.0.1:{port}"), ("User-Agent", "Go-http-client/1.1")),
        body=b"",
        source_ip="127.0.0.1",
    )
    route = Route((NAMESPACE, FUNCTION), "/", "127.0.0.1")
    now_ms = int(time.time() * 1000)
    return build_event(request, route, EventFormat.V2, request_id="bench", now_ms=now_ms)


# -- measuring ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class P3:
    """P3's rounds, in the order they ran: direct, through the activator, direct, ..."""

    direct_connections: int
    direct: tuple[Run, ...]  # one per round
    proxied: tuple[Run, ...]


@dataclass(frozen=True)
class P4:
    """P4's run, and the informational runs shown with it."""

    stubs: Run  # through the activator, in front of the stubs
    stubs_alone: Run  # the stubs called directly
    agents: Run  # through the activator, in front of the agents


def measure_p3(bed: Bed, window: Window) -> P3:
    """Added latency at a fixed rate: direct and through the activator, round by round."""
    # Direct calls get at most PER_INSTANCE connections per agent: a pod answers 429 beyond its
    # slots, where the activator holds the request instead; here it waits in loadgen.
    direct_connections = min(P3_CONNECTIONS, len(bed.pods) * PER_INSTANCE)
    rate = ("-rate", str(P3_RATE))
    direct, proxied = [], []
    for _ in range(P3_ROUNDS):
        direct.append(bed.load(window, *bed.direct_args(), "-c", str(direct_connections), *rate))
        proxied.append(
            bed.load(window, "-url", bed.activator_url, "-c", str(P3_CONNECTIONS), *rate)
        )
    return P3(direct_connections, tuple(direct), tuple(proxied))


def closed_loop(bed: Bed, window: Window) -> Run:
    return bed.load(window, "-url", bed.activator_url, "-c", str(P4_CONNECTIONS))


def stubs_alone(bed: Bed, window: Window) -> Run:
    return bed.load(window, *bed.direct_args(), "-c", str(P4_CONNECTIONS))


# -- the figures (pure) ---------------------------------------------------------------------------


def latency_row(label: str, load: Load) -> str:
    return (
        f"  {label:<22} p50 {load.p50:7.3f} ms   p95 {load.p95:7.3f} ms   p99 {load.p99:7.3f} ms"
        f"   max {load.max:7.2f} ms   {load.rate:8,.0f} req/s"
    )


def rounds_row(runs: Sequence[Run]) -> str:
    p50 = " ".join(f"{run.load.p50:.3f}" for run in runs)
    p95 = " ".join(f"{run.load.p95:.3f}" for run in runs)
    return f"  {'':<22} rounds: p50 {p50} ms; p95 {p95} ms"


def added_row(percentile: str, added: float, target: float) -> str:
    met = verdict(added, target, at_most=True)
    return f"  {'added':<22} {percentile} {added:7.3f} ms   (target <= {target} ms: {met})"


def errors_row(label: str, load: Load) -> str | None:
    if not load.errors:
        return None
    return f"  ERRORS {label}: {dict(load.errors)} of {load.requests} requests"


def p3_rows(p3: P3, window: Window) -> list[str]:
    direct = median_load([run.load for run in p3.direct])
    proxied = median_load([run.load for run in p3.proxied])
    cpu = sum(run.activator for run in p3.proxied)
    wall = sum(run.wall for run in p3.proxied)
    return [
        f"P3  added latency: open loop, {P3_RATE:,} req/s; {P3_ROUNDS} alternating rounds of "
        f"{window.warmup:.3g} s warmup + {window.duration:.3g} s each, medians of the rounds",
        latency_row(f"direct, {p3.direct_connections} conns", direct),
        rounds_row(p3.direct),
        latency_row(f"activator, {P3_CONNECTIONS} conns", proxied),
        rounds_row(p3.proxied),
        added_row("p50", proxied.p50 - direct.p50, P3_ADDED_P50_MS),
        added_row("p95", proxied.p95 - direct.p95, P3_ADDED_P95_MS),
        f"  activator CPU at this rate: {cpu / wall:.0%} of a core, "
        f"{cpu / max(proxied.requests, 1) * 1e6:.0f} us per request",
    ]


def p4_rows(p4: P4, window: Window) -> list[str]:
    run, load = p4.stubs, p4.stubs.load
    met = verdict(run.activator_per_cpu, P4_PER_CPU_SECOND, at_most=False)
    alone = p4.stubs_alone
    agents = p4.agents
    return [
        f"P4  throughput per core: closed loop, {P4_CONNECTIONS} connections, "
        f"{len(STUB_PODS)} stub pods (per_instance {STUB_PER_INSTANCE})",
        f"  activator  {run.activator_per_cpu:9,.0f} req per CPU-second "
        f"(target >= {P4_PER_CPU_SECOND:,}: {met})",
        f"             {load.rate:9,.0f} req/s at {run.activator / run.wall:.0%} of a core; "
        f"latency p50 {load.p50:.2f} ms, p99 {load.p99:.2f} ms",
        f"  stubs      {run.backends_per_cpu:9,.0f} req per CPU-second behind the activator "
        "(informational)",
        f"  stubs alone{alone.backends_per_cpu:9,.0f} req per CPU-second, called directly at "
        f"{alone.load.rate:,.0f} req/s (baseline; informational)",
        f"  loadgen    {load.cpu_s / (window.warmup + window.duration):9.0%} of a core "
        "(informational)",
        f"  with real agents: {agents.load.rate:,.0f} req/s, backend-bound (activator "
        f"{agents.activator / agents.wall:.0%} of a core, agents + runtimes "
        f"{agents.backends / agents.wall:.0%}; informational)",
    ]


def error_rows(p3: P3, p4: P4) -> list[str]:
    rows = [
        *(errors_row("P3 direct", run.load) for run in p3.direct),
        *(errors_row("P3 activator", run.load) for run in p3.proxied),
        errors_row("P4 activator", p4.stubs.load),
        errors_row("P4 stubs alone", p4.stubs_alone.load),
        errors_row("P4 real agents", p4.agents.load),
    ]
    return [row for row in rows if row]


# -- the run --------------------------------------------------------------------------------------


def bench(duration: float, warmup: float, agent_count: int) -> int:
    from tests.kit.servers.agent import build_agent, running_agent

    full, short = Window(warmup, duration), Window(warmup / 2, duration / P3_ROUNDS)
    with tempfile.TemporaryDirectory(prefix="lambdalet-bench-") as scratch:
        loadgen = build_loadgen()
        binary = build_agent(Path(scratch))
        env = {"LAMBDALET_CONCURRENCY": str(PER_INSTANCE), "AWS_LAMBDA_FUNCTION_NAME": FUNCTION}
        print(
            f"P3: {agent_count} agents x {PER_INSTANCE} runtimes; "
            f"P4: {len(STUB_PODS)} stub pods; the activator on uvloop"
        )
        with ExitStack() as stack:
            agents = [
                stack.enter_context(
                    running_agent(binary, Path(scratch, f"agent{i}"), {"app.py": HANDLER}, env=env)
                )
                for i in range(agent_count)
            ]
            pods = {f"127.0.0.{i + 2}": agent.port for i, agent in enumerate(agents)}
            log = Path(scratch, "activator-agents.log")
            pid, port = stack.enter_context(activator_process(pods, PER_INSTANCE, log))
            pids = tuple(agent.process.pid for agent in agents)
            bed = Bed(loadgen, pid, port, pods, pids)
            p3 = measure_p3(bed, short)
            with_agents = closed_loop(bed, short)
        with ExitStack() as stack:
            stubs = {ip: stack.enter_context(stub_backend(loadgen, ip)) for ip in STUB_PODS}
            pods = {ip: port for ip, (_, port) in stubs.items()}
            log = Path(scratch, "activator-stubs.log")
            pid, port = stack.enter_context(activator_process(pods, STUB_PER_INSTANCE, log))
            bed = Bed(loadgen, pid, port, pods, tuple(stub_pid for stub_pid, _ in stubs.values()))
            alone = stubs_alone(bed, short)
            p4 = P4(closed_loop(bed, full), alone, with_agents)
            rss, peak = rss_mib(pid)
    print()
    print("\n".join(p3_rows(p3, short)))
    print()
    print("\n".join(p4_rows(p4, full)))
    print(f"\nactivator RSS at the end of P4: {rss:.1f} MiB (peak {peak:.1f} MiB)")
    errors = error_rows(p3, p4)
    for row in errors:
        print(row)
    return 1 if errors else 0


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=10.0, help="counted seconds of P4")
    parser.add_argument("--warmup", type=float, default=2.0, help="uncounted seconds of P4")
    parser.add_argument("--agents", type=int, default=2, choices=range(1, 254), metavar="N")
    parser.add_argument("--serve-activator", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--pods", default="", help=argparse.SUPPRESS)
    parser.add_argument("--per-instance", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_activator is not None:
        import uvloop

        logging.basicConfig(level=logging.WARNING)
        pods = parse_pods(args.pods)
        uvloop.run(serve_activator(args.serve_activator, pods, args.per_instance))
        return 0
    sys.path.insert(0, str(REPO))
    return bench(args.duration, args.warmup, args.agents)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
