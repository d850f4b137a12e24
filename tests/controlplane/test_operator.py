"""The operator against a real kube-apiserver + etcd (+ kube-controller-manager for garbage
collection and Deployment status): children, status, rollouts, deletion, restarts.

No kubelet runs on this bed, so pods never start; Deployments that ask for replicas stay
unavailable, which is what the rollout tests rely on.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.controlplane.objects import condition, function
from tests.kit.paths import REPO
from tests.kit.servers.kube import Cluster, audit_length, audit_writes
from tests.kit.servers.operator import OperatorProcess
from tests.kit.wait import wait_for

pytestmark = pytest.mark.controlplane

EXAMPLE = REPO / "examples" / "hello-python"
OPERATOR_USER = "lambdalet-operator"


def wait_ready(
    cluster: Cluster, ns: str, name: str, status: str = "True", timeout: float = 30
) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        function = cluster.get("function", name, "-n", ns)
        ready = condition(function, "Ready")
        fresh = (
            function.get("status", {}).get("observedGeneration")
            == function["metadata"]["generation"]
        )
        return function if fresh and ready and ready["status"] == status else None

    return wait_for(ready, timeout, what=f"Function {ns}/{name} Ready={status}")


def apply_example(cluster: Cluster, ns: str) -> dict[str, Any]:
    """examples/hello-python's Function, applied with kubectl, once Ready."""
    cluster.kubectl("apply", "-n", ns, "-f", str(EXAMPLE / "function.yaml"))
    return wait_ready(cluster, ns, "hello-python")


def test_example_gets_its_children_and_reads_ready_at_zero(
    controlplane: Cluster, cp_namespace: str, operator: OperatorProcess
) -> None:
    ns = cp_namespace
    fn = apply_example(controlplane, ns)
    uid = fn["metadata"]["uid"]

    assert condition(fn, "Active") == {
        **condition(fn, "Active"),  # type: ignore[dict-item]
        "status": "False",
        "reason": "ScaledToZero",
    }
    assert fn["status"]["replicas"] == 0
    assert fn["status"]["url"].endswith(f"/fn/{ns}/hello-python")

    deployment = controlplane.get("deployment", "fn-hello-python", "-n", ns)
    service = controlplane.get("service", "fn-hello-python", "-n", ns)
    code = controlplane.get("configmap", "fn-hello-python-code", "-n", ns)
    for child in (deployment, service, code):
        owner = child["metadata"]["ownerReferences"]
        assert owner == [
            {
                "apiVersion": "lambdalet.dev/v1alpha1",
                "kind": "Function",
                "name": "hello-python",
                "uid": uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        labels = child["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "lambdalet"
        assert labels["app.kubernetes.io/instance"] == "hello-python"
        assert labels["lambdalet.dev/function"] == "hello-python"

    assert deployment["spec"]["replicas"] == 0
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["_HANDLER"] == "handler.handler"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "hello-python"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "128"
    assert env["LAMBDALET_TIMEOUT_SECONDS"] == "10"
    assert env["GREETING_STYLE"] == "friendly"
    assert container["resources"]["limits"]["memory"] == "128Mi"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert {"name": "code", "mountPath": "/var/task", "readOnly": True} in container["volumeMounts"]
    assert service["spec"]["selector"] == {"lambdalet.dev/function": "hello-python"}
    assert code["data"]["handler.py"] == (EXAMPLE / "handler.py").read_text()


def test_kubectl_get_fn_shows_ready_replicas_and_url(
    controlplane: Cluster, cp_namespace: str, operator: OperatorProcess
) -> None:
    ns = cp_namespace
    apply_example(controlplane, ns)
    table = controlplane.kubectl("get", "fn", "-n", ns).stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "REPLICAS", "URL", "AGE"]
    row = table[1].split()
    assert row[:3] == ["hello-python", "True", "0"]
    assert row[3].endswith(f"/fn/{ns}/hello-python")
    wide = controlplane.kubectl("get", "lambdalet", "-n", ns, "-o", "wide").stdout
    assert "REASON" in wide
    assert "Ready" in wide


def test_spec_change_rolls_out_and_leaves_replicas_to_the_autoscaler(
    controlplane: Cluster, cp_namespace: str, operator: OperatorProcess
) -> None:
    ns = cp_namespace
    controlplane.apply([function("roll", environment={"COLOR": "blue"})], "-n", ns)
    wait_ready(controlplane, ns, "roll")
    # The autoscaler's write, through the scale subresource with its own field manager.
    controlplane.kubectl(
        "patch", "deployment", "fn-roll", "-n", ns, "--subresource=scale", "--type=merge",
        "-p", '{"spec":{"replicas":3}}', "--field-manager=lambdalet-autoscaler",
    )  # fmt: skip
    before = controlplane.get("deployment", "fn-roll", "-n", ns)
    code_hash = before["spec"]["template"]["metadata"]["annotations"]["lambdalet.dev/code-hash"]

    controlplane.apply(
        [
            function(
                "roll",
                environment={"COLOR": "green"},
                code={"inline": {"app.py": "def handler(e, c):\n    return 'v2'\n"}},
            )
        ],
        "-n",
        ns,
    )

    def rolled() -> dict[str, Any] | None:
        d = controlplane.get("deployment", "fn-roll", "-n", ns)
        env = {
            e["name"]: e.get("value") for e in d["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        return d if env.get("COLOR") == "green" else None

    after = wait_for(rolled, 30, what="the new environment in the Deployment")
    assert after["spec"]["replicas"] == 3
    assert (
        after["spec"]["template"]["metadata"]["annotations"]["lambdalet.dev/code-hash"] != code_hash
    )
    code = controlplane.get("configmap", "fn-roll-code", "-n", ns)
    assert "'v2'" in code["data"]["app.py"]
    # No kubelet here: the three new instances never become ready, and status says so.
    fn = wait_for(
        lambda: (
            (f := controlplane.get("function", "roll", "-n", ns))
            and (condition(f, "Active") or {}).get("reason") == "Activating"
            and f
        ),
        30,
        what="Active=False/Activating",
    )
    assert fn["status"]["replicas"] == 3
    assert fn["status"]["readyReplicas"] == 0


def test_code_from_a_missing_config_map_reads_not_ready_until_it_exists(
    controlplane: Cluster, cp_namespace: str, operator: OperatorProcess
) -> None:
    ns = cp_namespace
    controlplane.apply([function("fromcm", code={"inline": {"a.py": "x = 1\n"}})], "-n", ns)
    wait_ready(controlplane, ns, "fromcm")
    controlplane.get("configmap", "fn-fromcm-code", "-n", ns)

    controlplane.apply([function("fromcm", code={"configMap": {"name": "my-code"}})], "-n", ns)
    fn = wait_ready(controlplane, ns, "fromcm", status="False")
    ready = condition(fn, "Ready")
    assert ready is not None
    assert ready["reason"] == "CodeNotFound"
    assert "ConfigMap my-code" in ready["message"]
    # The operator's own code ConfigMap went with the inline code.
    gone = controlplane.kubectl("get", "configmap", "fn-fromcm-code", "-n", ns, check=False)
    assert "NotFound" in gone.stderr

    controlplane.kubectl("create", "configmap", "my-code", "-n", ns, "--from-literal=app.py=x=1")
    wait_ready(controlplane, ns, "fromcm", timeout=30)
    deployment = controlplane.get("deployment", "fn-fromcm", "-n", ns)
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    assert {"name": "code", "configMap": {"name": "my-code", "defaultMode": 0o555}} in volumes


def apply_not_ready(
    cluster: Cluster, ns: str, name: str
) -> tuple[dict[str, Any], dict[str, Any], int]:
    """Apply Function ``name`` and wait for it to be Ready=False: the Function, its Ready
    condition, and the audit log's length before the apply (0 without one)."""
    start = audit_length(cluster.audit_log) if cluster.audit_log else 0
    cluster.apply([function(name)], "-n", ns)
    fn = wait_ready(cluster, ns, name, status="False")
    ready = condition(fn, "Ready")
    assert ready is not None
    return fn, ready, start


def test_a_name_taken_by_another_object_is_reported_not_overwritten(
    controlplane: Cluster, cp_namespace: str, operator: OperatorProcess
) -> None:
    ns = cp_namespace
    controlplane.kubectl("create", "service", "clusterip", "fn-clash", "--tcp=80:80", "-n", ns)
    fn, ready, start = apply_not_ready(controlplane, ns, "clash")
    assert ready["reason"] == "NameConflict"
    assert "Service fn-clash already exists" in ready["message"]
    service = controlplane.get("service", "fn-clash", "-n", ns)
    assert "ownerReferences" not in service["metadata"]
    assert controlplane.kubectl("get", "deployment", "fn-clash", "-n", ns, check=False).returncode
    if controlplane.audit_log:
        # One status write, no retry storm.
        writes = [
            w
            for w in audit_writes(controlplane.audit_log, OPERATOR_USER, since_line=start)
            if w["objectRef"].get("namespace") == ns
        ]
        assert sorted((w["verb"], w["objectRef"]["resource"]) for w in writes) == [
            ("create", "events"),
            ("patch", "functions"),
        ]
    events = controlplane.get(
        "events",
        "-n",
        ns,
        "--field-selector",
        "involvedObject.kind=Function,involvedObject.name=clash",
    )["items"]
    assert [(e["type"], e["reason"]) for e in events] == [("Warning", "NameConflict")]
    assert "fn-clash already exists" in events[0]["message"]
    # Once the name is free, the operator (re-checking with backoff) takes it.
    controlplane.kubectl("delete", "service", "fn-clash", "-n", ns)
    wait_ready(controlplane, ns, "clash", timeout=40)
    owner = controlplane.get("service", "fn-clash", "-n", ns)["metadata"]["ownerReferences"]
    assert owner[0]["uid"] == fn["metadata"]["uid"]


def test_deleting_a_function_garbage_collects_its_children(
    controlplane: Cluster, cp_namespace: str, operator: OperatorProcess
) -> None:
    ns = cp_namespace
    apply_example(controlplane, ns)
    controlplane.kubectl("delete", "function", "hello-python", "-n", ns, "--timeout=30s")

    def children() -> list[str]:
        listed = controlplane.get(
            "deployments,services,configmaps,replicasets",
            "-n",
            ns,
            "-l",
            "lambdalet.dev/function=hello-python",
        )
        return [f"{i['kind']}/{i['metadata']['name']}" for i in listed["items"]]

    wait_for(lambda: children() == [], 60, what="the children to be garbage-collected")


def test_restarted_operator_makes_no_writes_and_no_duplicates(
    controlplane: Cluster, cp_namespace: str, operator: OperatorProcess
) -> None:
    if controlplane.audit_log is None:
        pytest.skip("needs the audit log of a bed started by cluster.sh")
    ns = cp_namespace
    names = [f"fn{i}" for i in range(10)]
    controlplane.apply([function(n) for n in names], "-n", ns)
    for n in names:
        wait_ready(controlplane, ns, n)

    operator.stop()
    start = audit_length(controlplane.audit_log)
    marker = len(operator.log())
    operator.start()
    # Settled: every Function came in with the initial listing and the work queue drained.
    wait_for(
        lambda: operator.settled_after(marker, [(ns, n) for n in names]),
        30,
        what="the restarted operator to settle",
    )
    writes = audit_writes(controlplane.audit_log, OPERATOR_USER, since_line=start)
    assert writes == [], json.dumps(writes[:3], indent=1)
    deployments = controlplane.get("deployments", "-n", ns)["items"]
    assert sorted(d["metadata"]["name"] for d in deployments) == sorted(f"fn-{n}" for n in names)


def test_a_child_refused_by_cluster_policy_reads_apply_rejected_until_allowed(
    controlplane: Cluster, cp_namespace: str, operator: OperatorProcess
) -> None:
    ns = cp_namespace
    policy = f"deny-deployments-{ns}"[:63]
    controlplane.apply(
        [
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingAdmissionPolicy",
                "metadata": {"name": policy},
                "spec": {
                    "failurePolicy": "Fail",
                    "matchConstraints": {
                        "resourceRules": [
                            {
                                "apiGroups": ["apps"],
                                "apiVersions": ["v1"],
                                "operations": ["CREATE", "UPDATE"],
                                "resources": ["deployments"],
                            }
                        ]
                    },
                    "validations": [
                        {"expression": "false", "message": "deployments are frozen here"}
                    ],
                },
            },
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingAdmissionPolicyBinding",
                "metadata": {"name": policy},
                "spec": {
                    "policyName": policy,
                    "validationActions": ["Deny"],
                    "matchResources": {
                        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}
                    },
                },
            },
        ]
    )
    try:
        # Policies take effect once the API server has loaded them: probe with a dry run.
        wait_for(
            lambda: (
                controlplane.kubectl(
                    "create",
                    "deployment",
                    "probe",
                    "--image=x",
                    "-n",
                    ns,
                    "--dry-run=server",
                    check=False,
                ).returncode
                != 0
            ),
            20,
            what="the admission policy to take effect",
        )
        _, ready, start = apply_not_ready(controlplane, ns, "frozen")
        assert ready["reason"] == "ApplyRejected"
        assert "deployments are frozen here" in ready["message"]
        if controlplane.audit_log:
            # Re-checked with backoff (first after 5 s), not in a storm.
            status_writes = [
                w
                for w in audit_writes(controlplane.audit_log, OPERATOR_USER, since_line=start)
                if w["objectRef"].get("namespace") == ns
                and w["objectRef"]["resource"] == "functions"
            ]
            assert len(status_writes) == 1
    finally:
        controlplane.kubectl("delete", "validatingadmissionpolicybinding", policy, check=False)
        controlplane.kubectl("delete", "validatingadmissionpolicy", policy, check=False)
    wait_ready(controlplane, ns, "frozen", timeout=40)
    assert controlplane.get("deployment", "fn-frozen", "-n", ns)["spec"]["replicas"] == 0
