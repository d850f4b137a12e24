"""The real-cluster test bed proves itself: workloads, Services, DNS, API access from pods, Jobs,
logs and namespace cleanup on the single node that e2e/cluster/cluster.sh brings up."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from e2e.harness.cluster import build_image
from tests.kit.servers.kube import Cluster
from tests.kit.wait import wait_for

pytestmark = pytest.mark.e2e

HERE = Path(__file__).parent
IMAGE = "localhost/e2e-http-echo:1"


@pytest.fixture(scope="module")
def echo_image(node_cluster: Cluster) -> str:
    context = HERE / "images" / "http-echo"
    build_image(context, context / "Containerfile", IMAGE)
    return IMAGE


def _deployment(name: str, image: str, replicas: int = 1) -> dict[str, object]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "echo",
                            "image": image,
                            "imagePullPolicy": "Never",
                            "ports": [{"containerPort": 8080}],
                            "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
                        }
                    ]
                },
            },
        },
    }


def _service(name: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]},
    }


def test_deployment_is_reachable_by_pod_ip_and_cluster_ip(
    node_cluster: Cluster, node_namespace: str, echo_image: str
) -> None:
    ns = node_namespace
    node_cluster.apply([_deployment("echo", echo_image, replicas=2), _service("echo")], "-n", ns)
    node_cluster.kubectl("-n", ns, "rollout", "status", "deployment/echo", "--timeout=90s")

    pods = node_cluster.get("pods", "-n", ns, "-l", "app=echo")["items"]
    assert len(pods) == 2
    for pod in pods:
        reply = httpx.get(f"http://{pod['status']['podIP']}:8080/by-pod-ip", timeout=5)
        assert reply.status_code == 200
        assert reply.json() == {"hostname": pod["metadata"]["name"], "path": "/by-pod-ip"}

    cluster_ip = node_cluster.get("service", "echo", "-n", ns)["spec"]["clusterIP"]
    names = {pod["metadata"]["name"] for pod in pods}
    served_by: set[str] = set()

    def both_pods_answered() -> bool:
        reply = httpx.get(f"http://{cluster_ip}/by-service", timeout=5)
        assert reply.status_code == 200
        served_by.add(reply.json()["hostname"])
        return served_by == names

    wait_for(both_pods_answered, 30, interval=0.05, what="both pods behind the ClusterIP")


def test_pod_reaches_the_api_server_by_dns_name_with_its_token_and_rbac(
    node_cluster: Cluster, node_namespace: str, echo_image: str
) -> None:
    ns = node_namespace
    node_cluster.apply(
        [
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": "pod-reader"},
                "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}],
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "pod-reader"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "pod-reader",
                },
                "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": ns}],
            },
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": "apicheck"},
                "spec": {
                    "backoffLimit": 0,
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [
                                {
                                    "name": "check",
                                    "image": echo_image,
                                    "imagePullPolicy": "Never",
                                    "command": ["python3", "/srv/apicheck.py"],
                                }
                            ],
                        }
                    },
                },
            },
        ],
        "-n",
        ns,
    )
    node_cluster.kubectl(
        "-n", ns, "wait", "--for=condition=Complete", "job/apicheck", "--timeout=90s"
    )
    logs = node_cluster.kubectl("-n", ns, "logs", "job/apicheck").stdout
    assert "resolved kubernetes.default.svc -> 10.96.0.1" in logs
    assert "pods-status=200" in logs
    assert "pods-visible=1" in logs  # the Job's own pod
    assert "secrets-status=403" in logs  # the Role grants pods only


def test_deleting_a_namespace_removes_its_workloads(node_cluster: Cluster, echo_image: str) -> None:
    ns = "e2e-cleanup"
    node_cluster.kubectl("create", "namespace", ns)
    node_cluster.apply([_deployment("echo", echo_image), _service("echo")], "-n", ns)
    node_cluster.kubectl("-n", ns, "rollout", "status", "deployment/echo", "--timeout=90s")
    pod_ip = node_cluster.get("pods", "-n", ns, "-l", "app=echo")["items"][0]["status"]["podIP"]

    node_cluster.kubectl("delete", "namespace", ns, "--timeout=120s")

    gone = node_cluster.kubectl("get", "namespace", ns, check=False)
    assert gone.returncode != 0
    assert "NotFound" in gone.stderr
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://{pod_ip}:8080/", timeout=2)


CHART = {
    "Chart.yaml": "apiVersion: v2\nname: echo\nversion: 0.1.0\n",
    "values.yaml": "image: localhost/e2e-http-echo:1\n",
    "templates/deployment.yaml": (
        "apiVersion: apps/v1\n"
        "kind: Deployment\n"
        "metadata: {name: {{ .Release.Name }}}\n"
        "spec:\n"
        "  selector: {matchLabels: {app: {{ .Release.Name }}}}\n"
        "  template:\n"
        "    metadata: {labels: {app: {{ .Release.Name }}}}\n"
        "    spec:\n"
        "      containers:\n"
        "        - name: echo\n"
        "          image: {{ .Values.image }}\n"
        "          imagePullPolicy: Never\n"
        "          readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}\n"
    ),
}


def test_helm_installs_and_uninstalls_a_chart_of_a_local_image(
    node_cluster: Cluster, node_namespace: str, echo_image: str, tmp_path: Path
) -> None:
    for name, text in CHART.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    ns = node_namespace
    node_cluster.helm("install", "echo", str(tmp_path), "-n", ns, "--wait", "--timeout", "90s")
    deployment = node_cluster.get("deployment", "echo", "-n", ns)
    assert deployment["status"]["readyReplicas"] == 1
    releases = node_cluster.helm("list", "-n", ns, "-o", "json").stdout
    assert '"status":"deployed"' in releases
    node_cluster.helm("uninstall", "echo", "-n", ns, "--wait")
    assert node_cluster.get("deployments", "-n", ns)["items"] == []
