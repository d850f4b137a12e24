"""The activator never logs bearer tokens or request bodies: every log record of the whole
process, at DEBUG, over successful, refused, oversized and failing invocations (HTTP routes and
the Invoke API) is searched for the secrets the requests carried."""

from __future__ import annotations

import logging

import pytest

from lambdalet.activator.http1 import ServerLimits
from lambdalet.activator.proxy import ProxyLimits
from tests.activator.stack import HANDLER, StaticTokens, start_stack
from tests.kit.ports import free_port
from tests.kit.servers.agent import StartAgent

TOKEN = "tok-7f3a9c1e5b"
WRONG = "tok-wrong-0b1d2e"
BODY_SECRET = "body-secret-4c8e2a"
INVOKE = "/2015-03-31/functions/team:hello/invocations"


async def test_tokens_and_bodies_stay_out_of_the_logs(
    start_agent: StartAgent, caplog: pytest.LogCaptureFixture
) -> None:
    agent = start_agent({"app.py": HANDLER})
    stack = await start_stack(
        tokens=StaticTokens({("team", "hello-auth", "token"): TOKEN}),
        server_limits=ServerLimits(max_body_bytes=64 * 1024),
        proxy_limits=ProxyLimits(hold_timeout=1.0),
    )
    stack.function(auth_secret=("hello-auth", "token"), pods={"127.0.0.1": agent.port})
    # A Function whose only pod refuses connections: the activator logs about it.
    stack.function("gone", auth_secret=("hello-auth", "token"), pods={"127.0.0.1": free_port()})
    right = {"authorization": f"Bearer {TOKEN}"}
    wrong = {"authorization": f"Bearer {WRONG}"}
    with caplog.at_level(logging.DEBUG):
        try:
            answers = [
                await stack.client.post(f"/fn/team/hello/?q={BODY_SECRET}", headers=right,
                                        content=BODY_SECRET),
                await stack.client.post("/fn/team/hello/fail", headers=right, content=BODY_SECRET),
                await stack.client.post("/fn/team/hello/", headers=wrong, content=BODY_SECRET),
                await stack.client.post(INVOKE, headers=right,
                                        content=f'{{"secret": "{BODY_SECRET}"}}'),
                await stack.client.post(INVOKE, headers=right,
                                        content=f'{{"fail": "{BODY_SECRET}"}}'),
                await stack.client.post(INVOKE, headers=wrong, content=BODY_SECRET),
                await stack.client.post(INVOKE, headers=right,
                                        content=BODY_SECRET * 10_000),  # over the body limit
                await stack.client.post("/fn/team/gone/", headers=right, content=BODY_SECRET),
            ]  # fmt: skip
        finally:
            await stack.close()

    statuses = [answer.status_code for answer in answers]
    assert statuses[0] == 201, statuses  # the calls went through
    assert statuses[3] == 200, statuses
    assert statuses[2] == statuses[5] == 401
    assert statuses[6] == 413
    # The activator's records: the test's own HTTP client (httpx, httpcore) logs what it sends.
    records = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert records  # the activator did log (e.g. the refused and failed calls)
    text = "\n".join(record.getMessage() + str(record.exc_info or "") for record in records)
    for secret in (TOKEN, WRONG, BODY_SECRET):
        assert secret not in text
