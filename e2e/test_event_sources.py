"""Event sources on the real node: each kind of EventSource wakes a Function scaled to zero and
drains its queue through the dispatcher and the activator.

The operator (which assigns EventSources to dispatcher replicas), the activator and the
dispatcher run as processes in the node's namespace; so do the brokers — redis-server,
rabbitmq-server, nats-server, ElasticMQ (SQS) and MinIO (S3) — started by the tests on the
namespace's loopback, where the dispatcher reaches them. The function pod is real: it prints one
line per record it handled, and the test reads the pod's log.
"""

from __future__ import annotations

import asyncio
import json
import re
from io import BytesIO
from pathlib import Path
from typing import Any

import aio_pika
import botocore.session
import nats
import pytest
import redis
from nats.js import api

from tests.kit.servers.dispatcher import DispatcherProcess
from tests.kit.servers.elasticmq import running_elasticmq
from tests.kit.servers.kube import Cluster
from tests.kit.servers.minio import ROOT_PASSWORD, ROOT_USER, running_minio
from tests.kit.servers.nats import running_nats
from tests.kit.servers.rabbitmq import running_rabbitmq
from tests.kit.servers.redis import running_redis
from tests.kit.wait import wait_for

pytestmark = pytest.mark.e2e

MESSAGES = 20
DRAIN_SECONDS = 180  # a cold start from zero, then the whole queue

HANDLER = """
import os, time

def handler(event, context):
    time.sleep(float(os.environ.get("SECONDS_PER_BATCH", "0")))
    if event.get("detail-type") == "Scheduled Event":
        print("handled", event["id"], flush=True)
        return {}
    for record in event["Records"]:
        body = record["body"] if "body" in record else record["s3"]["object"]["key"]
        print("handled", body, flush=True)
    return {}
"""


def function_manifest(
    name: str, *, seconds_per_batch: float = 0, max_scale: int = 3
) -> dict[str, Any]:
    return {
        "apiVersion": "lambdalet.dev/v1alpha1",
        "kind": "Function",
        "metadata": {"name": name},
        "spec": {
            "runtime": "python3.11",
            "handler": "app.handler",
            "timeoutSeconds": 10,
            "code": {"inline": {"app.py": HANDLER}},
            "environment": {"SECONDS_PER_BATCH": str(seconds_per_batch)},
            "scaling": {"scaleToZeroAfterSeconds": 300, "maxScale": max_scale},
        },
    }


def event_source(name: str, function: str, **source: Any) -> dict[str, Any]:
    return {
        "apiVersion": "lambdalet.dev/v1alpha1",
        "kind": "EventSource",
        "metadata": {"name": name},
        "spec": {"function": {"name": function}, "batchSize": 5, **source},
    }


class Bed:
    """One test's Function at zero in its namespace, and what the test reads back."""

    def __init__(
        self,
        cluster: Cluster,
        namespace: str,
        dispatcher: DispatcherProcess,
        **function: Any,
    ) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.dispatcher = dispatcher
        self.function = "consumer"
        cluster.apply([function_manifest(self.function, **function)], "-n", namespace)
        cluster.kubectl(
            "wait", "-n", namespace, f"fn/{self.function}", "--for=condition=Ready", "--timeout=60s"
        )
        replicas = cluster.kubectl(
            "get", "deploy", "-n", namespace, "-l", f"lambdalet.dev/function={self.function}",
            "-o", "jsonpath={.items[0].spec.replicas}",
        ).stdout  # fmt: skip
        assert replicas == "0", "the Function must start at zero"

    def replicas(self) -> int:
        text = self.cluster.kubectl(
            "get", "deploy", "-n", self.namespace, "-l", f"lambdalet.dev/function={self.function}",
            "-o", "jsonpath={.items[0].spec.replicas}",
        ).stdout  # fmt: skip
        return int(text or 0)

    def apply(self, source: dict[str, Any]) -> str:
        self.cluster.apply([source], "-n", self.namespace)
        name: str = source["metadata"]["name"]
        self.cluster.kubectl(
            "wait", "-n", self.namespace, f"evs/{name}", "--for=condition=Ready", "--timeout=60s"
        )
        return name

    def secret(self, name: str, data: dict[str, str]) -> None:
        literals = [f"--from-literal={key}={value}" for key, value in data.items()]
        self.cluster.kubectl("create", "secret", "generic", name, "-n", self.namespace, *literals)

    def handled(self) -> list[str]:
        done = self.cluster.kubectl(
            "logs", "-n", self.namespace, "-l", f"lambdalet.dev/function={self.function}",
            "--tail=-1", "--max-log-requests=10", check=False,
        )  # fmt: skip
        return re.findall(r"^handled (\S+)$", done.stdout, re.MULTILINE)

    def acked(self, source: str) -> int:
        pattern = (
            rf'lambdalet_dispatcher_messages_total{{eventsource="{source}",'
            rf'namespace="{self.namespace}",outcome="acked"}} (\d+)'
        )
        match = re.search(pattern, self.dispatcher.metrics())
        return int(float(match.group(1))) if match else 0

    def drain(self, source: str, bodies: list[str]) -> None:
        """Every body handled by the function, and acknowledged at the broker."""
        wait_for(
            lambda: set(bodies) <= set(self.handled()) and self.acked(source) >= len(bodies),
            DRAIN_SECONDS,
            interval=1.0,
            what=f"{source}: {len(bodies)} messages handled and acknowledged",
        )
        assert self.acked(source) == len(bodies)  # nothing acknowledged twice


@pytest.fixture
def bed(
    node_cluster: Cluster,
    node_namespace: str,
    runtime_images: None,
    activator_on_node: Any,
    dispatcher_on_node: DispatcherProcess,
) -> Bed:
    return Bed(node_cluster, node_namespace, dispatcher_on_node)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def slow_bed(
    node_cluster: Cluster,
    node_namespace: str,
    runtime_images: None,
    activator_on_node: Any,
    dispatcher_on_node: DispatcherProcess,
) -> Bed:
    """A Function that takes half a second per batch, at most 3 instances."""
    return Bed(node_cluster, node_namespace, dispatcher_on_node, seconds_per_batch=0.5)


def bodies(prefix: str) -> list[str]:
    return [f"{prefix}-{n}" for n in range(MESSAGES)]


def test_redis_streams_wakes_a_function_at_zero(bed: Bed, workdir: Path) -> None:
    with running_redis(workdir) as server:
        name = bed.apply(
            event_source(
                "orders", bed.function, redisStreams={"url": server.url, "stream": "orders"}
            )
        )
        client = redis.Redis(host=server.host, port=server.port)
        sent = bodies("redis")
        for body in sent:
            client.xadd("orders", {"body": body})
        bed.drain(name, sent)
        group = client.xinfo_groups("orders")[0]
        assert (group["pending"], group["lag"]) == (0, 0)
        client.close()


def test_rabbitmq_wakes_a_function_at_zero(bed: Bed) -> None:
    sent = bodies("rabbit")

    async def publish(url: str) -> None:
        connection = await aio_pika.connect(url)
        channel = await connection.channel()
        await channel.declare_queue("orders", durable=True)
        for body in sent:
            await channel.default_exchange.publish(
                aio_pika.Message(body.encode()), routing_key="orders"
            )
        await connection.close()

    async def depth(url: str) -> int:
        connection = await aio_pika.connect(url)
        channel = await connection.channel()
        queue = await channel.declare_queue("orders", durable=True, passive=True)
        count = queue.declaration_result.message_count or 0
        await connection.close()
        return count

    with running_rabbitmq() as broker:
        asyncio.run(publish(broker.url))
        bed.secret("amqp", {"url": broker.url})
        name = bed.apply(
            event_source(
                "orders",
                bed.function,
                rabbitmq={"urlSecret": {"name": "amqp", "key": "url"}, "queue": "orders"},
            )
        )
        bed.drain(name, sent)
        assert asyncio.run(depth(broker.url)) == 0


def test_nats_jetstream_wakes_a_function_at_zero(bed: Bed, workdir: Path) -> None:
    sent = bodies("nats")

    async def publish(url: str) -> None:
        client = await nats.connect(url)
        js = client.jetstream()
        await js.add_stream(name="ORDERS", subjects=["orders.>"], storage=api.StorageType.FILE)
        for body in sent:
            await js.publish("orders.new", body.encode())
        await client.close()

    async def pending(url: str, consumer: str) -> tuple[int, int]:
        client = await nats.connect(url)
        info = await client.jetstream().consumer_info("ORDERS", consumer)
        await client.close()
        return info.num_pending or 0, info.num_ack_pending or 0

    with running_nats(workdir) as server:
        asyncio.run(publish(server.url))
        name = bed.apply(
            event_source(
                "orders",
                bed.function,
                natsJetStream={"url": server.url, "stream": "ORDERS", "consumer": "consumer"},
            )
        )
        bed.drain(name, sent)
        assert asyncio.run(pending(server.url, "consumer")) == (0, 0)


def test_sqs_wakes_a_function_at_zero(bed: Bed) -> None:
    sent = bodies("sqs")
    with running_elasticmq() as server:
        client = botocore.session.get_session().create_client(
            "sqs",
            region_name="us-east-1",
            endpoint_url=server.endpoint,
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        url = client.create_queue(QueueName="orders")["QueueUrl"]
        for body in sent:
            client.send_message(QueueUrl=url, MessageBody=body)
        bed.secret("aws", {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"})
        name = bed.apply(
            event_source(
                "orders",
                bed.function,
                sqs={
                    "endpoint": server.endpoint,
                    "queueUrl": url,
                    "credentialsSecret": {"name": "aws"},
                },
            )
        )
        bed.drain(name, sent)
        attributes = client.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        assert attributes == {
            "ApproximateNumberOfMessages": "0",
            "ApproximateNumberOfMessagesNotVisible": "0",
        }
        client.close()


def test_s3_notifications_wake_a_function_at_zero(bed: Bed, workdir: Path) -> None:
    keys = [f"in/upload-{n}.txt" for n in range(5)]
    with running_minio(workdir, {}) as server:
        client = server.client()
        client.make_bucket("uploads")
        credentials = {"AWS_ACCESS_KEY_ID": ROOT_USER, "AWS_SECRET_ACCESS_KEY": ROOT_PASSWORD}
        bed.secret("minio", credentials)
        bed.apply(
            event_source(
                "uploads",
                bed.function,
                s3={
                    "endpoint": f"http://{server.host}:{server.port}",
                    "bucket": "uploads",
                    "prefix": "in/",
                    "credentialsSecret": {"name": "minio"},
                },
            )
        )
        for key in [*keys, "out/ignored.txt"]:
            client.put_object("uploads", key, BytesIO(b"hello"), 5)
        wait_for(
            lambda: set(keys) <= set(bed.handled()),
            DRAIN_SECONDS,
            interval=1.0,
            what="every upload under in/ handled",
        )
        assert "out/ignored.txt" not in bed.handled()  # the prefix filter
        # Deleting the EventSource takes its rule off the bucket.
        assert client.get_bucket_notification("uploads").queue_config_list
        bed.cluster.kubectl("delete", "evs", "uploads", "-n", bed.namespace)
        wait_for(
            lambda: not client.get_bucket_notification("uploads").queue_config_list,
            30,
            what="the bucket notification removed",
        )


def test_a_schedule_wakes_a_function_at_zero(bed: Bed) -> None:
    bed.apply(event_source("tick", bed.function, schedule={"expression": "rate(1 minute)"}))

    def fired() -> list[str]:
        return bed.handled()

    # A rate schedule's first tick is its creation: it fires at once, once.
    first = wait_for(fired, DRAIN_SECONDS, interval=1.0, what="the first scheduled event")
    assert len(first) == 1
    status = json.loads(
        bed.cluster.kubectl("get", "evs", "tick", "-n", bed.namespace, "-o", "json").stdout
    )["status"]
    assert status["lastScheduleTime"]
    assert "firing" not in status


def test_queue_depth_alone_scales_the_function_out(slow_bed: Bed, workdir: Path) -> None:
    """KEDA-like: the dispatcher holds one batch at a time, so in-flight requests alone would
    keep one instance; the backlog it reports makes the autoscaler add more."""
    bed = slow_bed
    with running_redis(workdir) as server:
        client = redis.Redis(host=server.host, port=server.port)
        sent = [f"slow-{n}" for n in range(40)]
        for body in sent:
            client.xadd("orders", {"body": body})
        name = bed.apply(
            event_source(
                "orders",
                bed.function,
                batchSize=1,
                redisStreams={"url": server.url, "stream": "orders"},
            )
        )
        most = wait_for(
            lambda: bed.replicas() >= 2 and bed.replicas(),
            DRAIN_SECONDS,
            interval=0.5,
            what="more than one instance for the backlog",
        )
        assert 2 <= most <= 3  # within maxScale
        bed.drain(name, sent)
        client.close()
