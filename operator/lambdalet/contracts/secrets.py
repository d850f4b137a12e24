"""Bearer tokens read from Secrets: the activator's ``http.auth`` and the dispatcher's S3 tokens.

A token is read from the named Secret when a request needs one and cached for ``TOKEN_TTL``
seconds, so a rotated token takes effect within that time and the reader needs only ``get`` on
Secrets, never ``list``. Through an API hiccup the last good token keeps serving; with none, the
request is refused.
"""

from __future__ import annotations

import base64
import binascii
import logging
import time

from lambdalet.k8s import KubeClient, KubeError, NotFound

log = logging.getLogger("lambdalet.secrets")

TOKEN_TTL = 10.0
MAX_TOKENS = 10_000


class SecretTokens:
    """Bearer tokens from Secrets, cached briefly (see the module docstring)."""

    def __init__(self, client: KubeClient, *, ttl: float = TOKEN_TTL) -> None:
        self._client = client
        self._ttl = ttl
        self._cache: dict[tuple[str, str, str], tuple[str | None, float]] = {}

    async def token(self, namespace: str, secret: str, key: str) -> str | None:
        cache_key = (namespace, secret, key)
        now = time.monotonic()
        cached = self._cache.get(cache_key)
        if cached is not None and now - cached[1] < self._ttl:
            return cached[0]
        try:
            body = await self._client.get("v1", "Secret", namespace, secret)
            raw = body.get("data", {}).get(key)
            value = base64.b64decode(raw).decode().strip() if raw else None
        except NotFound:
            value = None
        except (KubeError, binascii.Error, UnicodeDecodeError) as exc:
            log.warning("bearer token %s/%s[%s]: %s", namespace, secret, key, exc)
            # Keep serving the last good token through an API hiccup; refuse if there is none.
            return cached[0] if cached else None
        if len(self._cache) >= MAX_TOKENS:
            self._cache.clear()
        self._cache[cache_key] = (value or None, now)
        return value or None
