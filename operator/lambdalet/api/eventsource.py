"""The ``EventSource`` resource: a queue, bucket or schedule whose events invoke a Function.

The operator assigns each EventSource to an event-dispatcher replica; the dispatcher polls the
source, builds AWS-shaped events (SQS records, S3 records, EventBridge scheduled events) and
invokes the Function through the activator. Delivery fields follow Lambda's event source mappings.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, ConfigDict, Field, model_validator

from lambdalet.api.common import (
    API_VERSION,
    ApiModel,
    ApiVersion,
    Condition,
    LocalObjectReference,
    ObjectMeta,
    ObjectName,
    Resource,
    SecretKeySelector,
    StatusModel,
    cel_rules,
    conditions_field,
    count_set,
    exactly_one,
)

EVENTSOURCE_RESOURCE = Resource(
    kind="EventSource",
    plural="eventsources",
    singular="eventsource",
    short_names=("evs",),
    categories=("lambdalet",),
)

SOURCE_FIELDS = ("redisStreams", "rabbitmq", "natsJetStream", "sqs", "s3", "schedule")
SOURCE_EXACTLY_ONE = exactly_one(
    SOURCE_FIELDS,
    "an EventSource must set exactly one of redisStreams, rabbitmq, natsJetStream, sqs, s3, "
    "schedule",
)
REDIS_ADDRESS_EXACTLY_ONE = exactly_one(
    ("url", "address"), "redisStreams must set exactly one of url, address"
)
RABBITMQ_URL_EXACTLY_ONE = exactly_one(
    ("url", "urlSecret"), "rabbitmq must set exactly one of url, urlSecret"
)

HTTP_URL_PATTERN = r"^https?://[^\s]+$"
REDIS_URL_PATTERN = r"^rediss?://[^\s]+$"
AMQP_URL_PATTERN = r"^amqps?://[^\s]+$"
NATS_URL_PATTERN = r"^(nats|tls)://[^\s]+(,(nats|tls)://[^\s,]+)*$"
HOST_PORT_PATTERN = r"^[^\s:/]+:[0-9]{1,5}$"
# A broker-side name: stream, queue, subject, consumer group.
NAME_PATTERN = r"^[^\s]+$"
S3_EVENT_PATTERN = r"^s3:[A-Za-z]+(:[A-Za-z*]+)*$"
# 5-field cron ("*/5 * * * *"), AWS rate(5 minutes) / cron(0 12 * * ? *), or @hourly and friends.
SCHEDULE_PATTERN = (
    r"^(rate\([1-9][0-9]* (minute|minutes|hour|hours|day|days)\)"
    r"|cron\([^()]+\)"
    r"|@(yearly|annually|monthly|weekly|daily|hourly)"
    r"|[^\s]+( +[^\s]+){4})$"
)
TIME_ZONE_PATTERN = r"^[A-Za-z0-9_+/-]+$"


S3EventName = Annotated[str, Field(max_length=128, pattern=S3_EVENT_PATTERN)]


class DeadLetterType(StrEnum):
    REDIS_STREAM = "redisStream"
    RABBITMQ = "rabbitmq"
    NATS_JET_STREAM = "natsJetStream"
    SQS = "sqs"


class FunctionReference(ApiModel):
    """The Function the events invoke."""

    name: ObjectName = Field(
        description="Name of a Function in the same namespace as the EventSource."
    )


class RedisStreams(ApiModel):
    """A Redis stream read through a consumer group."""

    model_config = ConfigDict(json_schema_extra=cel_rules(REDIS_ADDRESS_EXACTLY_ONE))

    url: str | None = Field(
        default=None,
        max_length=2048,
        pattern=REDIS_URL_PATTERN,
        description="redis:// or rediss:// URL of the server; set this or address.",
    )
    address: str | None = Field(
        default=None,
        max_length=512,
        pattern=HOST_PORT_PATTERN,
        description="host:port of the server; set this or url.",
    )
    password_secret: SecretKeySelector | None = Field(
        default=None, description="Secret key holding the server password."
    )
    stream: str = Field(
        min_length=1, max_length=256, pattern=NAME_PATTERN, description="Stream to read."
    )
    consumer_group: str = Field(
        default="lambdalet",
        min_length=1,
        max_length=256,
        pattern=NAME_PATTERN,
        description="Consumer group the dispatcher reads as (created if missing).",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> RedisStreams:
        if count_set(self.url, self.address) != 1:
            raise ValueError(REDIS_ADDRESS_EXACTLY_ONE.message)
        return self


class RabbitMQ(ApiModel):
    """A RabbitMQ queue."""

    model_config = ConfigDict(json_schema_extra=cel_rules(RABBITMQ_URL_EXACTLY_ONE))

    url: str | None = Field(
        default=None,
        max_length=2048,
        pattern=AMQP_URL_PATTERN,
        description="amqp:// or amqps:// URL of the broker; set this or urlSecret.",
    )
    url_secret: SecretKeySelector | None = Field(
        default=None,
        description="Secret key holding the broker URL (when it carries credentials).",
    )
    queue: str = Field(
        min_length=1, max_length=255, pattern=NAME_PATTERN, description="Queue to consume."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> RabbitMQ:
        if count_set(self.url, self.url_secret) != 1:
            raise ValueError(RABBITMQ_URL_EXACTLY_ONE.message)
        return self


class NatsJetStream(ApiModel):
    """A NATS JetStream stream read through a durable pull consumer."""

    url: str = Field(
        max_length=2048,
        pattern=NATS_URL_PATTERN,
        description="nats:// URL of the server (comma-separated for a cluster).",
    )
    stream: str = Field(
        min_length=1, max_length=256, pattern=NAME_PATTERN, description="Stream to read."
    )
    subject: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        pattern=NAME_PATTERN,
        description="Subject filter within the stream; every subject when unset.",
    )
    consumer: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        pattern=NAME_PATTERN,
        description="Durable consumer name; derived from the EventSource when unset.",
    )


class Sqs(ApiModel):
    """An SQS queue, on AWS or any SQS-compatible server."""

    endpoint: str | None = Field(
        default=None,
        max_length=2048,
        pattern=HTTP_URL_PATTERN,
        description="URL of an SQS-compatible endpoint; AWS SQS for the region when unset.",
    )
    queue_url: str = Field(
        max_length=2048, pattern=HTTP_URL_PATTERN, description="URL of the queue."
    )
    region: str = Field(
        default="us-east-1",
        min_length=1,
        max_length=64,
        pattern=r"^[a-z0-9-]+$",
        description="Region used to sign requests.",
    )
    credentials_secret: LocalObjectReference | None = Field(
        default=None,
        description="Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.",
    )


class S3(ApiModel):
    """Notifications of object changes in a MinIO bucket, delivered as AWS S3 event records.

    The dispatcher sets them up through MinIO's admin API (a webhook target, then the bucket
    notification), which AWS S3 does not have: the endpoint is a MinIO server's.
    """

    endpoint: str = Field(
        max_length=2048,
        pattern=HTTP_URL_PATTERN,
        description=(
            "URL of the MinIO server's S3 API, scheme://host:port; the dispatcher configures the "
            "bucket notification through MinIO's admin API there (AWS S3 is not supported)."
        ),
    )
    bucket: str = Field(min_length=1, max_length=255, description="Bucket to watch.")
    events: tuple[S3EventName, ...] = Field(
        default=("s3:ObjectCreated:*",),
        min_length=1,
        max_length=16,
        description="Event names to deliver, e.g. s3:ObjectCreated:* or s3:ObjectRemoved:Delete.",
    )
    prefix: str | None = Field(
        default=None, max_length=1024, description="Only keys that start with this prefix."
    )
    suffix: str | None = Field(
        default=None, max_length=1024, description="Only keys that end with this suffix."
    )
    credentials_secret: LocalObjectReference | None = Field(
        default=None,
        description=(
            "Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY of a MinIO user that may "
            "configure the server (admin:ConfigUpdate, admin:ServiceRestart) and the bucket's "
            "notifications; without it the source reports SourceMisconfigured."
        ),
    )


class Schedule(ApiModel):
    """A schedule that invokes the function with an EventBridge scheduled event."""

    expression: str = Field(
        min_length=1,
        max_length=256,
        pattern=SCHEDULE_PATTERN,
        description=(
            "When to fire: a 5-field cron expression (*/5 * * * *), an EventBridge form "
            "(rate(5 minutes), cron(0 12 * * ? *)) or @hourly, @daily, ..."
        ),
    )
    time_zone: str = Field(
        default="UTC",
        min_length=1,
        max_length=64,
        pattern=TIME_ZONE_PATTERN,
        description="IANA time zone the expression is read in, e.g. Europe/Berlin.",
    )


class DeadLetter(ApiModel):
    """Where a batch goes after its last failed attempt."""

    type: DeadLetterType = Field(description="Kind of target.")
    target: str = Field(
        min_length=1,
        max_length=2048,
        description=(
            "Stream (redisStream), queue (rabbitmq), subject (natsJetStream) or queue URL (sqs); "
            "on the source's own server when the source is of the same type."
        ),
    )


class EventSourceSpec(ApiModel):
    """The desired state of an EventSource: one source, its Function, and delivery settings."""

    model_config = ConfigDict(json_schema_extra=cel_rules(SOURCE_EXACTLY_ONE))

    function: FunctionReference = Field(description="The Function the events invoke.")
    redis_streams: RedisStreams | None = Field(
        default=None, description="Read a Redis stream through a consumer group."
    )
    rabbitmq: RabbitMQ | None = Field(default=None, description="Consume a RabbitMQ queue.")
    nats_jet_stream: NatsJetStream | None = Field(
        default=None, description="Read a NATS JetStream stream."
    )
    sqs: Sqs | None = Field(default=None, description="Poll an SQS-compatible queue.")
    s3: S3 | None = Field(default=None, description="Receive a MinIO bucket's notifications.")
    schedule: Schedule | None = Field(default=None, description="Fire on a schedule.")
    batch_size: int = Field(
        default=10,
        ge=1,
        le=10000,
        strict=True,
        description="Most records delivered in one invocation.",
    )
    batch_window_seconds: int = Field(
        default=0,
        ge=0,
        le=300,
        strict=True,
        description="Longest a batch is held to fill up before it is delivered.",
    )
    max_concurrency: int = Field(
        default=1,
        ge=1,
        le=1000,
        strict=True,
        description=(
            "Batches of this EventSource in flight at once (ScalingConfig.MaximumConcurrency): "
            "one poller per batch, each holding at most one batch. 1 keeps a queue's order where "
            "the broker has one; more pollers give more throughput, most of all with small "
            "batches."
        ),
    )
    max_retries: int = Field(
        default=2,
        ge=0,
        le=185,
        strict=True,
        description=(
            "Retries of a failed batch before it is dead-lettered. "
            "Lambda's -1 (retry forever) is not supported."
        ),
    )
    dead_letter: DeadLetter | None = Field(
        default=None, description="Where failed batches go; they are dropped when unset."
    )
    report_batch_item_failures: bool = Field(
        default=False,
        strict=True,
        description=(
            "The handler returns batchItemFailures and only those records are retried "
            "(ReportBatchItemFailures)."
        ),
    )
    enabled: bool = Field(
        default=True, strict=True, description="false pauses delivery without deleting."
    )

    @model_validator(mode="after")
    def _exactly_one_source(self) -> EventSourceSpec:
        sources = (
            self.redis_streams,
            self.rabbitmq,
            self.nats_jet_stream,
            self.sqs,
            self.s3,
            self.schedule,
        )
        if count_set(*sources) != 1:
            raise ValueError(SOURCE_EXACTLY_ONE.message)
        return self


class ScheduleFiring(StatusModel):
    """A schedule tick claimed by a dispatcher replica and being fired now."""

    tick: AwareDatetime = Field(description="The tick being fired (RFC 3339).")
    replica: str = Field(
        min_length=1, max_length=253, description="Event dispatcher replica firing it."
    )
    since: AwareDatetime = Field(description="When the replica claimed the tick (RFC 3339).")


class EventSourceStatus(StatusModel):
    """The observed state of an EventSource.

    Two writers, each with its own fields (server-side apply): the operator writes the ``Ready``
    condition, ``observedGeneration`` and ``assignedReplica``; the event dispatcher replica that
    runs the source writes the ``Polling`` condition and, for schedules, ``lastScheduleTime``
    and ``firing``.
    """

    conditions: tuple[Condition, ...] = conditions_field(
        "Ready: the source is assigned to a dispatcher and delivering (operator). "
        "Polling: the dispatcher reaches the source (dispatcher)."
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation the status was computed from."
    )
    assigned_replica: str | None = Field(
        default=None, description="Event dispatcher replica that runs this source."
    )
    last_schedule_time: AwareDatetime | None = Field(
        default=None,
        description="The last schedule tick fired (its invocation answered or given up).",
    )
    firing: ScheduleFiring | None = Field(
        default=None,
        description="A schedule tick claimed and being fired now: no other replica fires it.",
    )


class EventSource(ApiModel):
    """A queue, bucket or schedule whose events invoke a Function."""

    api_version: ApiVersion = Field(default=API_VERSION, description="lambdalet.dev/v1alpha1.")
    kind: Literal["EventSource"] = Field(default="EventSource", description="EventSource.")
    metadata: ObjectMeta = Field(description="Standard object metadata.")
    spec: EventSourceSpec = Field(description="The desired state of the EventSource.")
    status: EventSourceStatus | None = Field(
        default=None, description="The observed state of the EventSource."
    )
