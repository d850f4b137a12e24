"""Run in a pod: reach the API server by its DNS name with the pod's service-account token.

Prints "pods-visible=N" when listing pods is allowed and "secrets-status=403" when listing secrets
is forbidden, so a test can see both authentication and RBAC at work. Retries name resolution for
a while: a pod started right after CoreDNS may not resolve at once.
"""

import json
import socket
import ssl
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

SA = "/var/run/secrets/kubernetes.io/serviceaccount"
HOST = "kubernetes.default.svc"

for _ in range(60):
    try:
        print(f"resolved {HOST} -> {socket.gethostbyname(HOST)}", flush=True)
        break
    except OSError as exc:
        print(f"resolve failed: {exc}", flush=True)
        time.sleep(0.5)
else:
    sys.exit(2)

namespace = Path(f"{SA}/namespace").read_text().strip()
token = Path(f"{SA}/token").read_text().strip()
context = ssl.create_default_context(cafile=f"{SA}/ca.crt")


def get(path: str) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"https://{HOST}{path}", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, {}


status, pods = get(f"/api/v1/namespaces/{namespace}/pods")
print(f"pods-status={status}")
print(f"pods-visible={len(pods.get('items', []))}")
status, _ = get(f"/api/v1/namespaces/{namespace}/secrets")
print(f"secrets-status={status}")
