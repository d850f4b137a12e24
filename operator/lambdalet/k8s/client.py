"""An async Kubernetes client for the few calls the operator makes: server-side apply, get,
delete, status patches, scale.

Credentials come from one place, ``load_connection``: the in-cluster service account, or a
kubeconfig (parsed by the ``kubernetes`` package, so exec plugins and contexts work). kopf logs
in with the same ``Connection`` (see ``lambdalet.controller.handlers``).
"""

from __future__ import annotations

import os
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from lambdalet.k8s.errors import KubeError, TransientKubeError, from_status

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"
REQUEST_TIMEOUT = 15.0
# Kinds the operator touches, and their REST collection names.
PLURALS = {
    "ConfigMap": "configmaps",
    "Service": "services",
    "Deployment": "deployments",
    "Function": "functions",
    "EventSource": "eventsources",
    "Scale": "scale",
}


@dataclass(frozen=True)
class Connection:
    server: str
    ca_path: str | None = None
    insecure: bool = False
    token: str | None = None
    token_path: str | None = None  # in-cluster tokens rotate: re-read from here
    cert_path: str | None = None
    key_path: str | None = None
    default_namespace: str | None = None


def load_connection(env: Mapping[str, str], kubeconfig: str | None = None) -> Connection:
    """In-cluster credentials when running in a pod (and no kubeconfig is named), else the
    kubeconfig from ``kubeconfig`` or ``$KUBECONFIG`` or ~/.kube/config."""
    host = env.get("KUBERNETES_SERVICE_HOST")
    if kubeconfig is None and "KUBECONFIG" not in env and host and SERVICE_ACCOUNT.exists():
        port = env.get("KUBERNETES_SERVICE_PORT", "443")
        host = f"[{host}]" if ":" in host else host
        return Connection(
            server=f"https://{host}:{port}",
            ca_path=str(SERVICE_ACCOUNT / "ca.crt"),
            token_path=str(SERVICE_ACCOUNT / "token"),
            default_namespace=(SERVICE_ACCOUNT / "namespace").read_text().strip(),
        )
    from kubernetes import client, config

    configuration = client.Configuration()
    config.load_kube_config(
        config_file=kubeconfig or env.get("KUBECONFIG"), client_configuration=configuration
    )
    bearer = configuration.api_key.get("authorization") or configuration.api_key.get("BearerToken")
    token = bearer.removeprefix("Bearer ").strip() if bearer else None
    return Connection(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        token=token,
        cert_path=configuration.cert_file,
        key_path=configuration.key_file,
    )


class _TokenAuth(httpx.Auth):
    """Bearer token auth that re-reads a rotating service-account token once a minute."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._token = connection.token
        self._read_at = 0.0

    def auth_flow(self, request: httpx.Request) -> Any:
        path = self._connection.token_path
        if path and time.monotonic() - self._read_at > 60:
            self._token = Path(path).read_text().strip()
            self._read_at = time.monotonic()
        if self._token:
            request.headers["Authorization"] = f"Bearer {self._token}"
        yield request


def _ssl_context(connection: Connection) -> ssl.SSLContext | bool:
    if connection.insecure:
        return False
    context = ssl.create_default_context(cafile=connection.ca_path)
    if connection.cert_path and connection.key_path:
        context.load_cert_chain(connection.cert_path, connection.key_path)
    return context


def resource_path(
    api_version: str, kind: str, namespace: str | None, name: str | None = None
) -> str:
    """REST path of an object or collection, e.g. /apis/apps/v1/namespaces/a/deployments/b."""
    prefix = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    path = prefix
    if namespace:
        path += f"/namespaces/{namespace}"
    path += f"/{PLURALS[kind]}"
    if name:
        path += f"/{name}"
    return path


class KubeClient:
    def __init__(self, connection: Connection, *, user_agent: str = "lambdalet-operator") -> None:
        self.connection = connection
        self._http = httpx.AsyncClient(
            base_url=connection.server,
            verify=_ssl_context(connection),
            auth=_TokenAuth(connection),
            # Waiting for a pooled connection is not the API server being slow: no pool timeout.
            timeout=httpx.Timeout(REQUEST_TIMEOUT, pool=None),
            headers={"User-Agent": user_agent, "Accept": "application/json"},
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> KubeClient:
        return cls(load_connection(os.environ if env is None else env))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        json: Any = None,
        content_type: str | None = None,
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        headers = {"Content-Type": content_type} if content_type else None
        try:
            response = await self._http.request(
                method, path, json=json, headers=headers, params=params
            )
        except httpx.TimeoutException as exc:
            raise TransientKubeError(f"{what}: timed out talking to the API server") from exc
        except httpx.TransportError as exc:
            raise TransientKubeError(f"{what}: {exc.__class__.__name__}: {exc}") from exc
        try:
            body = response.json() if response.content else {}
        except ValueError:
            body = {"message": response.text[:500]}
        if response.is_error:
            raise from_status(response.status_code, body, what)
        if not isinstance(body, dict):
            raise KubeError(f"{what}: unexpected response {body!r:.200}")
        return body

    async def apply(
        self, manifest: Mapping[str, Any], *, field_manager: str, subresource: str | None = None
    ) -> dict[str, Any]:
        """Server-side apply ``manifest`` as ``field_manager``, taking over conflicting fields."""
        meta = manifest["metadata"]
        path = resource_path(
            manifest["apiVersion"], manifest["kind"], meta.get("namespace"), meta["name"]
        )
        if subresource:
            path += f"/{subresource}"
        return await self.request(
            "PATCH",
            path,
            what=f"apply {manifest['kind']} {meta.get('namespace')}/{meta['name']}",
            json=manifest,
            content_type=APPLY,
            params={"fieldManager": field_manager, "force": "true"},
        )

    async def apply_scale(
        self, namespace: str, name: str, replicas: int, *, field_manager: str
    ) -> dict[str, Any]:
        """Server-side apply ``replicas`` through a Deployment's scale subresource."""
        scale = {
            "apiVersion": "autoscaling/v1",
            "kind": "Scale",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": replicas},
        }
        return await self.request(
            "PATCH",
            resource_path("apps/v1", "Deployment", namespace, name) + "/scale",
            what=f"scale Deployment {namespace}/{name}",
            json=scale,
            content_type=APPLY,
            params={"fieldManager": field_manager, "force": "true"},
        )

    async def get(
        self, api_version: str, kind: str, namespace: str | None, name: str
    ) -> dict[str, Any]:
        return await self.request(
            "GET",
            resource_path(api_version, kind, namespace, name),
            what=f"get {kind} {namespace}/{name}",
        )

    async def delete(self, api_version: str, kind: str, namespace: str | None, name: str) -> None:
        await self.request(
            "DELETE",
            resource_path(api_version, kind, namespace, name),
            what=f"delete {kind} {namespace}/{name}",
            json={"propagationPolicy": "Background"},
        )

    async def patch_status(
        self, api_version: str, kind: str, namespace: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any]:
        return await self.request(
            "PATCH",
            resource_path(api_version, kind, namespace, name) + "/status",
            what=f"update status of {kind} {namespace}/{name}",
            json={"status": status},
            content_type=MERGE,
        )
