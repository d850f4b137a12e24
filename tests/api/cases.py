"""Manifests the API must accept or reject, shared by the model tests and the API-server tests.

Every rule is enforced twice: by the pydantic models and, through the generated CRD, by the API
server. Each invalid case is ``(id, manifest, pydantic_error, apiserver_error)``: substrings of the
pydantic ``ValidationError`` text and of the API server's rejection. They are the same string
wherever one exists that both errors contain (the field path, or the message of a CEL rule); they
differ only where the two spell a path differently (``events.0`` against ``events[0]``).

The API-server test must create objects with ``fieldValidation=Strict`` (kubectl's default), or the
server prunes unknown fields instead of rejecting them and the typo cases pass.
"""

from __future__ import annotations

import copy
from typing import Any

from lambdalet.api.eventsource import (
    RABBITMQ_URL_EXACTLY_ONE,
    REDIS_ADDRESS_EXACTLY_ONE,
    SOURCE_EXACTLY_ONE,
)
from lambdalet.api.function import (
    BEARER_NEEDS_SECRET,
    CODE_EXACTLY_ONE,
    ENV_FROM_EXACTLY_ONE,
    ENV_NAMES,
    ENV_RESERVED,
    FUNCTION_NAME,
    HANDLER_REQUIRED,
    INLINE_FILE_NAMES,
    INLINE_TOTAL_SIZE,
    SCALE_BOUNDS,
)

Manifest = dict[str, Any]
InvalidCase = tuple[str, Manifest, str, str]

DELETE: Any = object()

HELLO_PY = "def handler(event, context):\n    return {'statusCode': 200, 'body': 'hello'}\n"


def function(**spec: Any) -> Manifest:
    """A valid Python Function with inline code, changed by ``spec`` (``DELETE`` drops a key)."""
    base: dict[str, Any] = {
        "runtime": "python3.12",
        "handler": "app.handler",
        "code": {"inline": {"app.py": HELLO_PY}},
    }
    return _manifest("Function", "hello", _apply(base, spec))


def named(manifest: Manifest, name: str) -> Manifest:
    """``manifest`` under another ``metadata.name``."""
    return {**manifest, "metadata": {**manifest["metadata"], "name": name}}


def event_source(**spec: Any) -> Manifest:
    """A valid schedule EventSource for Function ``hello``, changed by ``spec``."""
    base: dict[str, Any] = {
        "function": {"name": "hello"},
        "schedule": {"expression": "*/5 * * * *"},
    }
    return _manifest("EventSource", "every-five-minutes", _apply(base, spec))


def _manifest(kind: str, name: str, spec: dict[str, Any]) -> Manifest:
    return {
        "apiVersion": "lambdalet.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": name},
        "spec": spec,
    }


def _apply(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    spec = copy.deepcopy(base)
    for key, value in changes.items():
        if value is DELETE:
            spec.pop(key, None)
        else:
            spec[key] = copy.deepcopy(value)
    return spec


def _same(case_id: str, manifest: Manifest, expected: str) -> InvalidCase:
    return (case_id, manifest, expected, expected)


VALID_FUNCTIONS: list[tuple[str, Manifest]] = [
    ("minimal-inline", function()),
    (
        "provided-image-without-handler",
        function(
            runtime="provided",
            handler=DELETE,
            code={"image": {"image": "registry.local/echo:1", "pullPolicy": "IfNotPresent"}},
        ),
    ),
    (
        "node-url",
        function(
            runtime="nodejs22",
            handler="src/index.handler",
            code={"url": {"url": "https://example.test/fn.zip", "sha256": "ab" * 32}},
        ),
    ),
    (
        "s3-code",
        function(
            code={
                "s3": {
                    "endpoint": "http://minio.storage:9000",
                    "bucket": "functions",
                    "key": "hello/v1.zip",
                    "credentialsSecret": {"name": "minio-creds"},
                }
            }
        ),
    ),
    (
        "everything",
        function(
            runtime="python3.11",
            code={"configMap": {"name": "hello-code"}},
            environment={"LOG_LEVEL": "debug", "_PRIVATE": "1"},
            envFrom=[{"secretRef": {"name": "db"}}, {"configMapRef": {"name": "settings"}}],
            timeoutSeconds=900,
            memoryMiB=10240,
            concurrency={"perInstance": 8, "reserved": 0},
            scaling={
                "minScale": 1,
                "maxScale": 1,
                "targetConcurrency": 0.5,
                "scaleToZeroAfterSeconds": 0,
            },
            http={
                "exposure": "public",
                "auth": {"type": "bearer", "secretRef": {"name": "hello-token"}},
                "eventFormat": "v1",
            },
            **{
                "async": {
                    "maxRetries": 0,
                    "maxEventAgeSeconds": 60,
                    "onFailure": {"type": "redisStream", "name": "hello-failures"},
                }
            },
        ),
    ),
]

INVALID_FUNCTIONS: list[InvalidCase] = [
    _same(
        "two-code-sources",
        function(code={"inline": {"app.py": HELLO_PY}, "configMap": {"name": "hello-code"}}),
        CODE_EXACTLY_ONE.message,
    ),
    _same("empty-code", function(code={}), CODE_EXACTLY_ONE.message),
    _same("name-too-long", named(function(), "f" * 61), FUNCTION_NAME.message),
    _same("name-with-dot", named(function(), "hello.world"), FUNCTION_NAME.message),
    _same("name-starts-with-digit", named(function(), "1hello"), FUNCTION_NAME.message),
    _same("no-code", function(code=DELETE), "spec.code"),
    _same("timeout-zero", function(timeoutSeconds=0), "spec.timeoutSeconds"),
    _same("timeout-901", function(timeoutSeconds=901), "spec.timeoutSeconds"),
    _same("timeout-string", function(timeoutSeconds="3"), "spec.timeoutSeconds"),
    _same("memory-64", function(memoryMiB=64), "spec.memoryMiB"),
    _same("handler-without-dot", function(handler="handler"), "spec.handler"),
    _same("handler-missing", function(handler=DELETE), HANDLER_REQUIRED.message),
    _same("typo-memoryMB", function(memoryMB=256), "spec.memoryMB"),
    _same("runtime-python2", function(runtime="python2.7"), "spec.runtime"),
    _same(
        "min-scale-above-max",
        function(scaling={"minScale": 5, "maxScale": 2}),
        SCALE_BOUNDS.message,
    ),
    _same(
        "min-scale-above-default-max",
        function(scaling={"minScale": 11}),
        SCALE_BOUNDS.message,
    ),
    _same("max-scale-zero", function(scaling={"maxScale": 0}), "spec.scaling.maxScale"),
    _same(
        "target-concurrency-zero",
        function(scaling={"targetConcurrency": 0}),
        "spec.scaling.targetConcurrency",
    ),
    _same(
        "per-instance-zero",
        function(concurrency={"perInstance": 0}),
        "spec.concurrency.perInstance",
    ),
    _same(
        "reserved-negative",
        function(concurrency={"reserved": -1}),
        "spec.concurrency.reserved",
    ),
    _same(
        "reserved-env-aws", function(environment={"AWS_REGION": "eu-west-1"}), ENV_RESERVED.message
    ),
    _same(
        "reserved-env-lambda",
        function(environment={"LAMBDA_TASK_ROOT": "/tmp"}),
        ENV_RESERVED.message,
    ),
    _same("reserved-env-handler", function(environment={"_HANDLER": "x.y"}), ENV_RESERVED.message),
    _same(
        "reserved-env-lambdalet",
        function(environment={"LAMBDALET_TIMEOUT_SECONDS": "1"}),
        ENV_RESERVED.message,
    ),
    _same("env-name-dash", function(environment={"MY-VAR": "1"}), ENV_NAMES.message),
    _same(
        "bearer-without-secret",
        function(http={"auth": {"type": "bearer"}}),
        BEARER_NEEDS_SECRET.message,
    ),
    _same("exposure-unknown", function(http={"exposure": "internet"}), "spec.http.exposure"),
    _same(
        "env-from-both",
        function(envFrom=[{"secretRef": {"name": "a"}, "configMapRef": {"name": "b"}}]),
        ENV_FROM_EXACTLY_ONE.message,
    ),
    _same("env-from-neither", function(envFrom=[{}]), ENV_FROM_EXACTLY_ONE.message),
    _same(
        "inline-path-traversal",
        function(code={"inline": {"../app.py": HELLO_PY}}),
        INLINE_FILE_NAMES.message,
    ),
    _same(
        "inline-too-large",
        function(code={"inline": {f"f{i}.py": "#" * 250000 for i in range(4)}}),
        INLINE_TOTAL_SIZE.message,
    ),
    _same(
        "url-not-http",
        function(code={"url": {"url": "ftp://example.test/fn.zip"}}),
        "spec.code.url.url",
    ),
    _same(
        "sha256-short",
        function(code={"url": {"url": "https://example.test/fn.zip", "sha256": "abc"}}),
        "spec.code.url.sha256",
    ),
    _same(
        "pull-policy-unknown",
        function(code={"image": {"image": "echo:1", "pullPolicy": "Sometimes"}}),
        "spec.code.image.pullPolicy",
    ),
    _same("async-retries-3", function(**{"async": {"maxRetries": 3}}), "spec.async.maxRetries"),
    _same(
        "secret-name-uppercase",
        function(envFrom=[{"secretRef": {"name": "DB"}}]),
        "secretRef.name",
    ),
]


VALID_EVENTSOURCES: list[tuple[str, Manifest]] = [
    ("schedule", event_source()),
    (
        "schedule-rate",
        event_source(schedule={"expression": "rate(5 minutes)", "timeZone": "Europe/Berlin"}),
    ),
    ("schedule-aws-cron", event_source(schedule={"expression": "cron(0 12 * * ? *)"})),
    (
        "redis-streams",
        event_source(
            schedule=DELETE,
            redisStreams={
                "address": "redis.queues:6379",
                "passwordSecret": {"name": "redis", "key": "password"},
                "stream": "orders",
            },
            batchSize=100,
            batchWindowSeconds=5,
            maxConcurrency=8,
            reportBatchItemFailures=True,
            deadLetter={"type": "redisStream", "target": "orders-dlq"},
        ),
    ),
    (
        "rabbitmq",
        event_source(
            schedule=DELETE,
            rabbitmq={"urlSecret": {"name": "amqp", "key": "url"}, "queue": "jobs"},
            maxRetries=185,
        ),
    ),
    (
        "nats",
        event_source(
            schedule=DELETE,
            natsJetStream={"url": "nats://nats:4222", "stream": "EVENTS", "subject": "events.>"},
            enabled=False,
        ),
    ),
    (
        "sqs",
        event_source(
            schedule=DELETE,
            sqs={
                "endpoint": "http://elasticmq:9324",
                "queueUrl": "http://elasticmq:9324/000000000000/jobs",
                "credentialsSecret": {"name": "sqs"},
            },
            batchSize=10000,
        ),
    ),
    (
        "s3",
        event_source(
            schedule=DELETE,
            s3={
                "endpoint": "http://minio:9000",
                "bucket": "uploads",
                "events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:Delete"],
                "prefix": "incoming/",
                "suffix": ".jpg",
            },
        ),
    ),
]

MINIO_BUCKET = {"endpoint": "http://minio:9000", "bucket": "b"}

INVALID_EVENTSOURCES: list[InvalidCase] = [
    _same(
        "two-sources",
        event_source(redisStreams={"url": "redis://redis:6379", "stream": "orders"}),
        SOURCE_EXACTLY_ONE.message,
    ),
    _same("no-source", event_source(schedule=DELETE), SOURCE_EXACTLY_ONE.message),
    _same("no-function", event_source(function=DELETE), "spec.function"),
    _same("batch-size-zero", event_source(batchSize=0), "spec.batchSize"),
    _same("batch-size-10001", event_source(batchSize=10001), "spec.batchSize"),
    _same("batch-window-301", event_source(batchWindowSeconds=301), "spec.batchWindowSeconds"),
    _same("max-concurrency-zero", event_source(maxConcurrency=0), "spec.maxConcurrency"),
    _same("max-concurrency-1001", event_source(maxConcurrency=1001), "spec.maxConcurrency"),
    _same("max-concurrency-string", event_source(maxConcurrency="8"), "spec.maxConcurrency"),
    _same("retries-infinite", event_source(maxRetries=-1), "spec.maxRetries"),
    _same("retries-186", event_source(maxRetries=186), "spec.maxRetries"),
    _same("enabled-string", event_source(enabled="yes"), "spec.enabled"),
    _same("typo-batchsize", event_source(batchsize=5), "spec.batchsize"),
    _same(
        "redis-url-and-address",
        event_source(
            schedule=DELETE,
            redisStreams={"url": "redis://r:6379", "address": "r:6379", "stream": "s"},
        ),
        REDIS_ADDRESS_EXACTLY_ONE.message,
    ),
    _same(
        "redis-no-address",
        event_source(schedule=DELETE, redisStreams={"stream": "s"}),
        REDIS_ADDRESS_EXACTLY_ONE.message,
    ),
    _same(
        "rabbitmq-http-url",
        event_source(schedule=DELETE, rabbitmq={"url": "http://rabbit:5672", "queue": "q"}),
        "spec.rabbitmq.url",
    ),
    _same(
        "rabbitmq-no-url",
        event_source(schedule=DELETE, rabbitmq={"queue": "q"}),
        RABBITMQ_URL_EXACTLY_ONE.message,
    ),
    _same(
        "sqs-no-queue-url",
        event_source(schedule=DELETE, sqs={"region": "eu-west-1"}),
        "spec.sqs.queueUrl",
    ),
    _same(
        "s3-no-endpoint",
        event_source(schedule=DELETE, s3={"bucket": "b"}),
        "spec.s3.endpoint",
    ),
    _same(
        "s3-no-events",
        event_source(schedule=DELETE, s3={**MINIO_BUCKET, "events": []}),
        "spec.s3.events",
    ),
    (
        "s3-event-name",
        event_source(schedule=DELETE, s3={**MINIO_BUCKET, "events": ["ObjectCreated"]}),
        "spec.s3.events.0",
        "spec.s3.events[0]",
    ),
    _same(
        "schedule-empty",
        event_source(schedule={"expression": ""}),
        "spec.schedule.expression",
    ),
    _same(
        "schedule-prose",
        event_source(schedule={"expression": "every day"}),
        "spec.schedule.expression",
    ),
    _same(
        "dead-letter-kafka",
        event_source(deadLetter={"type": "kafka", "target": "dlq"}),
        "spec.deadLetter.type",
    ),
]
