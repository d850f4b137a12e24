"""Errors of the Kubernetes API boundary.

    KubeError                  anything the API server or the connection to it did wrong
    ├── TransientKubeError     worth retrying: timeouts, connection failures, 409, 429, 5xx
    │   └── Conflict           409: another writer came first (a stale resourceVersion)
    │       └── AlreadyExists  409, reason AlreadyExists: a create found the name taken
    └── PermanentKubeError     retrying the same request cannot help: 400, 403, 422, ...
        └── NotFound           404

httpx errors and HTTP statuses are mapped here, once; callers above ``lambdalet.k8s`` see only
this tree (the controller turns transient errors into retries and permanent ones into a
``Ready=False`` condition). A conflict is transient for whoever just retries the same work; a
caller that knows what a conflict means (a lost race for a Lease or a schedule's tick, an Event
another replica posted) catches ``Conflict`` or ``AlreadyExists`` instead of reading statuses.
"""

from __future__ import annotations


class KubeError(Exception):
    def __init__(self, message: str, *, status: int | None = None, reason: str | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.reason = reason


class TransientKubeError(KubeError):
    pass


class Conflict(TransientKubeError):
    pass


class AlreadyExists(Conflict):
    pass


class PermanentKubeError(KubeError):
    pass


class NotFound(PermanentKubeError):
    pass


TRANSIENT_STATUSES = frozenset({409, 429, 500, 502, 503, 504})


def from_status(status: int, body: object, what: str) -> KubeError:
    """The error for an API response with ``status``; ``body`` is the decoded Status object."""
    message = reason = None
    if isinstance(body, dict):
        message = body.get("message")
        reason = body.get("reason")
    text = f"{what}: {message or f'HTTP {status}'}"
    if status == 404:
        return NotFound(text, status=status, reason=reason)
    if status == 409:
        kind = AlreadyExists if reason == "AlreadyExists" else Conflict
        return kind(text, status=status, reason=reason)
    if status in TRANSIENT_STATUSES:
        return TransientKubeError(text, status=status, reason=reason)
    return PermanentKubeError(text, status=status, reason=reason)
