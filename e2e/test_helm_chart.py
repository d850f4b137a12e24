"""Installing Lambdalet with its Helm chart: the operator, the activator and the event dispatcher
run in the cluster under their own least-privilege ServiceAccounts and restricted Pod Security; a
Function at zero answers its first request through the activator's Service (the chart's operator
scales it, its pod announces itself to the chart's activator); the dispatcher fires a schedule;
`helm test` invokes a Function; killing the leading operator replica hands over to the other;
`helm upgrade` rolls a change out while Functions answer; everything uninstalls cleanly."""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import yaml

from tests.kit.paths import REPO
from tests.kit.servers.kube import Cluster
from tests.kit.wait import WaitTimeout, wait_for

pytestmark = pytest.mark.e2e

CHART = REPO / "charts" / "lambdalet"


def autoscaler_pods(cluster: Cluster, namespace: str, release: str) -> list[str]:
    """The pods behind the autoscaler Service: the leading operator replica's alone."""
    endpoints = cluster.get("endpoints", f"{release}-autoscaler", "-n", namespace)
    return [
        address["targetRef"]["name"]
        for subset in endpoints.get("subsets") or []
        for address in subset.get("addresses") or []
    ]


@contextmanager
def steady_load(url: str, interval: float = 0.05) -> Iterator[Counter[str]]:
    """GETs of ``url`` one after another on a keep-alive client until the block ends; the
    outcomes counted by status code or exception type."""
    outcomes: Counter[str] = Counter()
    done = threading.Event()

    def run() -> None:
        with httpx.Client(timeout=httpx.Timeout(30, connect=3)) as client:
            while not done.is_set():
                try:
                    outcomes[str(client.get(url).status_code)] += 1
                except httpx.HTTPError as exc:
                    outcomes[type(exc).__name__] += 1
                time.sleep(interval)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield outcomes
    finally:
        done.set()
        thread.join(60)


def operator_state(cluster: Cluster, namespace: str) -> str:
    """What a failed failover leaves to read: the Lease, the operator pods, their last logs."""
    parts = [cluster.kubectl("get", "lease", "lambdalet-operator", "-n", namespace, "-o", "yaml",
                             check=False).stdout]  # fmt: skip
    pods = cluster.get("pods", "-n", namespace, "-l", "app.kubernetes.io/component=operator")
    for pod in pods["items"]:
        name = pod["metadata"]["name"]
        statuses = [
            (c["name"], c.get("restartCount"), c.get("state"))
            for c in pod["status"].get("containerStatuses") or ()
        ]
        parts.append(
            f"pod {name}: phase {pod['status'].get('phase')}, deleting "
            f"{pod['metadata'].get('deletionTimestamp')}, containers {statuses}"
        )
        logs = cluster.kubectl("logs", "-n", namespace, name, "--tail=40", check=False)
        parts.append(logs.stdout + logs.stderr)
    return "\n".join(parts)


def lease_holder(cluster: Cluster, namespace: str) -> str:
    """The operator pod that leads (holds Lease lambdalet-operator)."""
    lease = cluster.get("lease", "lambdalet-operator", "-n", namespace)
    return str(lease["spec"]["holderIdentity"])


@pytest.fixture
def helm_namespaces(node_cluster: Cluster) -> Iterator[tuple[str, str]]:
    """README's namespace for the release, lambdalet-system, and one for Functions, helm-*
    (the session's own operator process leaves helm-* namespaces alone; the release's own
    namespace holds no Function for it to see), both restricted."""
    names = ("lambdalet-system", f"helm-apps-{uuid.uuid4().hex[:5]}")
    for name in names:
        node_cluster.kubectl("create", "namespace", name)
        node_cluster.kubectl(
            "label", "namespace", name, "pod-security.kubernetes.io/enforce=restricted"
        )
    try:
        yield names
    finally:
        for name in names:
            node_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_chart_installs_an_operator_that_serves_functions(
    node_cluster: Cluster, helm_namespaces: tuple[str, str], runtime_images: None
) -> None:
    build = REPO / "operator" / "image" / "build.sh"
    subprocess.run([str(build)], check=True, capture_output=True, timeout=600)
    system, apps = helm_namespaces
    # README's own release name: its Services' Docker-link variables (lambdalet-activator's
    # LAMBDALET_ACTIVATOR_PORT=tcp://…) once crash-looped the activator.
    release = "lambdalet"
    node_cluster.helm(
        "install", release, str(CHART), "-n", system, "--wait", "--timeout", "120s",
        "--set", "operator.image.pullPolicy=Never",
        "--set", "runtime.pullPolicy=Never",
        # Namespaced RBAC: Roles in the watched namespace, no cluster-wide read of its objects.
        "--set", "rbac.namespaced=true",
        "--set", f"operator.watchNamespaces={{{apps}}}",
    )  # fmt: skip
    try:
        deployment = node_cluster.get("deployment", f"{release}-operator", "-n", system)
        assert deployment["status"]["readyReplicas"] == 2  # a leader and a follower
        pod = deployment["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == f"{release}-operator"

        node_cluster.kubectl(
            "apply", "-n", apps, "-f", str(REPO / "examples" / "hello-python" / "function.yaml")
        )
        node_cluster.kubectl(
            "wait", "-n", apps, "fn/hello-python", "--for=condition=Ready", "--timeout=60s"
        )
        fn = node_cluster.get("function", "hello-python", "-n", apps)
        assert fn["status"]["replicas"] == 0
        assert fn["status"]["url"] == (
            f"http://{release}-activator.{system}.svc/fn/{apps}/hello-python"
        )

        service = node_cluster.get("service", f"{release}-activator", "-n", system)
        url = f"http://{service['spec']['clusterIP']}/fn/{apps}/hello-python/?name=helm"
        # kube-proxy programs the new Service a moment after helm --wait returns; until then the
        # connection is refused (nothing reached the activator, so asking again is safe).
        reply = wait_for(lambda: httpx.get(url, timeout=90), 30, what="the activator Service")
        assert reply.status_code == 200, reply.text
        assert reply.json()["message"] == "hello, helm"

        def one_ready() -> bool:
            status = node_cluster.get("function", "hello-python", "-n", apps)["status"]
            seen.append(status)
            return bool(status.get("readyReplicas"))

        seen: list[dict[str, object]] = []
        try:
            wait_for(one_ready, 30, what="status to show the instance the first request started")
        except AssertionError as exc:
            deployment = node_cluster.get("deployment", "fn-hello-python", "-n", apps)
            raise AssertionError(
                f"{exc}\nFunction status: {seen[-1:]}\nDeployment: {deployment.get('status')}"
                f"\nspec.replicas: {deployment['spec'].get('replicas')}"
            ) from exc
        activator_logs = node_cluster.kubectl(
            "logs", "-n", system, f"deployment/{release}-activator"
        ).stdout
        assert "announced itself ready" in activator_logs
        leader = lease_holder(node_cluster, system)
        logs = node_cluster.kubectl("logs", "-n", system, leader).stdout
        assert f"applied Deployment {apps}/fn-hello-python" in logs
        # Least privilege: the operator's account may not read Secrets.
        can = node_cluster.kubectl(
            "auth", "can-i", "get", "secrets", "-A",
            f"--as=system:serviceaccount:{system}:{release}-operator", check=False,
        )  # fmt: skip
        assert can.stdout.strip() == "no"
        may_review = node_cluster.kubectl(
            "auth", "can-i", "create", "tokenreviews",
            f"--as=system:serviceaccount:{system}:{release}-activator", check=False,
        )  # fmt: skip
        assert may_review.stdout.strip() == "yes"

        # The chart's event dispatcher runs EventSources: the operator assigns this schedule to
        # its pod (the pod's Lease), which fires the first tick of rate() at once through the
        # chart's activator and records it.
        node_cluster.apply(
            [
                {
                    "apiVersion": "lambdalet.dev/v1alpha1",
                    "kind": "EventSource",
                    "metadata": {"name": "every-minute"},
                    "spec": {
                        "function": {"name": "hello-python"},
                        "schedule": {"expression": "rate(1 minute)"},
                    },
                }
            ],
            "-n",
            apps,
        )
        node_cluster.kubectl(
            "wait", "-n", apps, "evs/every-minute", "--for=condition=Ready", "--timeout=60s"
        )
        source = wait_for(
            lambda: (
                found
                if (found := node_cluster.get("eventsource", "every-minute", "-n", apps))[
                    "status"
                ].get("lastScheduleTime")
                else None
            ),
            90,
            what="the first scheduled tick fired and recorded",
        )
        assert source["status"]["assignedReplica"].startswith(f"{release}-dispatcher-")
        ready = {c["type"]: c for c in source["status"]["conditions"]}["Ready"]
        assert ready["reason"] == "Delivering"
        dispatcher_may = node_cluster.kubectl(
            "auth", "can-i", "patch", "eventsources.lambdalet.dev", "--subresource=status",
            "-n", apps,
            f"--as=system:serviceaccount:{system}:{release}-dispatcher", check=False,
        )  # fmt: skip
        assert dispatcher_may.stdout.strip() == "yes"

        # helm test: the chart's own test invokes a Function through the activator.
        tested = node_cluster.helm("test", release, "-n", system, "--logs", "--timeout", "300s")
        assert "echoed" in tested.stdout, tested.stdout

        # Operator high availability: another replica takes over when the leader is killed.
        follower = wait_for(
            lambda: next(
                (
                    pod["metadata"]["name"]
                    for pod in node_cluster.get(
                        "pods", "-n", system, "-l", "app.kubernetes.io/component=operator"
                    )["items"]
                    if pod["metadata"]["name"] != leader and pod["status"].get("phase") == "Running"
                ),
                None,
            ),
            60,
            what="a second operator replica running",
        )
        wait_for(
            lambda: autoscaler_pods(node_cluster, system, release) == [leader],
            30,
            what="the autoscaler Service to route to the leader alone",
        )
        node_cluster.kubectl(
            "delete", "pod", "-n", system, leader, "--grace-period=0", "--force", "--wait=false"
        )

        # Another replica takes the Lease once it has seen it unrenewed for its 15 s: the one that
        # was following, or the Deployment's replacement for the killed pod, which starts within
        # that time and then has seen the same last renewal; whichever looks first wins.
        def new_holder() -> str | None:
            holder = lease_holder(node_cluster, system)
            return holder if holder != leader else None

        try:
            successor = wait_for(
                new_holder,
                60,
                what=f"a replica (e.g. {follower}) to take over from {leader}",
            )
        except WaitTimeout as timed_out:
            raise WaitTimeout(f"{timed_out}\n{operator_state(node_cluster, system)}") from None
        wait_for(
            lambda: autoscaler_pods(node_cluster, system, release) == [successor],
            30,
            what="the autoscaler Service to route to the new leader",
        )
        node_cluster.kubectl(
            "apply", "-n", apps, "-f", str(REPO / "examples" / "hello-node" / "function.yaml")
        )
        node_cluster.kubectl(
            "wait", "-n", apps, "fn/hello-node", "--for=condition=Ready", "--timeout=60s"
        )

        # helm upgrade: changed values roll out (a third activator, the public entry point);
        # Functions keep answering through it, without one failed request while every
        # activator pod is replaced (each drains: unready, then serving on until kube-proxy
        # routes elsewhere).
        assert httpx.get(url, timeout=90).status_code == 200  # warm
        old_pods = {
            pod["metadata"]["name"]
            for pod in node_cluster.get(
                "pods", "-n", system, "-l", "app.kubernetes.io/component=activator"
            )["items"]
        }
        with steady_load(url) as outcomes:
            node_cluster.helm(
                "upgrade", release, str(CHART), "-n", system, "--reuse-values", "--wait",
                "--timeout", "180s", "--set", "activator.replicas=3",
                "--set", "activator.public.enabled=true",
            )  # fmt: skip
            wait_for(
                lambda: (
                    not old_pods
                    & {
                        pod["metadata"]["name"]
                        for pod in node_cluster.get(
                            "pods", "-n", system, "-l", "app.kubernetes.io/component=activator"
                        )["items"]
                    }
                ),
                120,
                what="the old activator pods gone",
            )
        activator = node_cluster.get("deployment", f"{release}-activator", "-n", system)
        assert activator["status"]["readyReplicas"] == 3
        assert set(outcomes) == {"200"}, outcomes
        assert outcomes["200"] >= 20, outcomes

        # The public entry point serves only http.exposure: public Functions.
        example = REPO / "examples" / "hello-python" / "function.yaml"
        public_fn = yaml.safe_load(example.read_text())
        public_fn["metadata"]["name"] = "hello-public"
        public_fn["spec"]["http"] = {"exposure": "public"}
        node_cluster.apply([public_fn], "-n", apps)
        node_cluster.kubectl(
            "wait", "-n", apps, "fn/hello-public", "--for=condition=Ready", "--timeout=60s"
        )
        outside = node_cluster.get("service", f"{release}-activator-public", "-n", system)
        base = f"http://{outside['spec']['clusterIP']}/fn/{apps}"
        exposed = wait_for(
            lambda: httpx.get(
                f"{base}/hello-public/?name=world", timeout=httpx.Timeout(90, connect=3)
            ),
            90,
            what="the public Service",
        )
        assert exposed.status_code == 200, exposed.text
        assert httpx.get(f"{base}/hello-python/", timeout=30).status_code == 404
    finally:
        node_cluster.helm("uninstall", release, "-n", system, "--wait")

    wait_for(
        lambda: node_cluster.get("deployments,serviceaccounts", "-n", system, "-l",
                                 f"app.kubernetes.io/instance={release}")["items"] == [],
        60,
        what="the release's objects to be gone",
    )  # fmt: skip
    roles = node_cluster.kubectl("get", "clusterrole", f"{release}-operator", check=False)
    assert roles.returncode != 0
