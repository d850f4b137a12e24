"""`helm test`: the chart's test hooks as ``helm template`` renders them (a Function that echoes,
created by Helm in a namespace the operator serves, and a restricted Pod that invokes it through
the activator's Service), and the Pod's script run for real against a stand-in activator."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from lambdalet.api.function import Function
from tests.chart.render import CHART, KUBE_VERSION, NAMESPACE, RELEASE, Helm, Manifests, env_of

NAME = f"{RELEASE}-helm-test"
HOOK = "helm.sh/hook"
WEIGHT = "helm.sh/hook-weight"
DELETE = "helm.sh/hook-delete-policy"


def hooks_of(manifests: Manifests) -> list[dict[str, Any]]:
    return [o for o in manifests if o["metadata"].get("annotations", {}).get(HOOK) == "test"]


def pod_of(manifests: Manifests) -> dict[str, Any]:
    return manifests.get("Pod", NAME)


def function_of(manifests: Manifests) -> dict[str, Any]:
    return manifests.get("Function", NAME)


def test_hooks_a_function_then_a_pod(helm: Helm) -> None:
    manifests = helm.template()
    hooks = hooks_of(manifests)

    assert sorted((o["kind"], o["metadata"]["name"]) for o in hooks) == [
        ("Function", NAME),
        ("Pod", NAME),
    ]
    function, pod = function_of(manifests), pod_of(manifests)
    # Helm creates hooks by weight: the Function first; it waits only for the Pod to finish.
    assert int(function["metadata"]["annotations"][WEIGHT]) < int(
        pod["metadata"]["annotations"][WEIGHT]
    )
    # The Function goes once the test passed (a failed one leaves it to inspect; the next run
    # replaces it). The Pod stays for `helm test --logs`, which reads its log after the run.
    assert function["metadata"]["annotations"][DELETE] == "before-hook-creation,hook-succeeded"
    assert pod["metadata"]["annotations"][DELETE] == "before-hook-creation"
    # `helm test --logs` asks for the log of a Pod named after *every* test hook, in the release
    # namespace: each hook must be named after the Pod, or --logs fails.
    assert {o["metadata"]["name"] for o in hooks} == {pod["metadata"]["name"]}
    assert pod["metadata"]["namespace"] == NAMESPACE
    for hook in hooks:
        assert hook["metadata"]["labels"]["app.kubernetes.io/component"] == "helm-test"
        assert hook["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE


def test_function_is_valid_and_echoes(helm: Helm) -> None:
    function = function_of(helm.template())
    parsed = Function.model_validate(function)

    assert parsed.spec.runtime == "python3.11"
    assert parsed.spec.scaling.min_scale == 0  # the test wakes it from zero
    source = function["spec"]["code"]["inline"]["handler.py"]
    module: dict[str, Any] = {}
    exec(compile(source, "handler.py", "exec"), module)
    assert module["handler"]({"ping": "x"}, None) == {"echo": {"ping": "x"}}


def test_pod_is_restricted_and_needs_no_api_access(helm: Helm) -> None:
    manifests = helm.template()
    pod = pod_of(manifests)["spec"]
    (container,) = pod["containers"]
    operator_pod = manifests.get("Deployment", f"{RELEASE}-operator")["spec"]["template"]["spec"]

    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False
    assert "serviceAccountName" not in pod
    assert pod["activeDeadlineSeconds"] >= 120
    # Pod Security "restricted".
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {}}]
    assert {"hostNetwork", "hostPID", "hostIPC"}.isdisjoint(pod)
    assert container["resources"]["limits"]["memory"]
    # The operator's image, pulled as the operator's is: works where images are only imported.
    (operator,) = operator_pod["containers"]
    assert container["image"] == operator["image"]
    assert container["imagePullPolicy"] == operator["imagePullPolicy"]
    assert container["command"][:2] == ["python3", "-c"]
    assert container["command"][2] == (CHART / "files" / "helm_test.py").read_text()


def test_pod_follows_the_operator_image_values(helm: Helm) -> None:
    image = {"repository": "ghcr.io/acme/lambdalet", "tag": "9.9", "pullPolicy": "Never"}
    (container,) = pod_of(helm.template({"operator": {"image": image}}))["spec"]["containers"]

    assert container["image"] == "ghcr.io/acme/lambdalet:9.9"
    assert container["imagePullPolicy"] == "Never"


@pytest.mark.parametrize(
    ("values", "namespace"),
    [
        ({}, NAMESPACE),
        ({"operator": {"watchNamespaces": ["apps"]}}, "apps"),
        ({"operator": {"watchNamespaces": ["apps", "team-b"]}}, "apps"),
        # Patterns are skipped: the first entry that names one namespace.
        ({"operator": {"watchNamespaces": ["team-*", "a,!b", "apps"]}}, "apps"),
        ({"tests": {"namespace": "qa"}}, "qa"),
        (
            {"operator": {"watchNamespaces": ["team-*"]}, "tests": {"namespace": "team-qa"}},
            "team-qa",
        ),
    ],
)
def test_function_goes_where_the_operator_watches(
    helm: Helm, values: dict[str, Any], namespace: str
) -> None:
    manifests = helm.template(values)
    (container,) = pod_of(manifests)["spec"]["containers"]
    env = env_of(container)

    assert function_of(manifests)["metadata"]["namespace"] == namespace
    assert env["LAMBDALET_TEST_FUNCTION"] == f"{namespace}:{NAME}"
    assert env["LAMBDALET_TEST_ACTIVATOR_URL"] == f"http://{RELEASE}-activator.{NAMESPACE}.svc"
    assert float(env["LAMBDALET_TEST_TIMEOUT_SECONDS"]) >= 120
    # The Pod stays in the release namespace, next to the activator.
    assert pod_of(manifests)["metadata"]["namespace"] == NAMESPACE


def test_only_patterns_ask_for_a_namespace(helm: Helm) -> None:
    values = {"operator": {"watchNamespaces": ["team-*", "a,!b"]}}
    done = helm.run("template", RELEASE, "--kube-version", KUBE_VERSION, values=values)

    assert done.returncode != 0
    assert "set tests.namespace" in done.stderr, done.stderr
    off = helm.template({**values, "tests": {"enabled": False}})
    assert hooks_of(off) == []


@pytest.mark.parametrize(
    ("release", "name"),
    [
        ("lambdalet", "lambdalet-helm-test"),
        ("7th", "helm-test-7th"),  # a Function name starts with a letter
        ("a" * 53, "a" * 53 + "-helm-t"),  # Function names: at most 60 characters
        # Cut at 60 on a "-": the "-" goes too.
        ("9" + "a" * 48 + "-bcd", "helm-test-9" + "a" * 48),
    ],
)
def test_names(helm: Helm, release: str, name: str) -> None:
    done = subprocess.run(
        [str(helm.binary), "template", release, str(CHART), "-n", NAMESPACE,
         "--kube-version", KUBE_VERSION, "--show-only", "templates/tests/invoke.yaml"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    objects = [o for o in yaml.safe_load_all(done.stdout) if o]
    assert {o["metadata"]["name"] for o in objects} == {name}
    Function.model_validate(next(o for o in objects if o["kind"] == "Function"))


def test_disabled(helm: Helm) -> None:
    assert hooks_of(helm.template({"tests": {"enabled": False}})) == []


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"tests": {"enabled": False}},
        {"operator": {"watchNamespaces": ["apps"]}, "tests": {"namespace": "apps"}},
    ],
)
def test_lint_strict(helm: Helm, values: dict[str, Any]) -> None:
    done = helm.run("lint", "--strict", values=values)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"tests": {"enabled": "yes"}}, "/tests/enabled"),
        ({"tests": {"namespace": "Not_A_Namespace"}}, "/tests/namespace"),
        ({"tests": {"timeoutSeconds": 60}}, "timeoutSeconds"),
    ],
)
def test_schema_rejects(helm: Helm, values: dict[str, Any], complaint: str) -> None:
    done = helm.run("template", RELEASE, "--kube-version", KUBE_VERSION, values=values)

    assert done.returncode != 0
    assert complaint in done.stderr, done.stderr


@pytest.mark.parametrize(
    ("values", "namespace"),
    [({}, NAMESPACE), ({"operator": {"watchNamespaces": ["apps"]}}, "apps")],
)
def test_notes_say_how_to_test(
    helm: Helm, tmp_path: Path, values: dict[str, Any], namespace: str
) -> None:
    notes = helm.notes(values, tmp=tmp_path)

    assert f"helm test {RELEASE} -n {NAMESPACE} --logs" in notes
    assert f"{NAME} in namespace {namespace}" in notes
    assert "helm test" not in helm.notes({"tests": {"enabled": False}}, tmp=tmp_path / "off")


# The Pod's script, run for real: the rendered command against a stand-in activator on loopback.

Reply = tuple[int, dict[str, str], bytes]


@dataclass
class StandIn:
    """Answers /healthz and the Invoke API from scripted replies, in order, the last one again
    and again; an invocation reply of None echoes the payload as the test Function does."""

    healthz: list[int]
    invocations: list[Reply | None]
    seen: list[tuple[str, str, bytes]] = field(default_factory=list)

    def reply(self, method: str, path: str, body: bytes) -> Reply:
        self.seen.append((method, path, body))
        if path == "/healthz":
            status = self.healthz.pop(0) if len(self.healthz) > 1 else self.healthz[0]
            return status, {}, b"ok"
        scripted = self.invocations.pop(0) if len(self.invocations) > 1 else self.invocations[0]
        if scripted is None:
            return 200, {}, json.dumps({"echo": json.loads(body)}).encode()
        return scripted


@contextmanager
def stand_in(behaviour: StandIn) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            status, headers, body = behaviour.reply(
                self.command, self.path, self.rfile.read(length)
            )
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def run_pod(helm: Helm, activator: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    """The rendered Pod's command and env; the activator's address is ``activator``."""
    (container,) = pod_of(helm.template())["spec"]["containers"]
    assert container["command"][0] == "python3"
    env = {e["name"]: e["value"] for e in container["env"]}
    env["LAMBDALET_TEST_ACTIVATOR_URL"] = activator
    env["LAMBDALET_TEST_TIMEOUT_SECONDS"] = str(timeout)
    env["LAMBDALET_TEST_RETRY_SECONDS"] = "0.05"
    # -S: only the standard library (the venv's site-packages are not needed).
    return subprocess.run(
        [sys.executable, "-S", *container["command"][1:]], env=env, capture_output=True, text=True,
        timeout=timeout + 10, check=False,
    )  # fmt: skip


NOT_FOUND: Reply = (
    404,
    {},
    b'{"Type":"User","message":"Function not found: lam-system:lam-helm-test"}',
)
HELD_TOO_LONG: Reply = (504, {}, b'{"message":"no instance in time"}')


def test_script_waits_for_the_service_and_the_cold_start(helm: Helm) -> None:
    behaviour = StandIn(healthz=[503, 503, 200], invocations=[NOT_FOUND, HELD_TOO_LONG, None])
    with stand_in(behaviour) as url:
        done = run_pod(helm, url)

    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1].startswith(
        f"ok: POST {url}/2015-03-31/functions/{NAMESPACE}:{NAME}/invocations: 200, echoed"
    )
    assert "(attempt 3)" in lines[-1]
    assert [(m, p) for m, p, _ in behaviour.seen] == [
        ("GET", "/healthz"),
        ("GET", "/healthz"),
        ("GET", "/healthz"),
        *[("POST", f"/2015-03-31/functions/{NAMESPACE}:{NAME}/invocations")] * 3,
    ]
    payloads = {body for method, _, body in behaviour.seen if method == "POST"}
    assert len(payloads) == 1  # the same payload each time, a fresh one each run
    assert set(json.loads(payloads.pop())) == {"ping"}


@pytest.mark.parametrize(
    ("reply", "said"),
    [
        ((200, {}, b'{"echo": {"ping": "someone else"}}'), "X-Amz-Function-Error None"),
        (
            (200, {"X-Amz-Function-Error": "Unhandled"}, b'{"errorMessage": "boom"}'),
            "X-Amz-Function-Error Unhandled",
        ),
        ((200, {}, b"not json"), "not json"),
    ],
)
def test_script_fails_at_once_on_a_wrong_answer(helm: Helm, reply: Reply, said: str) -> None:
    behaviour = StandIn(healthz=[200], invocations=[reply])
    with stand_in(behaviour) as url:
        done = run_pod(helm, url)

    assert done.returncode == 1
    assert done.stdout.splitlines()[-1].startswith("FAIL: POST ")
    assert said in done.stdout
    assert sum(1 for method, _, _ in behaviour.seen if method == "POST") == 1


@pytest.mark.parametrize(
    ("behaviour", "failure"),
    [
        (StandIn(healthz=[503], invocations=[None]), "FAIL: GET "),
        (StandIn(healthz=[200], invocations=[HELD_TOO_LONG]), "FAIL: POST "),
        (StandIn(healthz=[200], invocations=[NOT_FOUND]), "Function not found"),
    ],
)
def test_script_gives_up_at_its_deadline(helm: Helm, behaviour: StandIn, failure: str) -> None:
    with stand_in(behaviour) as url:
        done = run_pod(helm, url, timeout=1)

    assert done.returncode == 1
    assert failure in done.stdout.splitlines()[-1]


def test_script_without_an_activator(helm: Helm) -> None:
    with stand_in(StandIn(healthz=[200], invocations=[None])) as url:
        pass  # closed again: nothing listens there now
    done = run_pod(helm, url, timeout=1)

    assert done.returncode == 1
    assert done.stdout.splitlines()[-1].startswith("FAIL: GET ")
    assert "waiting: GET " in done.stdout
