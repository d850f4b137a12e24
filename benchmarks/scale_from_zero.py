"""P1, P5 and P8: Functions scaled from zero on the real node, next to a bare pod's start.

    e2e/cluster/cluster.sh exec -- .venv/bin/python benchmarks/scale_from_zero.py \
        [--runs 10] [--baseline-pods 10] [--burst 200] [--keep-logs DIR]

Runs inside the node's network namespace, against the running bed (e2e/cluster/cluster.sh up),
with the runtime images imported (runtime-images/build.sh). It starts its own operator (watching
only its namespace) and activator as processes there, wired as e2e/conftest.py wires them (the
pods announce themselves to the activator's internal port at the node's address), works in a
fresh namespace that it deletes at the end, and prints each figure next to its baseline from the
same run, with "target met" or "MISSED":

    baselines pods created one at a time, create -> Ready as a watch delivers it, p50/p99:
              (a) the runtime image running `sleep`: no volume, no probe (Ready = running);
              (b) a Function's own pod template (agent, runtime, readiness probe, its 3
                  volumes), without its announcement settings and labels, so nothing routes to
                  it: the baseline of the targets;
              (c) (b) without any volume (writable root for /tmp, no announcement token, no
                  code: the handler is builtins.print), the what-if for the kubelet's volume
                  wait; its gain over (b) is subtracted from P1 as an estimate.
    P1        N Functions at zero (inline no-op Python handler, image cached), one request each
              through the activator, one after another (each Function is deleted, and its pod
              gone, before the next): request -> response (targets: p50 <= 0.7 s and
              <= 0.8 x (b)'s p50).
    P8        the request's send time -> the Deployment's spec.replicas = 1 as this process's
              watch delivers it (target <= 100 ms); below it, from the operator's log line
              "scaled ... from 0 to 1 ...; N ms after the poke": request -> poke received, and
              poke received -> scale write answered.
    P5        0 -> B concurrent requests on a Function at zero (maxScale 10): errors, p50/p99,
              the time until all are answered, the highest replica count written.

Then three tables: the breakdown of the median P1 run (and each step's median over the runs),
in ms after the request, from the watches (arrival times), the operator's and the activator's
logs, the kubelet's and containerd's logs of the bed, and the pod's own log (Init Duration,
START); the pods' start steps after their creation, P1 next to (b), (c) and (a); and the main
steps of every P1 run. All clocks are this machine's wall clock. Exits non-zero when something
fails (a process, a request, a wait), never for a missed target. The machine's load average is
printed too: the figures move with whatever else runs on its 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import os
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from e2e.harness.cluster import in_node_netns
from tests.kit.ports import free_port
from tests.kit.servers.activator import ActivatorProcess
from tests.kit.servers.kube import Cluster, ClusterScript
from tests.kit.servers.operator import OperatorProcess
from tests.kit.wait import wait_for

NODE_IP = "10.200.0.2"  # the node's address in its namespace (e2e/conftest.py)
FUNCTION_LABEL = "lambdalet.dev/function"
NOOP = "def handler(event, context):\n    return {'statusCode': 200, 'body': 'ok'}\n"

Obj = dict[str, Any]


# -- watches: every change in the namespace, stamped with its arrival -----------------------------


@dataclass(frozen=True)
class Seen:
    at: float  # time.time() when the watch delivered it
    kind: str
    type: str  # ADDED / MODIFIED / DELETED
    obj: Obj


class Recorder:
    """Watches Pods, Deployments, ReplicaSets and EndpointSlices of one namespace in threads."""

    def __init__(self, namespace: str) -> None:
        from kubernetes import client, config

        config.load_kube_config()
        self._namespace = namespace
        self._apis: dict[str, Callable[..., Any]] = {
            "pod": client.CoreV1Api().list_namespaced_pod,
            "deployment": client.AppsV1Api().list_namespaced_deployment,
            "replicaset": client.AppsV1Api().list_namespaced_replica_set,
            "slice": client.DiscoveryV1Api().list_namespaced_endpoint_slice,
        }
        self._seen: list[Seen] = []
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._started = {kind: threading.Event() for kind in self._apis}
        for kind in self._apis:
            threading.Thread(target=self._watch, args=(kind,), daemon=True).start()
        for started in self._started.values():
            if not started.wait(30):
                raise RuntimeError("a watch did not start")

    def _watch(self, kind: str) -> None:
        from kubernetes import watch

        version = self._apis[kind](self._namespace).metadata.resource_version
        self._started[kind].set()
        while not self._stop.is_set():
            stream = watch.Watch()
            try:
                if version is None:  # after a failed watch: from now on
                    version = self._apis[kind](self._namespace).metadata.resource_version
                for event in stream.stream(
                    self._apis[kind],
                    self._namespace,
                    resource_version=version,
                    timeout_seconds=20,
                    deserialize=False,
                ):
                    at = time.time()
                    obj = event["object"]
                    version = obj.get("metadata", {}).get("resourceVersion", version)
                    with self._changed:
                        self._seen.append(Seen(at, kind, event["type"], obj))
                        self._changed.notify_all()
                    if self._stop.is_set():
                        stream.stop()
            except Exception:  # e.g. 410 Gone: list again, watch from there
                version = None
                time.sleep(0.2)

    def stop(self) -> None:
        self._stop.set()

    def seen(self, kind: str, since: float = 0.0) -> list[Seen]:
        with self._changed:
            return [s for s in self._seen if s.kind == kind and s.at >= since]

    def first(self, kind: str, since: float, test: Callable[[Obj], bool]) -> Seen | None:
        return next((s for s in self.seen(kind, since) if test(s.obj)), None)

    def wait(
        self,
        kind: str,
        since: float,
        test: Callable[[Obj], bool],
        timeout: float,
        what: str,
        type: str | None = None,
    ) -> Seen:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = next(
                    (
                        s
                        for s in self._seen
                        if s.kind == kind
                        and s.at >= since
                        and (type is None or s.type == type)
                        and test(s.obj)
                    ),
                    None,
                )
                if found is not None:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
                self._changed.wait(left)


def _name(obj: Obj) -> str:
    return str(obj.get("metadata", {}).get("name", ""))


def _named(name: str, test: Callable[[Obj], object] = bool) -> Callable[[Obj], bool]:
    return lambda obj: _name(obj) == name and bool(test(obj))


def _of(function: str) -> Callable[[Obj], bool]:
    return lambda obj: obj.get("metadata", {}).get("labels", {}).get(FUNCTION_LABEL) == function


def _ready(pod: Obj) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _running(pod: Obj) -> bool:
    statuses = pod.get("status", {}).get("containerStatuses") or []
    return any("running" in (s.get("state") or {}) for s in statuses)


def _slice_ready(obj: Obj) -> bool:
    return any((e.get("conditions") or {}).get("ready") for e in obj.get("endpoints") or [])


# -- logs of the processes and of the node --------------------------------------------------------


def _local(text: str) -> float:
    """'2026-11-22 13:23:05,801' (a Python logging asctime, local time) -> epoch seconds."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def _rfc3339(text: str) -> float:
    """'2026-11-22T13:24:10.858094256Z' -> epoch seconds (to the microsecond)."""
    head, _, frac = text.rstrip("Z").partition(".")
    stamp = datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    return stamp.timestamp() + float(f"0.{frac or 0}")


def _klog(text: str, year: int) -> float:
    """'1122 13:24:10.345390' (klog, local time, no year) -> epoch seconds."""
    return datetime.strptime(f"{year}{text}", "%Y%m%d %H:%M:%S.%f").timestamp()


@dataclass(frozen=True)
class Logs:
    operator: Path
    activator: Path
    node: Path  # the bed's state directory: logs/, pod-logs/

    def scaled(self, namespace: str, function: str) -> tuple[float, float] | None:
        """(poke received, scale write answered) of the last 0 -> N write after a poke."""
        pattern = re.compile(
            r"^\[(\S+ \S+)\] lambdalet\.autoscaler \[INFO\s*\] scaled "
            + re.escape(f"{namespace}/{function}")
            + r" from 0 to \d+: .*; ([\d.]+) ms after the poke"
        )
        found = None
        for line in _lines(self.operator):
            if match := pattern.match(line):
                written = _local(match[1])
                found = (written - float(match[2]) / 1000, written)
        return found

    def announced(self, pod: str) -> float | None:
        pattern = re.compile(r"^(\S+ \S+) INFO lambdalet\.activator pod " + re.escape(pod) + " ")
        for line in _lines(self.activator):
            if (match := pattern.match(line)) and "announced itself ready" in line:
                return _local(match[1])
        return None

    def refusals(self) -> list[str]:
        return [line for line in _lines(self.activator) if "refused" in line]

    def containerd(self, namespace: str, pod: str) -> dict[str, float]:
        """When containerd was asked for the sandbox, returned it, created and started the
        container (its log's UTC timestamps)."""
        out: dict[str, float] = {}
        sandbox = container = None
        stamp = re.compile(r'^time="(\S+)"')
        meta = f"PodSandboxMetadata{{Name:{pod},"
        for line in _lines(self.node / "logs" / "containerd.log"):
            if not (match := stamp.match(line)):
                continue
            at = _rfc3339(match[1])
            if meta in line and f"Namespace:{namespace}," in line:
                if "returns sandbox id" in line:
                    out["sandbox ready"] = at
                    sandbox = line.rsplit('\\"', 2)[-2]
                else:
                    out.setdefault("sandbox asked", at)
            elif sandbox and f'within sandbox \\"{sandbox}\\"' in line:
                if "returns container id" in line:
                    container = line.rsplit('\\"', 2)[-2]
                    out["container created"] = at
            elif (
                container
                and f'StartContainer for \\"{container}\\"' in line
                and "returns successfully" in line
            ):
                out.setdefault("container started", at)
        return out

    def kubelet(self, namespace: str, pod: str, year: int) -> dict[str, float]:
        """When the kubelet began on the pod (its first volume step) and its probe said ready."""
        out: dict[str, float] = {}
        where = f'pod="{namespace}/{pod}"'
        for line in _lines(self.node / "logs" / "kubelet.log"):
            if where not in line or len(line) < 21:
                continue
            at = _klog(line[1:21], year)
            if "VerifyControllerAttachedVolume started" in line:
                out.setdefault("kubelet began", at)
            elif '"SyncLoop (probe)" probe="readiness" status="ready"' in line:
                out.setdefault("probe ready", at)
        return out

    def pod_log(self, namespace: str, pod: str, uid: str) -> list[tuple[float, str]]:
        """The function container's log lines (CRI timestamps); gone once the pod is."""
        path = self.node / "pod-logs" / f"{namespace}_{pod}_{uid}" / "function" / "0.log"
        out = []
        for line in _lines(path):
            stamp, _, rest = line.partition(" ")
            out.append((_rfc3339(stamp), rest.split(" ", 2)[-1]))
        return out


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return []


# -- the bench --------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def function_manifest(name: str, *, max_scale: int, idle_seconds: int) -> Obj:
    return {
        "apiVersion": "lambdalet.dev/v1alpha1",
        "kind": "Function",
        "metadata": {"name": name},
        "spec": {
            "runtime": "python3.11",
            "handler": "app.handler",
            "code": {"inline": {"app.py": NOOP}},
            "scaling": {"maxScale": max_scale, "scaleToZeroAfterSeconds": idle_seconds},
        },
    }


@dataclass
class Bench:
    cluster: Cluster
    namespace: str
    recorder: Recorder
    logs: Logs
    activator_url: str
    http: httpx.Client

    def core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api()

    def create_functions(self, names: list[str], *, max_scale: int, idle: int) -> None:
        manifests = [function_manifest(n, max_scale=max_scale, idle_seconds=idle) for n in names]
        self.cluster.apply(manifests, "-n", self.namespace)
        for name in names:
            self.cluster.kubectl(
                "wait", "-n", self.namespace, f"fn/{name}", "--for=condition=Ready", "--timeout=60s"
            )
            self.recorder.wait(
                "deployment",
                0,
                _named(f"fn-{name}", lambda o: o["spec"].get("replicas") == 0),
                60,
                f"Deployment fn-{name} at zero",
            )

    def delete_function(self, name: str) -> None:
        """Delete the Function and wait for its pods to go, so the next run has the node."""
        self.cluster.kubectl("delete", "-n", self.namespace, f"fn/{name}")
        wait_for(
            lambda: (
                not self.cluster.get(
                    "pods", "-n", self.namespace, "-l", f"{FUNCTION_LABEL}={name}"
                )["items"]
            ),
            90,
            what=f"the pods of {name} to go",
        )

    # -- baseline

    def bare_pods(self, count: int, spec: Obj, label: str) -> list[dict[str, float | None]]:
        """Create ``count`` pods one at a time; each one's steps, in seconds after its create
        call ("pod Ready condition (watch)" is the figure)."""
        core = self.core()
        timings = []
        for i in range(count):
            name = f"{label}-{i}"
            pod = {"metadata": {"name": name, "labels": {"bench": label}}, "spec": spec}
            started = time.time()
            created = core.create_namespaced_pod(self.namespace, pod)
            self.recorder.wait("pod", started, _named(name, _ready), 60, f"{name} Ready")
            steps = self.pod_steps(name, created.metadata.uid, started)
            timings.append({k: None if v is None else v - started for k, v in steps.items()})
            core.delete_namespaced_pod(name, self.namespace, grace_period_seconds=0)
            self.recorder.wait("pod", started, _named(name), 60, f"{name} to go", "DELETED")
        return timings

    def pod_steps(self, pod: str, uid: str, since: float) -> dict[str, float | None]:
        """When one pod passed each step of its start, from the watches and the node's logs."""

        def seen(test: Callable[[Obj], object]) -> float | None:
            found = self.recorder.first("pod", since, _named(pod, test))
            return found.at if found else None

        node = {
            **self.logs.kubelet(self.namespace, pod, datetime.fromtimestamp(since).year),
            **self.logs.containerd(self.namespace, pod),
        }
        steps = {
            "pod created (watch)": seen(lambda o: o["metadata"]["uid"] == uid),
            "pod scheduled (watch)": seen(lambda o: o.get("spec", {}).get("nodeName")),
            "kubelet began: volumes (kubelet log)": node.get("kubelet began"),
            "sandbox asked (containerd log)": node.get("sandbox asked"),
            "sandbox ready (containerd log)": node.get("sandbox ready"),
            "container created (containerd log)": node.get("container created"),
            "container started (containerd log)": node.get("container started"),
            "pod IP in status (watch)": seen(lambda o: o.get("status", {}).get("podIP")),
            "container running in status (watch)": seen(_running),
            "probe ready (kubelet log)": node.get("probe ready"),
            "pod Ready condition (watch)": seen(_ready),
        }
        return steps

    # -- one cold start

    def cold_start(self, name: str) -> ColdStart:
        url = f"{self.activator_url}/fn/{self.namespace}/{name}/"
        sent = time.time()
        reply = self.http.get(url)
        answered = time.time()
        if reply.status_code != 200:
            raise RuntimeError(f"cold start of {name}: HTTP {reply.status_code}: {reply.text}")
        # The rest of the pod's start, for the breakdown: its EndpointSlice lists it ready.
        self.recorder.wait("slice", sent, lambda o: _of(name)(o) and _slice_ready(o), 30, "slice")
        return self.analyse(name, sent, answered)

    def analyse(self, name: str, sent: float, answered: float) -> ColdStart:
        r = self.recorder
        steps: dict[str, float | None] = {}
        scaled = self.logs.scaled(self.namespace, name)
        steps["poke received (operator log)"] = scaled[0] if scaled else None
        steps["scale written (operator log)"] = scaled[1] if scaled else None
        deployment = r.first(
            "deployment", sent, _named(f"fn-{name}", lambda o: o["spec"]["replicas"] >= 1)
        )
        steps["Deployment spec.replicas=1 (watch)"] = deployment.at if deployment else None
        replicaset = r.first(
            "replicaset", sent, lambda o: _of(name)(o) and o["spec"].get("replicas", 0) >= 1
        )
        steps["ReplicaSet spec.replicas=1 (watch)"] = replicaset.at if replicaset else None
        created = r.first("pod", sent, _of(name))
        if created is None:
            raise RuntimeError(f"no pod of {name} was seen")
        pod, uid = _name(created.obj), created.obj["metadata"]["uid"]
        steps |= self.pod_steps(pod, uid, sent)
        lines = self.logs.pod_log(self.namespace, pod, uid)
        init = next((text for _, text in lines if "Init Duration" in text), None)
        started = steps["container started (containerd log)"]
        runtime = None
        if init is not None and started is not None:
            ms = re.search(r"Init Duration: ([\d.]+) ms", init)
            runtime = started + float(ms[1]) / 1000 if ms else None
        steps["runtime initialised ~ started + Init Duration"] = runtime
        steps["announcement accepted (activator log)"] = self.logs.announced(pod)
        steps["invocation START (pod log)"] = next(
            (at for at, text in lines if text.startswith("START ")), None
        )
        steps["response"] = answered
        endpoint = r.first("slice", sent, lambda o: _of(name)(o) and _slice_ready(o))
        steps["EndpointSlice ready (watch)"] = endpoint.at if endpoint else None
        agent = [text for _, text in lines if text.startswith("lambdalet-agent:")]
        return ColdStart(name, pod, sent, answered, steps, agent)

    # -- P5

    def burst(self, name: str, count: int) -> tuple[list[float], list[str], float]:
        url = f"{self.activator_url}/fn/{self.namespace}/{name}/"

        async def one(client: httpx.AsyncClient) -> tuple[float, str | None]:
            started = time.monotonic()
            try:
                reply = await client.get(url)
            except httpx.HTTPError as exc:
                return time.monotonic() - started, f"{type(exc).__name__}"
            error = None if reply.status_code == 200 else f"HTTP {reply.status_code}"
            return time.monotonic() - started, error

        async def all_of() -> list[tuple[float, str | None]]:
            limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
            async with httpx.AsyncClient(timeout=120, limits=limits) as client:
                return await asyncio.gather(*(one(client) for _ in range(count)))

        started = time.monotonic()
        results = asyncio.run(all_of())
        wall = time.monotonic() - started
        return [t for t, _ in results], [e for _, e in results if e], wall


@dataclass(frozen=True)
class ColdStart:
    function: str
    pod: str
    sent: float
    answered: float
    steps: dict[str, float | None]
    agent_lines: list[str]

    @property
    def seconds(self) -> float:
        return self.answered - self.sent

    def relative(self, step: str) -> float | None:
        at = self.steps.get(step)
        return None if at is None else at - self.sent


def baseline_spec(cluster: Cluster, namespace: str, function: str) -> Obj:
    """The Function's pod template as a bare pod: no announcement, no labels routing to it."""
    deployment = cluster.get("deployment", f"fn-{function}", "-n", namespace)
    spec: Obj = copy.deepcopy(deployment["spec"]["template"]["spec"])
    for container in spec["containers"]:
        container["env"] = [
            e
            for e in container.get("env", [])
            if not e["name"].startswith(("LAMBDALET_ANNOUNCE", "LAMBDALET_POD_"))
        ]
    return spec


def volumeless_spec(template: Obj) -> Obj:
    """(b) with no volume at all, the what-if for the kubelet's volume wait: a writable root
    instead of the /tmp emptyDir, no announcement token, and no code (the handler is
    ``builtins.print``, which the runtime imports from the standard library)."""
    spec: Obj = copy.deepcopy(template)
    spec.pop("volumes", None)
    for container in spec["containers"]:
        container.pop("volumeMounts", None)
        container.setdefault("securityContext", {})["readOnlyRootFilesystem"] = False
        for variable in container.get("env", []):
            if variable["name"] == "_HANDLER":
                variable["value"] = "builtins.print"
    return spec


def sleep_spec(template: Obj) -> Obj:
    """The runtime image of (b) running ``sleep``: no volume, no probe, nothing else."""
    return {
        "containers": [
            {
                "name": "sleep",
                "image": template["containers"][0]["image"],
                "imagePullPolicy": "Never",
                "command": ["/bin/sleep", "3600"],
            }
        ],
        "terminationGracePeriodSeconds": 0,
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,
    }


@contextlib.contextmanager
def processes(cluster: Cluster, namespace: str, scratch: Path) -> Iterator[tuple[str, Logs]]:
    """The operator (watching only ``namespace``) and the activator, as e2e/conftest.py runs
    them; yields the activator's URL and the logs."""
    public, internal = free_port(), free_port()
    operator = OperatorProcess(
        cluster.operator_kubeconfig or cluster.kubeconfig,
        scratch / "operator.log",
        env={
            "LAMBDALET_IMAGE_PULL_POLICY": "Never",
            "LAMBDALET_NAMESPACES": namespace,
            "LAMBDALET_ACTIVATOR_URL": f"http://127.0.0.1:{public}",
            "LAMBDALET_ANNOUNCE_URL": f"http://{NODE_IP}:{internal}/v1/announce",
        },
    )
    activator = ActivatorProcess(
        cluster.kubeconfig,
        scratch / "activator.log",
        port=public,
        internal_port=internal,
        env={
            "LAMBDALET_AUTOSCALER_URL": operator.autoscaler_url,
            "LAMBDALET_ACTIVATOR_HOST": "0.0.0.0",
        },
    )
    operator.start()
    try:
        activator.start()
        try:
            yield (
                activator.url,
                Logs(operator.log_path, activator.log_path, cluster.kubeconfig.parent),
            )
        finally:
            activator.stop()
    finally:
        operator.stop()


# -- the report -------------------------------------------------------------------------------


def _verdict(met: bool) -> str:
    return "target met" if met else "MISSED"


def _ms(value: float | None) -> str:
    return "       -" if value is None else f"{value * 1000:8.0f}"


Steps = dict[str, float | None]
READY = "pod Ready condition (watch)"
CREATED = "pod created (watch)"
STARTED = "container started (containerd log)"
# The baselines; each one's pods are named after its letter (a-0, a-1, ...).
SLEEP = "(a) runtime image + sleep, no volume, no probe"
TEMPLATE = "(b) the Function's pod template"
VOLUMELESS = "(c) (b) without its 3 volumes (what-if)"
# Steps of the per-run table, short names.
PER_RUN = {
    "created": CREATED,
    "sandbox?": "sandbox asked (containerd log)",
    "sandbox": "sandbox ready (containerd log)",
    "started": STARTED,
    "announced": "announcement accepted (activator log)",
    "response": "response",
    "Ready": READY,
}


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def _since_created(pods: list[Steps], step: str) -> float | None:
    """The median of ``step`` after each pod's creation (as the watch saw both)."""
    values: list[float | None] = []
    for pod in pods:
        at, created = pod.get(step), pod.get(CREATED)
        if at is not None and created is not None:
            values.append(at - created)
    return _median(values)


def report(
    baselines: dict[str, list[Steps]],
    runs: list[ColdStart],
    burst: tuple[list[float], list[str], float, int] | None,
    refusals: list[str],
) -> str:
    out = []
    row = "{:<62} {:>7} {:>7}   {}"
    out.append(row.format("figure (seconds)", "p50", "p99", "baseline / target"))

    def stats(label: str, values: list[float], note: str = "") -> float:
        p50 = statistics.median(values)
        out.append(row.format(label, f"{p50:.3f}", f"{percentile(values, 0.99):.3f}", note))
        return p50

    ready = {
        key: stats(
            f"baseline {key[:3]} pod create -> Ready, N={len(pods)}",
            [p[READY] or 0.0 for p in pods],
        )
        for key, pods in baselines.items()
    }
    bare = ready[TEMPLATE]
    if runs:
        p1 = statistics.median(r.seconds for r in runs)
        stats(
            f"P1 cold start through the activator, N={len(runs)}",
            [r.seconds for r in runs],
            f"p50 <= 0.7 and <= 0.8 x (b) = {0.8 * bare:.3f}: "
            f"{_verdict(p1 <= min(0.7, 0.8 * bare))}",
        )
        gain = [_since_created(baselines[k], STARTED) for k in (TEMPLATE, VOLUMELESS)]
        if gain[0] is not None and gain[1] is not None:
            out.append(
                row.format(
                    "    what-if: P1 p50 less (b) - (c) container started",
                    f"{p1 - (gain[0] - gain[1]):.3f}",
                    "",
                    f"an estimate: the pods would start {(gain[0] - gain[1]) * 1000:.0f} ms sooner",
                )
            )
        p8 = [w for w in (r.relative("Deployment spec.replicas=1 (watch)") for r in runs) if w]
        if p8:
            stats(
                "P8 request sent -> Deployment spec.replicas=1 (watch)",
                p8,
                f"p50 <= 0.100: {_verdict(statistics.median(p8) <= 0.1)}",
            )
        poke, written = "poke received (operator log)", "scale written (operator log)"
        logged = [(r.steps[written] or 0.0) - (r.steps[poke] or 0.0) for r in runs if r.steps[poke]]
        if logged:
            stats("    poke received -> scale write answered (operator log)", logged)
        poked = [p for p in (r.relative(poke) for r in runs) if p is not None]
        if poked:
            stats("    request sent -> poke received (activator + HTTP)", poked)
    if burst is not None:
        times, errors, wall, peak = burst
        stats(
            f"P5 0 -> {len(times)} concurrent, maxScale 10: request -> response",
            times,
            f"errors {len(errors)} {sorted(set(errors))}; all answered in {wall:.2f} s; "
            f"peak replicas {peak}",
        )
    if runs:
        out += _breakdown(runs, baselines)
    out += ["", "baselines: " + "; ".join(baselines)]
    accepted = sum(1 for r in runs if r.steps["announcement accepted (activator log)"])
    out.append("")
    out.append(
        f"announcements accepted in P1: {accepted} of {len(runs)}; refused: {len(refusals)}"
        + (" (e.g.:)" if refusals else "")
    )
    out.extend(f"  {line}" for line in refusals[:2])
    return "\n".join(out)


def _breakdown(runs: list[ColdStart], baselines: dict[str, list[Steps]]) -> list[str]:
    chosen = sorted(runs, key=lambda r: r.seconds)[len(runs) // 2]
    out = [
        "",
        f"cold-start breakdown, ms after the request: the median P1 run ({chosen.function}, "
        f"{chosen.seconds * 1000:.0f} ms) | the median of each step over all {len(runs)} runs",
    ]
    for step in sorted(
        chosen.steps, key=lambda s: (chosen.relative(s) is None, chosen.relative(s) or 0.0)
    ):
        median = _median([r.relative(step) for r in runs])
        out.append(f"  {step:<52} {_ms(chosen.relative(step))} {_ms(median)}")
    if chosen.agent_lines:
        out.append("  the agent said: " + " | ".join(chosen.agent_lines))
    keys = [TEMPLATE, VOLUMELESS, SLEEP]
    out += ["", "pod start, ms after the pod was created (medians): P1's pods | (b) | (c) | (a)"]
    for step in [s for s in baselines[TEMPLATE][0] if s != CREATED]:
        columns = [_since_created([r.steps for r in runs], step)]
        columns += [_since_created(baselines[k], step) for k in keys]
        out.append(f"  {step:<52} " + " ".join(_ms(c) for c in columns))
    out += ["", "every P1 run, ms after the request: " + " ".join(f"{k:>9}" for k in PER_RUN)]
    for run in runs:
        cells = " ".join(f"{_ms(run.relative(step)):>9}" for step in PER_RUN.values())
        out.append(f"  {run.function:<34} {cells}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="P1's Functions (default 10)")
    parser.add_argument("--baseline-pods", type=int, default=10, help="pods per baseline")
    parser.add_argument("--burst", type=int, default=200, help="P5's requests (0: skip P5)")
    parser.add_argument("--keep-logs", type=Path, default=None, help="copy the logs here")
    args = parser.parse_args()
    if not in_node_netns():
        print(
            "run inside the node's network namespace: "
            "e2e/cluster/cluster.sh exec -- .venv/bin/python benchmarks/scale_from_zero.py",
            file=sys.stderr,
        )
        return 2
    load = os.getloadavg()[0]
    cluster = ClusterScript("node").current()
    namespace = f"bench-sfz-{uuid.uuid4().hex[:5]}"
    cluster.kubectl("create", "namespace", namespace)
    scratch = Path(tempfile.mkdtemp(prefix="lambdalet-sfz-"))
    try:
        recorder = Recorder(namespace)
        try:
            with (
                processes(cluster, namespace, scratch) as (url, logs),
                httpx.Client(timeout=60) as http,
            ):
                text = run(Bench(cluster, namespace, recorder, logs, url, http), args)
        finally:
            recorder.stop()
    finally:
        # Functions carry no finalizers: the namespace goes also once the operator has stopped.
        cluster.kubectl("delete", "namespace", namespace, "--timeout=120s", check=False)
        if args.keep_logs is not None:
            shutil.copytree(scratch, args.keep_logs, dirs_exist_ok=True)
        shutil.rmtree(scratch, ignore_errors=True)
    print(text)
    end = os.getloadavg()[0]
    print(
        f"load average (1 min) at the start, the end: {load:.2f}, {end:.2f} ({os.cpu_count()} CPUs)"
    )
    return 0


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run(bench: Bench, args: argparse.Namespace) -> str:
    names = [f"cold-{i}" for i in range(args.runs)]
    say(f"creating {len(names)} Functions at zero in {bench.namespace}")
    bench.create_functions(names, max_scale=1, idle=600)
    time.sleep(3)  # the activator's and the autoscaler's views catch up; the node settles
    template = baseline_spec(bench.cluster, bench.namespace, names[0])
    baselines = {}
    for key, spec in (
        (SLEEP, sleep_spec(template)),
        (TEMPLATE, template),
        (VOLUMELESS, volumeless_spec(template)),
    ):
        say(f"baseline {key}")
        baselines[key] = bench.bare_pods(args.baseline_pods, spec, key[1])
    runs = []
    for name in names:
        cold = bench.cold_start(name)
        say(f"P1 {name}: {cold.seconds * 1000:.0f} ms")
        runs.append(cold)
        bench.delete_function(name)
        time.sleep(1)
    burst = None
    if args.burst:
        bench.create_functions(["burst"], max_scale=10, idle=600)
        time.sleep(2)
        say(f"P5: {args.burst} concurrent requests")
        since = time.time()
        times, errors, wall = bench.burst("burst", args.burst)
        peak = max(
            (
                int(s.obj["spec"].get("replicas") or 0)
                for s in bench.recorder.seen("deployment", since)
                if _name(s.obj) == "fn-burst"
            ),
            default=0,
        )
        burst = (times, errors, wall, peak)
    return report(baselines, runs, burst, bench.logs.refusals())


if __name__ == "__main__":
    sys.exit(main())
