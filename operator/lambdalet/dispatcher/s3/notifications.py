"""MinIO bucket notifications for an S3 EventSource: the webhook target and the bucket's rule.

Where it sits: the dispatcher replica that owns an S3 EventSource calls ``ensure`` (the runner,
again after every failure) and ``remove`` when the EventSource is deleted. Afterwards MinIO POSTs
each matching bucket event to ``receiver`` at ``<LAMBDALET_DISPATCHER_S3_URL>/s3/<ns>/<name>``
with ``Authorization: Bearer <token>``. Two things on the MinIO server make that so:

* a webhook target ``notify_webhook:<target_id>`` (admin API, ``MinioAdmin.config_set``) with
  the receiver URL, the token, ``enable=on`` and optionally a ``queue_dir``; its ``comment`` holds
  ``fingerprint(...)`` because MinIO never shows the token back (``config_get`` redacts it);
* a ``QueueConfiguration`` with ``Id`` = the target id and ``Queue`` = ``target_arn`` in the
  bucket's notification configuration, next to everybody else's (merged, never overwritten).

MinIO loads notification targets only when it starts (``notify_webhook`` is not one of its
dynamic sub-systems, checked against the version the tests build): ``config_get`` shows the
*running* targets, a target just written is not one until a restart, and a bucket rule naming
it is refused ("A specified destination ARN does not exist"). So a new or changed target costs a
``service_restart`` of the MinIO deployment (about a second on one node, every client sees it);
an unchanged target costs nothing. With ``allow_restart=False`` the target is written and the
call fails with a ``SourceConfigError`` asking for the restart.

``queue_dir`` (an absolute directory on MinIO's side, writable by MinIO; each target uses its own
``minio-webhook-<id>`` below it): with it, MinIO stores every event on disk and retries a failed
delivery every 3 s, in order, so nothing is lost while the dispatcher is away, but one event the
receiver keeps refusing holds back the ones behind it; without it (the default) a failed delivery
is dropped. Either way MinIO refuses a target whose URL it cannot connect to when it is written.

``remove`` takes the rule out of the bucket (effective at once) and the target out of the stored
configuration; MinIO keeps the target running, idle, until its next restart (no restart for a
delete). Overlapping prefix/suffix rules of two EventSources on one bucket are fine for MinIO
(AWS S3 refuses them); MinIO refuses only two identical rules, or an event twice in one rule.

Errors (``SourceError`` transient: the runner retries with a backoff; ``SourceConfigError``:
shown in the status until the EventSource, its Secret or the MinIO setup changes)::

    SourceError           endpoint unreachable or slow, MinIO answers 5xx or is restarting,
                          MinIO cannot connect to the receiver URL, target not loaded yet
    └── SourceConfigError no credentials, credentials refused, no admin rights, a bad endpoint,
                          no such bucket, no MinIO admin API, a rule or target MinIO refuses
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import shlex
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Protocol, TypeVar
from urllib.parse import urlsplit

import urllib3
from minio import Minio
from minio.credentials.providers import StaticProvider
from minio.error import InvalidResponseError, MinioAdminException, S3Error, ServerError
from minio.minioadmin import MinioAdmin
from minio.notificationconfig import (
    NotificationConfig,
    PrefixFilterRule,
    QueueConfig,
    SuffixFilterRule,
)

from lambdalet.api.eventsource import S3
from lambdalet.dispatcher.sources.source import SourceConfigError, SourceError

log = logging.getLogger(__name__)

SUBSYSTEM = "notify_webhook"
TARGET_PREFIX = "lambdalet-"
# Keys MinIO knows for a webhook target; a value holding "<key>=" would be split there.
WEBHOOK_KEYS = ("enable", "endpoint", "auth_token", "queue_limit", "queue_dir", "client_cert",
                "client_key", "comment")  # fmt: skip
RESTART_TIMEOUT = 60.0  # seconds for MinIO to come back with the new target
POLL_SECONDS = 0.5
T = TypeVar("T")


class Credentials(Protocol):
    """An access key pair (``sqs.Credentials`` is one), from the EventSource's Secret."""

    @property
    def access_key_id(self) -> str: ...

    @property
    def secret_access_key(self) -> str: ...


@dataclass(frozen=True)
class Limits:
    """How long one call may take: connect and read timeouts, one retry of a failed connect."""

    connect: float = 3.0
    read: float = 20.0
    retries: int = 1

    @property
    def deadline(self) -> float:
        return (self.retries + 1) * (self.connect + self.read) + 2.0


LIMITS = Limits()


@dataclass(frozen=True)
class Changes:
    """What a call wrote: all False when MinIO was already as wanted."""

    target_written: bool = False
    restarted: bool = False
    bucket_written: bool = False


# --- the pure part ------------------------------------------------------------------------------


def target_id(namespace: str, name: str) -> str:
    """The MinIO webhook target id of an EventSource: "lambdalet-" + 16 hex digits of a hash.

    Stable, and within what MinIO takes: no ":" (it splits ``notify_webhook:<id>`` and the ARN
    there), no space or "=" (the config line is ``key=value`` pairs), lower case (an environment
    variable target ``MINIO_NOTIFY_WEBHOOK_*_<ID>`` can never clash).
    """
    digest = hashlib.sha256(f"{namespace}/{name}".encode()).hexdigest()
    return TARGET_PREFIX + digest[:16]


def target_arn(target: str) -> str:
    return f"arn:minio:sqs::{target}:webhook"


def fingerprint(url: str, token: str, queue_dir: str | None) -> str:
    """What the target's ``comment`` holds: a digest of what MinIO does not show back."""
    digest = hashlib.sha256(f"lambdalet\0{url}\0{token}\0{queue_dir or ''}".encode()).hexdigest()
    return f"lambdalet:{digest[:32]}"


def target_config(url: str, token: str, queue_dir: str | None) -> dict[str, str]:
    """The key=value pairs of the target. Raises ``SourceConfigError`` for a value MinIO's
    line format cannot carry (whitespace, quotes, another key's "key=") or a relative queue_dir."""
    config = {"enable": "on", "endpoint": url, "auth_token": token}
    if queue_dir:
        if not queue_dir.startswith("/"):
            raise SourceConfigError(f"the webhook queue_dir {queue_dir!r} must be absolute")
        config["queue_dir"] = queue_dir
    if urlsplit(url).scheme not in ("http", "https"):
        raise SourceConfigError(f"the S3 receiver URL {url!r} is not an http(s) URL")
    for key, value in config.items():
        if re.search(r"[\s\"']", value) or any(f"{k}=" in value for k in WEBHOOK_KEYS):
            raise SourceConfigError(f"the webhook {key} cannot be written to MinIO: {value!r}")
    config["comment"] = fingerprint(url, token, queue_dir)
    return config


def running_target(config_text: str, target: str) -> dict[str, str] | None:
    """Our target's pairs in ``config_get("notify_webhook")`` output, None when not running."""
    head = f"{SUBSYSTEM}:{target}"
    for line in config_text.splitlines():
        if line.split(" ", 1)[0] != head:
            continue
        try:
            words = shlex.split(line)[1:]
        except ValueError:
            return {}
        return dict(word.split("=", 1) for word in words if "=" in word)
    return None


def target_current(running: Mapping[str, str] | None, wanted: Mapping[str, str]) -> bool:
    """Whether the running target is the wanted one (the token compared through the comment)."""
    if running is None:
        return False
    return (
        running.get("enable", "on") == "on"
        and running.get("endpoint") == wanted["endpoint"]
        and running.get("queue_dir", "") == wanted.get("queue_dir", "")
        and running.get("comment") == wanted["comment"]
    )


def queue_config(spec: S3, target: str) -> QueueConfig:
    """Our rule: the EventSource's events (each once) and key filter, to our target."""
    return QueueConfig(
        events=list(dict.fromkeys(spec.events)),
        config_id=target,
        queue=target_arn(target),
        prefix_filter_rule=PrefixFilterRule(spec.prefix) if spec.prefix else None,
        suffix_filter_rule=SuffixFilterRule(spec.suffix) if spec.suffix else None,
    )


def merged(
    current: NotificationConfig, target: str, ours: QueueConfig | None
) -> NotificationConfig:
    """The bucket's configuration with our rule (Id == ``target``) replaced in place, added at
    the end, or dropped (``ours`` None); every other rule kept as it is, in its order."""
    queues: list[QueueConfig] = []
    placed = ours is None
    for queue in current.queue_config_list:
        if queue.config_id != target:
            queues.append(queue)
        elif not placed and ours is not None:
            queues.append(_same_region(ours, queue))
            placed = True
    if not placed and ours is not None:
        queues.append(ours)
    return replace(current, queue_config_list=queues)


def _same_region(ours: QueueConfig, stored: QueueConfig) -> QueueConfig:
    """``ours`` with the region MinIO wrote into the stored ARN, if that is all that differs (a
    server with a site region answers arn:minio:sqs:<region>:<id>:webhook): an unchanged rule
    then compares equal and is not written again."""
    if stored.queue and _without_region(stored.queue) == _without_region(ours.queue or ""):
        return replace(ours, queue=stored.queue)
    return ours


def _without_region(arn: str) -> str:
    parts = arn.split(":")
    if len(parts) == 6:
        parts[3] = ""
    return ":".join(parts)


# --- errors -------------------------------------------------------------------------------------

CREDENTIAL_CODES = frozenset(
    {"SignatureDoesNotMatch", "InvalidAccessKeyId", "InvalidToken", "ExpiredToken"}
)
RECEIVER_UNREACHABLE = re.compile(r"dial tcp|connection refused|no such host|i/o timeout")


class _Gone(SourceConfigError):
    """No such bucket, or no such target: nothing left to remove there."""


class _NotLoaded(SourceError):
    """MinIO refused a rule naming a target it has not loaded (yet: just restarted)."""


@dataclass(frozen=True)
class Where:
    """What an error message names."""

    endpoint: str
    bucket: str
    target: str
    url: str = ""


def error_for(exc: BaseException, where: Where) -> SourceError:
    """The error to raise for a failed SDK call (module docstring's tree)."""
    if isinstance(exc, UnboundLocalError) and exc.__context__ is not None:
        exc = exc.__context__  # minio 7.2.20's config_get hides its own error behind this one
    if isinstance(exc, MinioAdminException):
        return _admin_error(exc, where)
    if isinstance(exc, S3Error):
        return _s3_error(exc, where)
    if isinstance(exc, ServerError):
        return SourceError(f"{where.endpoint} answered HTTP {exc.status_code}: {exc}")
    if isinstance(exc, InvalidResponseError):
        status = int(exc._code)  # the SDK keeps the HTTP status only there
        if status >= 500:
            return SourceError(f"{where.endpoint} answered HTTP {status}")
        return SourceConfigError(
            f"{where.endpoint} does not answer like S3 (HTTP {status}): is it MinIO's API port?"
        )
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError):
        return SourceError(f"cannot reach {where.endpoint}: {exc}")
    if isinstance(exc, ValueError):  # the SDK checks names and endpoints before sending
        return SourceConfigError(f"{where.endpoint}, bucket {where.bucket}: {exc}")
    return SourceError(f"{where.endpoint}: {exc!r}")


def _credentials_refused(code: str, where: Where) -> SourceConfigError:
    return SourceConfigError(
        f"{where.endpoint} refused the credentials ({code}): check AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY in the EventSource's credentialsSecret"
    )


def _admin_error(exc: MinioAdminException, where: Where) -> SourceError:
    status = int(exc._code) if exc._code.isdigit() else 0  # the SDK keeps them only there
    try:
        body = json.loads(exc._body)
        code, message = str(body.get("Code", "")), str(body.get("Message", ""))
    except (ValueError, AttributeError):
        code, message = "", exc._body.strip()
    if code in CREDENTIAL_CODES:
        return _credentials_refused(code, where)
    if status == 403:
        return SourceConfigError(
            f"the credentials may not configure MinIO at {where.endpoint} ({code or status}): "
            "a webhook target needs admin:ConfigUpdate and admin:ServiceRestart"
        )
    if code == "XMinioConfigNotFoundError":
        return _Gone(f"MinIO has no webhook target {where.target}")
    if status == 400 and RECEIVER_UNREACHABLE.search(message):
        return SourceError(
            f"MinIO at {where.endpoint} cannot connect to this dispatcher's S3 receiver at "
            f"{where.url} (LAMBDALET_DISPATCHER_S3_URL): {message}"
        )
    if status == 404:
        return SourceConfigError(
            f"{where.endpoint} has no MinIO admin API ({code or status}): S3 EventSources "
            "need a MinIO server"
        )
    if status >= 500 or status == 0:
        return SourceError(f"MinIO at {where.endpoint} answered {status}: {code} {message}")
    return SourceConfigError(f"MinIO refused webhook target {where.target}: {message or code}")


def _s3_error(exc: S3Error, where: Where) -> SourceError:
    code, message = exc.code or "", exc.message or ""
    if code in CREDENTIAL_CODES:
        return _credentials_refused(code, where)
    if code == "AccessDenied":
        return SourceConfigError(
            f"the credentials may not read or change the notifications of bucket {where.bucket} "
            "(AccessDenied): they need s3:GetBucketNotification and s3:PutBucketNotification"
        )
    if code == "NoSuchBucket":
        return _Gone(
            f"bucket {where.bucket} does not exist on {where.endpoint}: create it or correct "
            "spec.s3.bucket"
        )
    if "destination ARN" in message:
        return _NotLoaded(f"MinIO at {where.endpoint} has not loaded webhook target {where.target}")
    if "overlapping" in message:
        return SourceConfigError(
            f"MinIO refused the rules of bucket {where.bucket} as overlapping: another rule on the "
            f"bucket has the same events, prefix and suffix as this EventSource ({message})"
        )
    if exc.response.status >= 500:
        return SourceError(f"{where.endpoint} answered {exc.response.status}: {code} {message}")
    return SourceConfigError(
        f"MinIO refused the notification rules of bucket {where.bucket}: {message} ({code})"
    )


# --- the I/O shell ------------------------------------------------------------------------------


class _Session:
    """The two SDK clients of one call, on one pool with short timeouts; every SDK call runs
    in a thread, under a deadline, and fails as ``error_for`` says."""

    def __init__(
        self, spec: S3, credentials: Credentials | None, limits: Limits, where: Where
    ) -> None:
        parts = urlsplit(spec.endpoint)
        if parts.path not in ("", "/") or not parts.netloc:
            raise SourceConfigError(
                f"spec.s3.endpoint {spec.endpoint!r} must be scheme://host:port"
            )
        if credentials is None:
            raise SourceConfigError(
                "spec.s3.credentialsSecret is not set: setting up notifications needs MinIO "
                "admin credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)"
            )
        self.where = where
        self._limits = limits
        self._http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=limits.connect, read=limits.read),
            retries=urllib3.Retry(
                total=limits.retries,
                connect=limits.retries,
                read=0,
                status=0,
                redirect=0,
                backoff_factor=0.2,
            ),
            maxsize=2,
        )
        secure = parts.scheme == "https"
        key, secret = credentials.access_key_id, credentials.secret_access_key
        try:
            self.s3 = Minio(
                parts.netloc,
                access_key=key,
                secret_key=secret,
                secure=secure,
                http_client=self._http,
            )
            self.admin = MinioAdmin(
                endpoint=parts.netloc,
                credentials=StaticProvider(key, secret),
                secure=secure,
                http_client=self._http,
            )
        except ValueError as exc:
            raise SourceConfigError(f"spec.s3.endpoint {spec.endpoint!r}: {exc}") from exc

    async def call(self, function: Callable[..., T], *args: object) -> T:
        try:
            async with asyncio.timeout(self._limits.deadline):
                return await asyncio.to_thread(function, *args)
        except TimeoutError as exc:
            raise SourceError(
                f"{self.where.endpoint} did not answer within {self._limits.deadline:g} s"
            ) from exc
        except Exception as exc:
            raise error_for(exc, self.where) from exc

    async def running(self, target: str) -> dict[str, str] | None:
        return running_target(await self.call(self.admin.config_get, SUBSYSTEM), target)

    async def until_running(self, target: str, wanted: Mapping[str, str], deadline: float) -> None:
        """Wait until MinIO, restarting, runs ``wanted``; raises ``SourceError`` at ``deadline``."""
        while True:
            try:
                if target_current(await self.running(target), wanted):
                    return
                problem = "the target is not running"
            except SourceConfigError:
                raise
            except SourceError as exc:
                problem = str(exc)
            if time.monotonic() > deadline:
                raise SourceError(
                    f"MinIO at {self.where.endpoint} did not come back with webhook target "
                    f"{target} within {RESTART_TIMEOUT:g} s: {problem}"
                )
            await asyncio.sleep(POLL_SECONDS)

    async def put_rule(self, bucket: str, target: str, ours: QueueConfig | None) -> bool:
        """Merge ``ours`` into the bucket's configuration as it is now; write it if changed."""
        current = await self.call(self.s3.get_bucket_notification, bucket)
        wanted = merged(current, target, ours)
        if wanted == current:
            return False
        await self.call(self.s3.set_bucket_notification, bucket, wanted)
        return True

    def close(self) -> None:
        self._http.clear()


async def ensure(
    spec: S3,
    *,
    namespace: str,
    name: str,
    credentials: Credentials | None,
    url: str,
    token: str,
    queue_dir: str | None = None,
    allow_restart: bool = True,
    limits: Limits = LIMITS,
) -> Changes:
    """Make MinIO POST the EventSource's bucket events to ``url`` with ``token``.

    Reads the bucket's rules (credentials and bucket checked before anything is written) and
    the running targets; writes the target when it is not running as wanted, restarts MinIO
    when it had to be written (unless ``allow_restart`` is False: ``SourceConfigError``), and
    writes the bucket's rules when ours is missing or different. Nothing is written when all is
    as wanted. Raises ``SourceError`` / ``SourceConfigError`` (module docstring).
    """
    target = target_id(namespace, name)
    wanted = target_config(url, token, queue_dir)
    ours = queue_config(spec, target)
    session = _Session(spec, credentials, limits, Where(spec.endpoint, spec.bucket, target, url))
    try:
        current = await session.call(session.s3.get_bucket_notification, spec.bucket)
        loaded = target_current(await session.running(target), wanted)
        rule_changes = merged(current, target, ours) != current
        if loaded and not rule_changes:
            return Changes()
        # Written too when only the rule changes: after a remove() the target still runs (until
        # MinIO restarts) but is gone from the stored configuration the next start loads.
        await session.call(session.admin.config_set, f"{SUBSYSTEM}:{target}", wanted)
        if not loaded:
            if not allow_restart:
                raise SourceConfigError(
                    f"webhook target {target} is written but MinIO at {spec.endpoint} loads it "
                    "only when it starts: restart MinIO (mc admin service restart ALIAS)"
                )
            log.warning("restarting MinIO at %s to load webhook target %s", spec.endpoint, target)
            await session.call(session.admin.service_restart)
            deadline = time.monotonic() + RESTART_TIMEOUT
            await session.until_running(target, wanted, deadline)
            written = await _put_after_restart(session, spec.bucket, target, ours, deadline)
            return Changes(target_written=True, restarted=True, bucket_written=written)
        written = await session.put_rule(spec.bucket, target, ours)
        return Changes(target_written=True, bucket_written=written)
    finally:
        session.close()


async def _put_after_restart(
    session: _Session, bucket: str, target: str, ours: QueueConfig, deadline: float
) -> bool:
    """``put_rule`` while MinIO, just restarted, may not have loaded its targets yet."""
    while True:
        try:
            return await session.put_rule(bucket, target, ours)
        except _NotLoaded:
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(POLL_SECONDS)


async def remove(
    spec: S3,
    *,
    namespace: str,
    name: str,
    credentials: Credentials | None,
    limits: Limits = LIMITS,
) -> Changes:
    """Take the EventSource's rule out of the bucket (others' kept) and its target out of
    MinIO's stored configuration. A missing bucket or target counts as removed."""
    target = target_id(namespace, name)
    session = _Session(spec, credentials, limits, Where(spec.endpoint, spec.bucket, target))
    try:
        try:
            written = await session.put_rule(spec.bucket, target, None)
        except _Gone:
            written = False
        try:
            await session.call(session.admin.config_reset, f"{SUBSYSTEM}:{target}")
            reset = True
        except _Gone:
            reset = False
        return Changes(target_written=reset, bucket_written=written)
    finally:
        session.close()
