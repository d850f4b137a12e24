"""The manifest builders: a Function and Settings in; Deployment, Service, code ConfigMap out."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from lambdalet.api.function import Function, PullPolicy
from lambdalet.controller.functions.resources import (
    code_config_map,
    deployment,
    owner_reference,
    service,
)
from lambdalet.service_links import may_be_injected
from lambdalet.settings import Settings
from tests.api.cases import DELETE, HELLO_PY, function

NAMESPACE = "team"
UID = "0b6c1f52-uid-of-hello"
SETTINGS = Settings(
    runtime_image_prefix="registry.test/lambdalet-runtime-",
    runtime_image_tag="9.9.9",
    image_pull_policy=PullPolicy.NEVER,
)
APPLIED_HASH = "lambdalet.dev/applied-hash"
CODE_HASH = "lambdalet.dev/code-hash"

Manifest = dict[str, Any]
Builder = Callable[[Function], Manifest | None]

BUILDERS: list[tuple[str, Builder]] = [
    ("deployment", lambda fn: deployment(fn, SETTINGS)),
    ("service", service),
    ("configmap", code_config_map),
]
EXPECTED_LABELS = {
    "lambdalet.dev/function": "hello",
    "app.kubernetes.io/name": "hello",
    "app.kubernetes.io/instance": "hello",
    "app.kubernetes.io/part-of": "lambdalet",
    "app.kubernetes.io/managed-by": "lambdalet",
}

CODE_SOURCES: list[tuple[str, dict[str, Any]]] = [
    ("inline", {"inline": {"app.py": HELLO_PY}}),
    ("configMap", {"configMap": {"name": "hello-code"}}),
    ("url", {"url": {"url": "https://example.test/fn.zip"}}),
    ("s3", {"s3": {"bucket": "functions", "key": "hello.zip"}}),
    ("image", {"image": {"image": "registry.local/echo:1", "pullPolicy": "Always"}}),
]


def make(
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    **spec: Any,
) -> Function:
    """A valid Function ``team/hello`` with a uid, its spec changed by ``spec``."""
    manifest = function(**spec)
    manifest["metadata"] |= {"namespace": NAMESPACE, "uid": UID, "generation": 1}
    if labels is not None:
        manifest["metadata"]["labels"] = labels
    if annotations is not None:
        manifest["metadata"]["annotations"] = annotations
    return Function.model_validate(manifest)


def build(builder: Builder, fn: Function) -> Manifest:
    manifest = builder(fn)
    assert manifest is not None
    return manifest


def pod(manifest: Manifest) -> dict[str, Any]:
    spec: dict[str, Any] = manifest["spec"]["template"]["spec"]
    return spec


def container(manifest: Manifest) -> dict[str, Any]:
    [only] = pod(manifest)["containers"]
    assert isinstance(only, dict)
    return only


def env_names(manifest: Manifest) -> list[str]:
    return [var["name"] for var in container(manifest)["env"]]


def env_values(manifest: Manifest) -> dict[str, Any]:
    return {
        var["name"]: var.get("value", var.get("valueFrom")) for var in container(manifest)["env"]
    }


def stamp(manifest: Manifest | None) -> str:
    assert manifest is not None
    value: str = manifest["metadata"]["annotations"][APPLIED_HASH]
    return value


# --------------------------------------------------------------------------- metadata


@pytest.mark.parametrize(
    ("builder", "api_version", "kind", "name", "component"),
    [
        (BUILDERS[0][1], "apps/v1", "Deployment", "fn-hello", "function"),
        (BUILDERS[1][1], "v1", "Service", "fn-hello", "function"),
        (BUILDERS[2][1], "v1", "ConfigMap", "fn-hello-code", "code"),
    ],
    ids=[i for i, _ in BUILDERS],
)
def test_child_identity_and_labels(
    builder: Builder, api_version: str, kind: str, name: str, component: str
) -> None:
    manifest = build(builder, make())

    assert (manifest["apiVersion"], manifest["kind"]) == (api_version, kind)
    assert manifest["metadata"]["name"] == name
    assert manifest["metadata"]["namespace"] == NAMESPACE
    assert manifest["metadata"]["labels"] == {
        **EXPECTED_LABELS,
        "app.kubernetes.io/component": component,
    }


@pytest.mark.parametrize("builder", [b for _, b in BUILDERS], ids=[i for i, _ in BUILDERS])
def test_child_is_controlled_by_its_function(builder: Builder) -> None:
    manifest = build(builder, make())

    assert manifest["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "lambdalet.dev/v1alpha1",
            "kind": "Function",
            "name": "hello",
            "uid": UID,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


def test_owner_reference_needs_a_uid() -> None:
    fn = Function.model_validate(function())

    with pytest.raises(ValueError, match=r"metadata\.uid"):
        owner_reference(fn)


@pytest.mark.parametrize("builder", [b for _, b in BUILDERS], ids=[i for i, _ in BUILDERS])
def test_parent_labels_and_annotations_are_not_copied(builder: Builder) -> None:
    plain = build(builder, make())
    tracked = build(
        builder,
        make(
            labels={"argocd.argoproj.io/instance": "apps", "team": "payments"},
            annotations={"kubectl.kubernetes.io/last-applied-configuration": "{}", "note": "x"},
        ),
    )

    assert tracked == plain
    assert set(tracked["metadata"]["annotations"]) == {APPLIED_HASH}
    assert "argocd.argoproj.io/instance" not in tracked["metadata"]["labels"]


# --------------------------------------------------------------------------- Deployment


@pytest.mark.parametrize(("code"), [c for _, c in CODE_SOURCES], ids=[i for i, _ in CODE_SOURCES])
def test_pod_follows_the_restricted_pod_security_standard(code: dict[str, Any]) -> None:
    manifest = deployment(make(code=code), SETTINGS)
    pod_spec, box = pod(manifest), container(manifest)

    assert pod_spec["securityContext"]["runAsNonRoot"] is True
    assert pod_spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert box["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert pod_spec["automountServiceAccountToken"] is False
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "512Mi"}} in pod_spec["volumes"]
    assert {"name": "tmp", "mountPath": "/tmp"} in box["volumeMounts"]


@pytest.mark.parametrize(("code"), [c for _, c in CODE_SOURCES], ids=[i for i, _ in CODE_SOURCES])
def test_function_pods_get_no_service_links(code: dict[str, Any]) -> None:
    """A Service of the function's namespace (say ``lambdalet``, which would inject
    ``LAMBDALET_PORT=tcp://…``) can change no setting of the agent, and the function sees no
    Docker-link variables, as on Lambda."""
    settings = Settings(announce_url=ANNOUNCE_URL)
    manifest = deployment(make(code=code), settings)

    assert pod(manifest)["enableServiceLinks"] is False
    names = env_names(manifest)
    assert "LAMBDALET_ANNOUNCE_URL" in names
    assert [name for name in names if may_be_injected(name)] == []


@pytest.mark.parametrize(
    ("code", "run_as"),
    [
        ({"inline": {"app.py": HELLO_PY}}, 65532),
        ({"url": {"url": "https://example.test/fn.zip"}}, 65532),
        ({"image": {"image": "registry.local/echo:1"}}, None),  # the image's own user
    ],
    ids=["runtime-inline", "runtime-url", "own-image"],
)
def test_runtime_images_run_as_the_runtime_user(code: dict[str, Any], run_as: int | None) -> None:
    security = pod(deployment(make(code=code), SETTINGS))["securityContext"]

    assert security.get("runAsUser") == run_as
    assert security.get("runAsGroup") == run_as
    assert security.get("fsGroup") == run_as


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {},
            {
                "AWS_LAMBDA_FUNCTION_NAME": "hello",
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
                "LAMBDALET_RUNTIME": "python3.12",
                "LAMBDALET_NAMESPACE": NAMESPACE,
                "LAMBDALET_TIMEOUT_SECONDS": "3",
                "LAMBDALET_CONCURRENCY": "1",
                "_HANDLER": "app.handler",
            },
        ),
        (
            {
                "runtime": "nodejs22",
                "handler": "src/index.handler",
                "memoryMiB": 512,
                "timeoutSeconds": 30,
                "concurrency": {"perInstance": 4},
            },
            {
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
                "LAMBDALET_RUNTIME": "nodejs22",
                "LAMBDALET_TIMEOUT_SECONDS": "30",
                "LAMBDALET_CONCURRENCY": "4",
                "_HANDLER": "src/index.handler",
            },
        ),
        (
            {"code": {"url": {"url": "https://example.test/fn.zip", "sha256": "AB" * 32}}},
            {
                "LAMBDALET_CODE_URL": "https://example.test/fn.zip",
                "LAMBDALET_CODE_SHA256": "ab" * 32,
            },
        ),
        (
            {
                "code": {
                    "s3": {
                        "endpoint": "http://minio.storage:9000",
                        "bucket": "functions",
                        "key": "hello/v1.zip",
                        "region": "eu-west-1",
                        "sha256": "CD" * 32,
                        "credentialsSecret": {"name": "minio-creds"},
                    }
                }
            },
            {
                "LAMBDALET_CODE_S3_BUCKET": "functions",
                "LAMBDALET_CODE_S3_KEY": "hello/v1.zip",
                "LAMBDALET_CODE_S3_ENDPOINT": "http://minio.storage:9000",
                "LAMBDALET_CODE_S3_REGION": "eu-west-1",
                "LAMBDALET_CODE_SHA256": "cd" * 32,
                # The Secret keys spec.code.s3.credentialsSecret documents.
                "LAMBDALET_CODE_S3_ACCESS_KEY_ID": {
                    "secretKeyRef": {"name": "minio-creds", "key": "AWS_ACCESS_KEY_ID"}
                },
                "LAMBDALET_CODE_S3_SECRET_ACCESS_KEY": {
                    "secretKeyRef": {"name": "minio-creds", "key": "AWS_SECRET_ACCESS_KEY"}
                },
                # Only temporary credentials have one.
                "LAMBDALET_CODE_S3_SESSION_TOKEN": {
                    "secretKeyRef": {
                        "name": "minio-creds",
                        "key": "AWS_SESSION_TOKEN",
                        "optional": True,
                    }
                },
            },
        ),
    ],
    ids=["defaults", "node-sized", "url-sha-lowercased", "s3-with-credentials"],
)
def test_environment_of_the_runtime(spec: dict[str, Any], expected: dict[str, Any]) -> None:
    values = env_values(deployment(make(**spec), SETTINGS))

    assert {name: values.get(name) for name in expected} == expected


@pytest.mark.parametrize(
    ("spec", "absent"),
    [
        (
            {"runtime": "provided", "handler": DELETE, "code": {"image": {"image": "echo:1"}}},
            "_HANDLER",
        ),
        ({"code": {"s3": {"bucket": "b", "key": "k"}}}, "LAMBDALET_CODE_S3_ACCESS_KEY_ID"),
        ({"code": {"s3": {"bucket": "b", "key": "k"}}}, "LAMBDALET_CODE_S3_ENDPOINT"),
        ({"code": {"s3": {"bucket": "b", "key": "k"}}}, "LAMBDALET_CODE_S3_REGION"),
        ({"code": {"url": {"url": "https://example.test/fn.zip"}}}, "LAMBDALET_CODE_SHA256"),
        ({}, "LAMBDALET_CODE_URL"),
        ({}, "LAMBDALET_CODE_S3_BUCKET"),
    ],
    ids=[
        "provided-no-handler",
        "s3-anonymous",
        "s3-aws",
        "s3-function-region",
        "url-no-sha",
        "inline-no-url",
        "no-s3",
    ],
)
def test_environment_leaves_out_what_is_unset(spec: dict[str, Any], absent: str) -> None:
    assert absent not in env_names(deployment(make(**spec), SETTINGS))


def test_user_environment_comes_sorted_after_the_runtimes() -> None:
    fn = make(environment={"ZED": "z", "ALPHA": "a", "_PRIVATE": "p"})

    assert env_names(deployment(fn, SETTINGS)) == [
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "LAMBDALET_RUNTIME",
        "LAMBDALET_NAMESPACE",
        "LAMBDALET_TIMEOUT_SECONDS",
        "LAMBDALET_CONCURRENCY",
        "LAMBDALET_ANNOUNCE_URL",
        "LAMBDALET_ANNOUNCE_TOKEN_FILE",
        "LAMBDALET_POD_IP",
        "LAMBDALET_POD_NAME",
        "_HANDLER",
        "ALPHA",
        "ZED",
        "_PRIVATE",
    ]
    assert env_values(deployment(fn, SETTINGS))["ZED"] == "z"


ANNOUNCE_URL = "http://lambdalet-activator-peers.lambdalet-system.svc:8081/v1/announce"


@pytest.mark.parametrize(("code"), [c for _, c in CODE_SOURCES], ids=[i for i, _ in CODE_SOURCES])
def test_pod_announces_itself_with_a_bound_token(code: dict[str, Any]) -> None:
    manifest = deployment(make(code=code), SETTINGS)
    pod_spec, box = pod(manifest), container(manifest)
    values = env_values(manifest)

    assert values["LAMBDALET_ANNOUNCE_URL"] == ANNOUNCE_URL
    assert values["LAMBDALET_ANNOUNCE_TOKEN_FILE"] == "/var/run/lambdalet/announce/token"
    assert values["LAMBDALET_POD_IP"] == {
        "fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}
    }
    assert values["LAMBDALET_POD_NAME"] == {
        "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}
    }
    token = {"audience": "lambdalet-activator", "expirationSeconds": 3600, "path": "token"}
    assert [v for v in pod_spec["volumes"] if v["name"] == "announce"] == [
        {"name": "announce", "projected": {"sources": [{"serviceAccountToken": token}]}}
    ]
    assert [m for m in box["volumeMounts"] if m["name"] == "announce"] == [
        {"name": "announce", "mountPath": "/var/run/lambdalet/announce", "readOnly": True}
    ]
    # The bound token is the pod's only one: the API server's own stays out.
    assert pod_spec["automountServiceAccountToken"] is False


def test_no_announcement_without_an_announce_url() -> None:
    manifest = deployment(make(), Settings(announce_url=""))

    assert not {n for n in env_names(manifest) if "ANNOUNCE" in n or "_POD_" in n}
    assert "announce" not in {v["name"] for v in pod(manifest)["volumes"]}
    assert "announce" not in {m["name"] for m in container(manifest)["volumeMounts"]}


def test_announce_url_comes_from_settings_and_changes_the_hash() -> None:
    fn = make()
    other = Settings(
        runtime_image_prefix=SETTINGS.runtime_image_prefix,
        runtime_image_tag=SETTINGS.runtime_image_tag,
        image_pull_policy=SETTINGS.image_pull_policy,
        announce_url="http://10.96.0.20:8081/v1/announce",
    )
    manifest = deployment(fn, other)

    assert env_values(manifest)["LAMBDALET_ANNOUNCE_URL"] == "http://10.96.0.20:8081/v1/announce"
    assert stamp(manifest) != stamp(deployment(fn, SETTINGS))


@pytest.mark.parametrize(
    ("env_from", "expected"),
    [
        ([], None),
        (
            [{"secretRef": {"name": "db"}}, {"configMapRef": {"name": "settings"}}],
            [{"secretRef": {"name": "db"}}, {"configMapRef": {"name": "settings"}}],
        ),
    ],
    ids=["none", "secret-and-configmap"],
)
def test_env_from_is_passed_through(
    env_from: list[dict[str, Any]], expected: list[dict[str, Any]] | None
) -> None:
    assert container(deployment(make(envFrom=env_from), SETTINGS)).get("envFrom") == expected


@pytest.mark.parametrize(
    ("memory_mib", "cpu"),
    [
        (128, "72m"),  # 128 * 1000 // 1769
        (256, "144m"),
        (1769, "1000m"),  # one vCPU, as Lambda gives at 1,769 MB
        (10240, "5788m"),
    ],
)
def test_cpu_is_proportional_to_memory(memory_mib: int, cpu: str) -> None:
    resources = container(deployment(make(memoryMiB=memory_mib), SETTINGS))["resources"]

    assert resources == {
        "requests": {"cpu": cpu, "memory": f"{memory_mib}Mi"},
        "limits": {"memory": f"{memory_mib}Mi"},
    }


@pytest.mark.parametrize(
    ("code", "volume", "read_only", "image", "pull_policy"),
    [
        (
            {"inline": {"app.py": HELLO_PY}},
            {"name": "code", "configMap": {"name": "fn-hello-code", "defaultMode": 0o555}},
            True,
            "registry.test/lambdalet-runtime-python3.12:9.9.9",
            "Never",
        ),
        (
            {"configMap": {"name": "hello-code"}},
            {"name": "code", "configMap": {"name": "hello-code", "defaultMode": 0o555}},
            True,
            "registry.test/lambdalet-runtime-python3.12:9.9.9",
            "Never",
        ),
        (
            {"url": {"url": "https://example.test/fn.zip"}},
            {"name": "code", "emptyDir": {"sizeLimit": "512Mi"}},
            False,
            "registry.test/lambdalet-runtime-python3.12:9.9.9",
            "Never",
        ),
        (
            {"s3": {"bucket": "functions", "key": "hello.zip"}},
            {"name": "code", "emptyDir": {"sizeLimit": "512Mi"}},
            False,
            "registry.test/lambdalet-runtime-python3.12:9.9.9",
            "Never",
        ),
        (
            {"image": {"image": "registry.local/echo:1", "pullPolicy": "Always"}},
            None,
            None,
            "registry.local/echo:1",
            "Always",
        ),
        # Unset: Kubernetes' default for the tag (Always for :latest), as the API documents.
        (
            {"image": {"image": "registry.local/echo:latest"}},
            None,
            None,
            "registry.local/echo:latest",
            None,
        ),
    ],
    ids=["inline", "configMap", "url", "s3", "image", "image-default-pull-policy"],
)
def test_code_volume_and_image_per_code_source(
    code: dict[str, Any],
    volume: dict[str, Any] | None,
    read_only: bool | None,
    image: str,
    pull_policy: str | None,
) -> None:
    manifest = deployment(make(code=code), SETTINGS)
    box = container(manifest)
    code_volumes = [v for v in pod(manifest)["volumes"] if v["name"] == "code"]
    code_mounts = [m for m in box["volumeMounts"] if m["name"] == "code"]

    assert code_volumes == ([volume] if volume else [])
    assert code_mounts == (
        [{"name": "code", "mountPath": "/var/task", "readOnly": read_only}] if volume else []
    )
    assert box["image"] == image
    assert box.get("imagePullPolicy") == pull_policy


@pytest.mark.parametrize(
    ("runtime", "image"),
    [
        ("python3.11", "registry.test/lambdalet-runtime-python3.11:9.9.9"),
        ("nodejs20", "registry.test/lambdalet-runtime-nodejs20:9.9.9"),
    ],
)
def test_runtime_image_comes_from_settings(runtime: str, image: str) -> None:
    assert container(deployment(make(runtime=runtime), SETTINGS))["image"] == image


def test_deployment_serves_on_the_named_port_and_selects_its_pods() -> None:
    manifest = deployment(make(timeoutSeconds=60), SETTINGS)
    box = container(manifest)
    template_labels = manifest["spec"]["template"]["metadata"]["labels"]

    assert box["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert box["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert manifest["spec"]["selector"] == {"matchLabels": {"lambdalet.dev/function": "hello"}}
    assert template_labels == {**EXPECTED_LABELS, "app.kubernetes.io/component": "function"}
    assert manifest["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    # An invocation in flight may run its full timeout before the pod goes.
    assert pod(manifest)["terminationGracePeriodSeconds"] == 70


@pytest.mark.parametrize(("replicas"), [None, 0, 3])
def test_replicas_only_when_asked_and_outside_the_hash(replicas: int | None) -> None:
    fn = make()
    manifest = deployment(fn, SETTINGS, replicas=replicas)

    assert manifest["spec"].get("replicas") == replicas
    assert stamp(manifest) == stamp(deployment(fn, SETTINGS))


# --------------------------------------------------------------------------- Service, ConfigMap


def test_service_fronts_the_function_port() -> None:
    spec = service(make())["spec"]

    assert spec == {
        "type": "ClusterIP",
        "selector": {"lambdalet.dev/function": "hello"},
        "ports": [
            {
                "name": "http",
                "port": 80,
                "targetPort": "http",
                "protocol": "TCP",
                "appProtocol": "http",
            }
        ],
    }


@pytest.mark.parametrize(
    ("code", "data"),
    [
        ({"inline": {"b.py": "B", "a.py": "A"}}, {"a.py": "A", "b.py": "B"}),
        ({"configMap": {"name": "hello-code"}}, None),
        ({"url": {"url": "https://example.test/fn.zip"}}, None),
        ({"s3": {"bucket": "b", "key": "k"}}, None),
        ({"image": {"image": "echo:1"}}, None),
    ],
    ids=["inline", "configMap", "url", "s3", "image"],
)
def test_code_config_map_only_for_inline_code(
    code: dict[str, Any], data: dict[str, str] | None
) -> None:
    manifest = code_config_map(make(code=code))

    assert (manifest["data"] if manifest else None) == data


# --------------------------------------------------------------------------- hashes

INLINE_V1 = {"code": {"inline": {"app.py": HELLO_PY}}}


@pytest.mark.parametrize(
    ("before", "after", "changes"),
    [
        (INLINE_V1, {"code": {"inline": {"app.py": HELLO_PY + "# v2\n"}}}, True),
        (INLINE_V1, {"code": {"inline": {"app.py": HELLO_PY, "util.py": "X = 1\n"}}}, True),
        (INLINE_V1, {"code": {"inline": {"main.py": HELLO_PY}}}, True),
        (INLINE_V1, {**INLINE_V1, "memoryMiB": 256}, False),
        (INLINE_V1, {**INLINE_V1, "environment": {"LOG_LEVEL": "debug"}}, False),
    ],
    ids=["content", "file-added", "file-renamed", "memory", "environment"],
)
def test_code_hash_annotation_follows_inline_code(
    before: dict[str, Any], after: dict[str, Any], changes: bool
) -> None:
    def code_hash(spec: dict[str, Any]) -> str:
        template = deployment(make(**spec), SETTINGS)["spec"]["template"]
        value: str = template["metadata"]["annotations"][CODE_HASH]
        return value

    assert (code_hash(before) != code_hash(after)) is changes


@pytest.mark.parametrize(
    ("code"), [c for i, c in CODE_SOURCES if i != "inline"], ids=[i for i, _ in CODE_SOURCES[1:]]
)
def test_no_code_hash_annotation_without_inline_code(code: dict[str, Any]) -> None:
    template = deployment(make(code=code), SETTINGS)["spec"]["template"]

    assert "annotations" not in template["metadata"]


@pytest.mark.parametrize("builder", [b for _, b in BUILDERS], ids=[i for i, _ in BUILDERS])
def test_applied_hash_is_stable_and_ignores_dict_order(builder: Builder) -> None:
    one = make(
        code={"inline": {"app.py": HELLO_PY, "util.py": "X = 1\n"}},
        environment={"A": "1", "B": "2"},
        memoryMiB=256,
    )
    other = make(
        memoryMiB=256,
        environment={"B": "2", "A": "1"},
        code={"inline": {"util.py": "X = 1\n", "app.py": HELLO_PY}},
    )

    first = stamp(builder(one))
    assert stamp(builder(one)) == first
    assert stamp(builder(other)) == first
    assert re.fullmatch(r"[0-9a-f]{16}", first)


# (change to the spec, children whose applied hash must change); every other child keeps its hash.
SPEC_CHANGES: list[tuple[str, dict[str, Any], set[str]]] = [
    ("memory", {"memoryMiB": 256}, {"deployment"}),
    ("timeout", {"timeoutSeconds": 10}, {"deployment"}),
    ("runtime", {"runtime": "python3.11"}, {"deployment"}),
    ("handler", {"handler": "app.main"}, {"deployment"}),
    ("environment", {"environment": {"LOG_LEVEL": "debug"}}, {"deployment"}),
    ("env-from", {"envFrom": [{"secretRef": {"name": "db"}}]}, {"deployment"}),
    ("per-instance", {"concurrency": {"perInstance": 2}}, {"deployment"}),
    ("inline-code", {"code": {"inline": {"app.py": "# v2\n"}}}, {"deployment", "configmap"}),
    # Read by the activator and the autoscaler, not part of any child.
    ("scaling", {"scaling": {"minScale": 1, "maxScale": 3}}, set()),
    ("reserved", {"concurrency": {"reserved": 5}}, set()),
    ("exposure", {"http": {"exposure": "public"}}, set()),
    ("async", {"async": {"maxRetries": 0}}, set()),
]


@pytest.mark.parametrize(
    ("change", "changed"), [c[1:] for c in SPEC_CHANGES], ids=[c[0] for c in SPEC_CHANGES]
)
def test_applied_hash_changes_exactly_with_the_manifest(
    change: dict[str, Any], changed: set[str]
) -> None:
    base, edited = make(), make(**change)

    assert {
        child for child, builder in BUILDERS if stamp(builder(base)) != stamp(builder(edited))
    } == changed


def test_applied_hash_follows_the_runtime_image_setting() -> None:
    fn = make()
    newer = Settings(
        runtime_image_prefix=SETTINGS.runtime_image_prefix,
        runtime_image_tag="10.0.0",
        image_pull_policy=SETTINGS.image_pull_policy,
    )

    assert stamp(deployment(fn, newer)) != stamp(deployment(fn, SETTINGS))
