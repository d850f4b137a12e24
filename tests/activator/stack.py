"""An activator assembled in-process (server, app, proxy, pool) for component tests.

The function side is real: agents from ``tests.runtime`` (the Go agent and the Python runtime)
serve ``HANDLER``. Only the cluster is left out: the tests tell the proxy a Function's config and
pods the way ``kube`` and the announcement endpoint would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from lambdalet.activator.app import Activator
from lambdalet.activator.asyncinvoke.queue import AsyncQueue
from lambdalet.activator.forward import Forwarder
from lambdalet.activator.http1 import ServerLimits, serve
from lambdalet.activator.metrics import Metrics
from lambdalet.activator.model import FunctionConfig
from lambdalet.activator.proxy import Proxy, ProxyLimits, Shares
from lambdalet.activator.upstream import Pool
from lambdalet.contracts.keys import Key

HANDLER = """
import json, os, time

def handler(event, context):
    if isinstance(event, dict) and "requestContext" in event:  # an API Gateway event
        path = event.get("rawPath") or event.get("path")
        if path.startswith("/sleep/"):
            time.sleep(float(path.split("/")[2]))
        if path == "/hold":  # until the gate file named in the query exists (20 s at most)
            gate, deadline = event["queryStringParameters"]["gate"], time.monotonic() + 20
            while not os.path.exists(gate) and time.monotonic() < deadline:
                time.sleep(0.01)
        if path == "/fail":
            raise ValueError("boom")
        if path == "/bare":
            return {"just": "data"}
        if path == "/trace":
            return {"statusCode": 200, "body": os.environ.get("_X_AMZN_TRACE_ID", "")}
        result = {
            "statusCode": 201,
            "headers": {"x-pid": str(os.getpid()), "content-type": "application/json"},
            "body": json.dumps(event),
        }
        if event.get("version") == "2.0":
            result["cookies"] = ["a=1", "b=2; Path=/"]
        return result
    if isinstance(event, dict) and event.get("sleep"):
        time.sleep(event["sleep"])
    if isinstance(event, dict) and event.get("fail"):
        raise ValueError("boom")
    if isinstance(event, dict) and event.get("write"):
        with open(event["write"], "a") as out:
            out.write(context.aws_request_id + "\\n")
    return {"echo": event, "pid": os.getpid(), "request_id": context.aws_request_id}
"""


@dataclass
class StaticTokens:
    """Bearer tokens by (namespace, secret, key): the Secret store's seam."""

    tokens: Mapping[tuple[str, str, str], str] = field(default_factory=dict)

    async def token(self, namespace: str, secret: str, key: str) -> str | None:
        return self.tokens.get((namespace, secret, key))


@dataclass
class Stack:
    proxy: Proxy
    server: asyncio.Server
    client: httpx.AsyncClient
    pokes: list[Key]
    metrics: Metrics
    port: int
    queue: AsyncQueue | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def function(
        self,
        name: str = "hello",
        namespace: str = "team",
        *,
        pods: Mapping[str, int] | None = None,
        **config: Any,
    ) -> Key:
        """Tell the proxy a Function (and its ready pods), as ``kube`` would."""
        key = (namespace, name)
        self.proxy.set_config(FunctionConfig(namespace=namespace, name=name, **config))
        if pods is not None:
            self.proxy.set_ready(key, pods)
        return key

    async def close(self) -> None:
        await self.client.aclose()
        self.server.close()
        self.proxy.close()


async def start_stack(
    *,
    proxy_limits: ProxyLimits | None = None,
    server_limits: ServerLimits | None = None,
    tokens: StaticTokens | None = None,
    async_queue: Callable[[Proxy], AsyncQueue] | None = None,
    public_only: bool = False,
    metrics: Metrics | None = None,
    shares: Shares | None = None,
    forwarder: Forwarder | None = None,
) -> Stack:
    pokes: list[Key] = []
    metrics = metrics or Metrics()
    proxy = Proxy(
        Pool(),
        poke=pokes.append,
        metrics=metrics,
        limits=proxy_limits,
        shares=shares,
        forwarder=forwarder,
    )
    metrics.watch_loads(proxy.loads)
    queue = async_queue(proxy) if async_queue is not None else None
    app = Activator(
        proxy,
        proxy,
        tokens=tokens or StaticTokens(),
        async_queue=queue,
        metrics=metrics,
        public_only=public_only,
    )
    server = await serve(app.handle, "127.0.0.1", 0, limits=server_limits)
    port = server.sockets[0].getsockname()[1]
    client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30)
    return Stack(proxy, server, client, pokes, metrics, port, queue)
