"""The Deployment that runs a Function's pods.

Each pod has one container: the runtime image (or the function's own image) whose PID 1 is the
Lambdalet agent, serving invocations on port 8080 and the Lambda Runtime API on localhost. The
pod follows the restricted Pod Security Standard: non-root, no privilege escalation, no
capabilities, seccomp RuntimeDefault, read-only root filesystem with a writable /tmp.

The pod announces itself to the activators as soon as its runtime is initialised, ahead of the
kubelet's Ready and the EndpointSlice (runtime-images/agent/README.md, "Announcement"). It proves
who it is with a projected service-account token for the activators' audience, bound to the pod;
that is the only token in the pod (``automountServiceAccountToken`` stays false, so the pod holds
no credential the API server accepts), and ``lambdalet.activator.announce`` verifies it.

``replicas`` belongs to the autoscaler. The builder sets it only when asked to (on creation, with
``minScale``); the hash stamped on the Deployment never covers it.
"""

from __future__ import annotations

from typing import Any

from lambdalet import names
from lambdalet.api.function import Function
from lambdalet.controller.functions.resources.meta import (
    Manifest,
    applied_hash,
    child_labels,
    child_metadata,
    selector_labels,
    stamped,
)
from lambdalet.settings import Settings

# Lambda gives a function one vCPU at 1,769 MB of memory and CPU in proportion below that:
# 128 MiB -> 128 * 1000 / 1769 = 72 millicores requested.
MIB_PER_VCPU = 1769
MIN_CPU_MILLIS = 25
RUNTIME_UID = 65532
TMP_SIZE_LIMIT = "512Mi"  # Lambda's default ephemeral storage
READY_PATH = "/healthz"
CODE_FILE_MODE = 0o555
ANNOTATION_CODE_HASH = f"{names.GROUP}/code-hash"
# Equal to lambdalet.activator.announce.TOKEN_AUDIENCE (a unit test holds them together) and to
# the agent's default LAMBDALET_ANNOUNCE_TOKEN_FILE.
ANNOUNCE_AUDIENCE = "lambdalet-activator"
ANNOUNCE_MOUNT_PATH = "/var/run/lambdalet/announce"
ANNOUNCE_TOKEN_PATH = "token"
# The kubelet renews a projected token once 80 % of its lifetime has passed; the agent reads the
# file again for every announcement.
ANNOUNCE_TOKEN_SECONDS = 3600


def deployment(function: Function, settings: Settings, replicas: int | None = None) -> Manifest:
    """The Deployment of ``function``; ``replicas`` only when creating it."""
    spec = function.spec
    name = function.metadata.name
    image_code = spec.code.image
    image = image_code.image if image_code else settings.runtime_image(spec.runtime)
    # A function's own image without pullPolicy gets Kubernetes' default for its tag (Always for
    # :latest), as the API documents; the field is then left out.
    pull_policy = image_code.pull_policy if image_code else settings.image_pull_policy
    template_annotations = {}
    if spec.code.inline is not None:
        # The runtime imports the handler once; new inline code must mean new pods.
        template_annotations[ANNOTATION_CODE_HASH] = applied_hash(dict(spec.code.inline))

    container: dict[str, Any] = {
        "name": "function",
        "image": image,
        **({"imagePullPolicy": str(pull_policy)} if pull_policy is not None else {}),
        "ports": [
            {
                "name": names.FUNCTION_PORT_NAME,
                "containerPort": names.FUNCTION_PORT,
                "protocol": "TCP",
            }
        ],
        "env": _env(function, settings),
        "resources": _resources(spec.memory_mib),
        "readinessProbe": {
            "httpGet": {"path": READY_PATH, "port": names.FUNCTION_PORT_NAME},
            "periodSeconds": 1,
            "failureThreshold": 1,
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    if spec.env_from:
        container["envFrom"] = [source.to_wire() for source in spec.env_from]
    volumes: list[dict[str, Any]] = [
        {"name": "tmp", "emptyDir": {"sizeLimit": TMP_SIZE_LIMIT}},
    ]
    if settings.announce_url:
        volumes.append(_announce_volume())
        container["volumeMounts"].append(
            {"name": "announce", "mountPath": ANNOUNCE_MOUNT_PATH, "readOnly": True}
        )
    code_volume = _code_volume(function)
    if code_volume is not None:
        volumes.append(code_volume)
        read_only = "configMap" in code_volume
        container["volumeMounts"].append(
            {"name": "code", "mountPath": names.CODE_MOUNT_PATH, "readOnly": read_only}
        )

    pod_security: dict[str, Any] = {
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if image_code is None:
        pod_security |= {
            "runAsUser": RUNTIME_UID,
            "runAsGroup": RUNTIME_UID,
            "fsGroup": RUNTIME_UID,
        }

    manifest = stamped(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": child_metadata(function, names.deployment(name), "function"),
            "spec": {
                "selector": {"matchLabels": selector_labels(function)},
                "revisionHistoryLimit": 3,
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
                },
                "template": {
                    "metadata": {
                        "labels": child_labels(function, "function"),
                        **({"annotations": template_annotations} if template_annotations else {}),
                    },
                    "spec": {
                        "containers": [container],
                        "volumes": volumes,
                        "securityContext": pod_security,
                        "automountServiceAccountToken": False,
                        "enableServiceLinks": False,
                        # Let an invocation in flight finish before the pod goes.
                        "terminationGracePeriodSeconds": spec.timeout_seconds + 10,
                    },
                },
            },
        }
    )
    if replicas is not None:
        manifest["spec"]["replicas"] = replicas
    return manifest


def _env(function: Function, settings: Settings) -> list[dict[str, Any]]:
    spec = function.spec
    env: list[dict[str, Any]] = [
        {"name": "AWS_LAMBDA_FUNCTION_NAME", "value": function.metadata.name},
        {"name": "AWS_LAMBDA_FUNCTION_VERSION", "value": "$LATEST"},
        {"name": "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "value": str(spec.memory_mib)},
        {"name": "LAMBDALET_RUNTIME", "value": spec.runtime.value},
        {"name": "LAMBDALET_NAMESPACE", "value": function.metadata.namespace or "default"},
        {"name": "LAMBDALET_TIMEOUT_SECONDS", "value": str(spec.timeout_seconds)},
        {"name": "LAMBDALET_CONCURRENCY", "value": str(spec.concurrency.per_instance)},
    ]
    if settings.announce_url:
        env += [
            {"name": "LAMBDALET_ANNOUNCE_URL", "value": settings.announce_url},
            {
                "name": "LAMBDALET_ANNOUNCE_TOKEN_FILE",
                "value": f"{ANNOUNCE_MOUNT_PATH}/{ANNOUNCE_TOKEN_PATH}",
            },
            _field("LAMBDALET_POD_IP", "status.podIP"),
            _field("LAMBDALET_POD_NAME", "metadata.name"),
        ]
    if spec.handler is not None:
        env.append({"name": "_HANDLER", "value": spec.handler})
    code = spec.code
    if code.url is not None:
        env.append({"name": "LAMBDALET_CODE_URL", "value": code.url.url})
        if code.url.sha256:
            env.append({"name": "LAMBDALET_CODE_SHA256", "value": code.url.sha256.lower()})
    if code.s3 is not None:
        s3 = code.s3
        env += [
            {"name": "LAMBDALET_CODE_S3_BUCKET", "value": s3.bucket},
            {"name": "LAMBDALET_CODE_S3_KEY", "value": s3.key},
        ]
        if s3.endpoint:
            env.append({"name": "LAMBDALET_CODE_S3_ENDPOINT", "value": s3.endpoint})
        if s3.region:
            env.append({"name": "LAMBDALET_CODE_S3_REGION", "value": s3.region})
        if s3.sha256:
            env.append({"name": "LAMBDALET_CODE_SHA256", "value": s3.sha256.lower()})
        if s3.credentials_secret is not None:
            for var, key, optional in (
                # The keys spec.code.s3.credentialsSecret documents.
                ("LAMBDALET_CODE_S3_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID", False),
                ("LAMBDALET_CODE_S3_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY", False),
                ("LAMBDALET_CODE_S3_SESSION_TOKEN", "AWS_SESSION_TOKEN", True),
            ):
                ref: dict[str, Any] = {"name": s3.credentials_secret.name, "key": key}
                if optional:
                    ref["optional"] = True
                env.append({"name": var, "valueFrom": {"secretKeyRef": ref}})
    env += [{"name": k, "value": v} for k, v in sorted(spec.environment.items())]
    return env


def _field(name: str, path: str) -> dict[str, Any]:
    """An environment variable from the downward API."""
    return {"name": name, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}}


def _announce_volume() -> dict[str, Any]:
    token = {
        "audience": ANNOUNCE_AUDIENCE,
        "expirationSeconds": ANNOUNCE_TOKEN_SECONDS,
        "path": ANNOUNCE_TOKEN_PATH,
    }
    return {"name": "announce", "projected": {"sources": [{"serviceAccountToken": token}]}}


def _resources(memory_mib: int) -> dict[str, Any]:
    cpu_millis = max(MIN_CPU_MILLIS, memory_mib * 1000 // MIB_PER_VCPU)
    memory = f"{memory_mib}Mi"
    return {
        "requests": {"cpu": f"{cpu_millis}m", "memory": memory},
        "limits": {"memory": memory},
    }


def _code_volume(function: Function) -> dict[str, Any] | None:
    code = function.spec.code
    if code.inline is not None:
        source = names.code_config_map(function.metadata.name)
    elif code.config_map is not None:
        source = code.config_map.name
    elif code.url is not None or code.s3 is not None:
        # The agent downloads and unpacks the archive at init; the root filesystem is read-only.
        return {"name": "code", "emptyDir": {"sizeLimit": TMP_SIZE_LIMIT}}
    else:
        return None  # image: the code is baked into the function's own image
    # Executable, as files from a Lambda zip can be: a `provided` runtime's bootstrap must run.
    return {"name": "code", "configMap": {"name": source, "defaultMode": CODE_FILE_MODE}}
