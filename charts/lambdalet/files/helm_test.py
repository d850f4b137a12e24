"""`helm test`: the activator's Service answers, and a Function invoked through it (Lambda's
Invoke API) wakes from zero and echoes the payload. Runs in the operator's image with only the
standard library; templates/tests/invoke.yaml passes it to ``python3 -c``.

LAMBDALET_TEST_ACTIVATOR_URL      the activator Service, http://<release>-activator.<ns>.svc
LAMBDALET_TEST_FUNCTION           <namespace>:<name> of the Function Helm created for the test
LAMBDALET_TEST_TIMEOUT_SECONDS    for the whole test (a cold start included); default 120
LAMBDALET_TEST_RETRY_SECONDS      pause between attempts; default 2
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable

# (status, headers with lower-case names, body), or why no answer came.
Answer = tuple[int, dict[str, str], bytes] | str


def call(url: str, body: bytes | None, timeout: float) -> Answer:
    request = urllib.request.Request(url, data=body, method="GET" if body is None else "POST")
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, _lower(response.headers.items()), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, _lower(exc.headers.items()), exc.read()
    except (OSError, ValueError) as exc:  # refused, DNS, timeout, reset
        return f"{type(exc).__name__}: {exc}"


def main() -> int:
    base = os.environ["LAMBDALET_TEST_ACTIVATOR_URL"].rstrip("/")
    function = os.environ["LAMBDALET_TEST_FUNCTION"]
    deadline = time.monotonic() + float(os.environ.get("LAMBDALET_TEST_TIMEOUT_SECONDS", "120"))
    pause = float(os.environ.get("LAMBDALET_TEST_RETRY_SECONDS", "2"))

    def remaining() -> float:
        return deadline - time.monotonic()

    # Right after an install the Service may not route yet: ask again until it does.
    healthz = f"{base}/healthz"
    while True:
        answer = call(healthz, None, max(1.0, min(10.0, remaining())))
        if not isinstance(answer, str) and answer[0] == 200:
            print(f"ok: GET {healthz}: 200", flush=True)
            break
        if remaining() <= pause:
            print(f"FAIL: GET {healthz}: {_said(answer)}", flush=True)
            return 1
        print(f"waiting: GET {healthz}: {_said(answer)}", flush=True)
        time.sleep(pause)

    # The first invocation scales the Function from zero; the activator holds it meanwhile (up to
    # activator.holdTimeoutSeconds, then 504). 404: the activator has not seen the Function yet.
    url = f"{base}/2015-03-31/functions/{function}/invocations"
    payload = {"ping": uuid.uuid4().hex}
    for attempt in range(1, sys.maxsize):
        started = time.monotonic()
        answer = call(url, json.dumps(payload).encode(), max(1.0, remaining()))
        took = f"{time.monotonic() - started:.1f} s"
        if not isinstance(answer, str) and answer[0] == 200:
            _, headers, body = answer
            error = headers.get("x-amz-function-error")
            if error is None and _json(body) == {"echo": payload}:
                print(f"ok: POST {url}: 200, echoed, in {took} (attempt {attempt})", flush=True)
                return 0
            # A wrong answer is not going to become right: no retry.
            print(f"FAIL: POST {url}: 200, X-Amz-Function-Error {error}: {body[:500]!r}")
            return 1
        if remaining() <= pause:
            print(f"FAIL: POST {url}: {_said(answer)} after {took}", flush=True)
            return 1
        print(f"waiting: POST {url}: {_said(answer)} after {took}", flush=True)
        time.sleep(pause)
    return 1


def _lower(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers}


def _json(body: bytes) -> object:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _said(answer: Answer) -> str:
    if isinstance(answer, str):
        return answer
    status, _, body = answer
    return f"{status} {body[:300].decode(errors='replace')}"


if __name__ == "__main__":
    sys.exit(main())
