"""An async Kubernetes client for the few calls the operator makes: server-side apply, get,
delete, status patches, scale.

Credentials come from one place, ``load_connection``: the in-cluster service account, or a
kubeconfig (parsed by the ``kubernetes`` package, so exec plugins and contexts work). kopf logs
in with the same ``Connection`` (see ``lambdalet.controller.handlers``).
"""

from __future__ import annotations

import base64
import json as jsonlib
import os
import ssl
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

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
    "Event": "events",
    "Pod": "pods",
    "Secret": "secrets",
    "EndpointSlice": "endpointslices",
    "TokenReview": "tokenreviews",
    "Lease": "leases",
}
WATCH_SECONDS = 300


@dataclass(frozen=True)
class Connection:
    server: str
    ca_path: str | None = None
    ca_data: str | None = None  # PEM
    insecure: bool = False
    token: str | None = None
    token_path: str | None = None  # in-cluster tokens rotate: re-read from here
    cert_path: str | None = None
    key_path: str | None = None
    default_namespace: str | None = None


class ConfigError(ValueError):
    """No usable credentials: not in a pod, and no kubeconfig with a current context."""


def load_connection(env: Mapping[str, str], kubeconfig: str | None = None) -> Connection:
    """In-cluster credentials when running in a pod (and no kubeconfig is named), else the
    current context of ``kubeconfig``, ``$KUBECONFIG`` or ~/.kube/config.

    Kubeconfigs are read here rather than with the ``kubernetes`` package, which costs the
    operator some 60 MiB of memory to import: server, CA, token and client certificates are
    supported; exec and auth-provider plugins are not (the operator normally runs in a pod).
    """
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
    path = kubeconfig or env.get("KUBECONFIG", "").split(os.pathsep)[0] or "~/.kube/config"
    return _from_kubeconfig(Path(path).expanduser())


def _from_kubeconfig(path: Path) -> Connection:
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read kubeconfig {path}: {exc}") from exc

    def named(section: str, name: str | None) -> dict[str, Any]:
        for item in config.get(section) or []:
            if item.get("name") == name:
                return dict(item.get(section.removesuffix("s")) or {})
        raise ConfigError(f"kubeconfig {path}: no {section.removesuffix('s')} named {name!r}")

    context = named("contexts", config.get("current-context"))
    cluster = named("clusters", context.get("cluster"))
    user = named("users", context.get("user"))
    if "exec" in user or "auth-provider" in user:
        raise ConfigError(f"kubeconfig {path}: exec and auth-provider credentials unsupported")
    base = path.parent

    def file(key: str) -> str | None:
        value = user.get(key) or cluster.get(key)
        return str(base / value) if value else None

    def data_file(key: str, suffix: str) -> str | None:
        value = user.get(key)
        if not value:
            return None
        handle = tempfile.NamedTemporaryFile("wb", suffix=suffix, delete=False)  # noqa: SIM115
        with handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(base64.b64decode(value))
        return handle.name

    ca_data = cluster.get("certificate-authority-data")
    return Connection(
        server=str(cluster["server"]),
        ca_path=file("certificate-authority"),
        ca_data=base64.b64decode(ca_data).decode() if ca_data else None,
        insecure=bool(cluster.get("insecure-skip-tls-verify", False)),
        token=user.get("token"),
        token_path=file("tokenFile"),
        cert_path=file("client-certificate") or data_file("client-certificate-data", ".crt"),
        key_path=file("client-key") or data_file("client-key-data", ".key"),
        default_namespace=context.get("namespace"),
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
    context = ssl.create_default_context(cafile=connection.ca_path, cadata=connection.ca_data)
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

    async def list_objects(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        *,
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        return await self.request(
            "GET",
            resource_path(api_version, kind, namespace),
            what=f"list {kind}",
            params=params,
        )

    async def watch(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        *,
        params: Mapping[str, str],
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """The (type, object) events of one watch request, until the server ends it.

        ``params`` must carry the ``resourceVersion`` to start from (see ``lambdalet.k8s.watch``,
        which relists and resumes). An ``ERROR`` event (e.g. 410 Gone) is yielded as is.
        """
        what = f"watch {kind}"
        query = {"watch": "true", "timeoutSeconds": str(WATCH_SECONDS), **params}
        timeout = httpx.Timeout(REQUEST_TIMEOUT, read=WATCH_SECONDS + 30, pool=None)
        path = resource_path(api_version, kind, namespace)
        try:
            async with self._http.stream("GET", path, params=query, timeout=timeout) as response:
                if response.is_error:
                    await response.aread()
                    try:
                        body = response.json()
                    except ValueError:
                        body = {"message": response.text[:500]}
                    raise from_status(response.status_code, body, what)
                async for line in response.aiter_lines():
                    if not line:
                        continue
                    event = jsonlib.loads(line)
                    yield event["type"], event["object"]
        except httpx.TimeoutException as exc:
            raise TransientKubeError(f"{what}: timed out talking to the API server") from exc
        except httpx.TransportError as exc:
            raise TransientKubeError(f"{what}: {exc.__class__.__name__}: {exc}") from exc

    async def apply(self, manifest: Mapping[str, Any], *, field_manager: str) -> dict[str, Any]:
        """Server-side apply ``manifest`` as ``field_manager``, taking over conflicting fields."""
        meta = manifest["metadata"]
        namespace, name = meta.get("namespace"), meta["name"]
        return await self._apply(
            resource_path(manifest["apiVersion"], manifest["kind"], namespace, name),
            manifest,
            field_manager,
            what=f"apply {manifest['kind']} {namespace}/{name}",
        )

    async def apply_status(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        status: Mapping[str, Any],
        *,
        field_manager: str,
    ) -> dict[str, Any]:
        """Server-side apply ``status`` through the status subresource as ``field_manager``.

        Only the fields in ``status`` are claimed: another manager's fields (and its entries of a
        map-list such as ``conditions``) stay; fields this manager applied before and leaves out
        now are removed. Raises ``NotFound`` when the object is gone (an apply to a subresource
        never creates it).
        """
        manifest = {
            "apiVersion": api_version,
            "kind": kind,
            "metadata": {"name": name, "namespace": namespace},
            "status": dict(status),
        }
        return await self._apply(
            resource_path(api_version, kind, namespace, name) + "/status",
            manifest,
            field_manager,
            what=f"apply status of {kind} {namespace}/{name}",
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
        return await self._apply(
            resource_path("apps/v1", "Deployment", namespace, name) + "/scale",
            scale,
            field_manager,
            what=f"scale Deployment {namespace}/{name}",
        )

    async def _apply(
        self, path: str, manifest: Mapping[str, Any], field_manager: str, *, what: str
    ) -> dict[str, Any]:
        return await self.request(
            "PATCH",
            path,
            what=what,
            json=manifest,
            content_type=APPLY,
            params={"fieldManager": field_manager, "force": "true"},
        )

    async def get(
        self, api_version: str, kind: str, namespace: str | None, name: str, *, cached: bool = False
    ) -> dict[str, Any]:
        """GET an object; ``cached`` lets the API server answer from its watch cache (cheaper,
        possibly a moment stale) instead of a quorum read from etcd."""
        return await self.request(
            "GET",
            resource_path(api_version, kind, namespace, name),
            what=f"get {kind} {namespace}/{name}",
            params={"resourceVersion": "0"} if cached else None,
        )

    async def delete(self, api_version: str, kind: str, namespace: str | None, name: str) -> None:
        await self.request(
            "DELETE",
            resource_path(api_version, kind, namespace, name),
            what=f"delete {kind} {namespace}/{name}",
            json={"propagationPolicy": "Background"},
        )

    async def create(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        meta = manifest["metadata"]
        return await self.request(
            "POST",
            resource_path(manifest["apiVersion"], manifest["kind"], meta.get("namespace")),
            what=f"create {manifest['kind']} in {meta.get('namespace')}",
            json=manifest,
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
