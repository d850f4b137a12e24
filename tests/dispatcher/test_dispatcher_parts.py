"""The dispatcher process's pure parts: settings, the schedule claim rule, webhook tokens, the
Lease it keeps, and the assignment built from an EventSource."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from lambdalet.api.function import Function
from lambdalet.dispatcher.replica.membership import lease_manifest, lease_name
from lambdalet.dispatcher.replica.runners import webhook_token
from lambdalet.dispatcher.replica.status import Firing, may_claim
from lambdalet.dispatcher.replica.supervisor import _auth_secret
from lambdalet.dispatcher.settings import DispatcherSettings
from lambdalet.environment import SettingsError
from tests.api.cases import function

T = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
TTL = timedelta(minutes=2)


@pytest.mark.parametrize(
    ("last", "firing", "now", "expected"),
    [
        (None, None, T, True),  # nothing recorded, nobody firing
        (T, None, T, False),  # recorded already
        (T + timedelta(minutes=1), None, T, False),  # a later tick is recorded
        (T - timedelta(minutes=1), None, T, True),  # an earlier tick is recorded
        (None, Firing(T, "me", T), T, True),  # my own claim: the next attempt
        (None, Firing(T, "other", T), T + timedelta(seconds=30), False),  # fresh, another's
        (None, Firing(T, "other", T), T + TTL, True),  # another's claim ran out
        (None, Firing(T - timedelta(minutes=1), "other", T), T, True),  # an older tick's claim
        (None, Firing(T + timedelta(minutes=1), "other", T), T, False),  # a later tick, fresh
    ],
)
def test_may_claim(
    last: datetime | None, firing: Firing | None, now: datetime, expected: bool
) -> None:
    assert may_claim(T, replica="me", last=last, firing=firing, now=now, ttl=TTL) is expected


def test_settings_defaults_and_environment() -> None:
    settings = DispatcherSettings.from_env(
        {
            "LAMBDALET_DISPATCHER_NAME": "dispatcher-0",
            "LAMBDALET_DISPATCHER_NAMESPACE": "lambdalet",
            "LAMBDALET_ACTIVATOR_URL": "http://activator/",
            "LAMBDALET_NAMESPACES": "team-* !team-test",
            "LAMBDALET_DISPATCHER_PORT_NUMBER": "9000",
            "LAMBDALET_DISPATCHER_S3_URL": "http://dispatcher.lambdalet.svc/",
            "LAMBDALET_DISPATCHER_WEBHOOK_KEY": "k" * 32,
            "LAMBDALET_DISPATCHER_S3_ALLOW_RESTART": "true",
        }
    )
    assert settings.name == "dispatcher-0"
    assert settings.namespace == "lambdalet"
    assert settings.activator_url == "http://activator"
    assert settings.namespaces == ("team-*", "!team-test")
    assert settings.port == 9000
    assert settings.s3_url == "http://dispatcher.lambdalet.svc"
    assert settings.webhook_key == b"k" * 32
    assert settings.s3_allow_restart is True
    assert "kkkk" not in repr(settings)  # the key never reaches a log line
    defaults = DispatcherSettings.from_env({})
    assert (defaults.port, defaults.s3_url, defaults.s3_allow_restart) == (8080, None, False)
    assert defaults.name  # the host name


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("LAMBDALET_DISPATCHER_PORT_NUMBER", "http", "must be a number"),
        ("LAMBDALET_DISPATCHER_PORT_NUMBER", "70000", "between 0 and 65535"),
        ("LAMBDALET_DISPATCHER_REPORT_SECONDS", "0", "between 0.1 and 300"),
        ("LAMBDALET_DISPATCHER_WEBHOOK_KEY", "short", "at least 16 characters"),
        ("LAMBDALET_DISPATCHER_S3_ALLOW_RESTART", "maybe", "true or false"),
    ],
)
def test_settings_errors_say_what_to_fix(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        DispatcherSettings.from_env({name: value})


def test_webhook_tokens_differ_per_event_source_and_incarnation() -> None:
    key = b"k" * 32
    token = webhook_token(key, "team", "uploads", "uid-1")
    assert token == webhook_token(key, "team", "uploads", "uid-1")  # every replica agrees
    others = {
        webhook_token(key, "team", "uploads", "uid-2"),  # re-created
        webhook_token(key, "team", "other", "uid-1"),
        webhook_token(key, "other", "uploads", "uid-1"),
        webhook_token(b"x" * 32, "team", "uploads", "uid-1"),
    }
    assert token not in others
    assert len(others) == 4
    assert len(token) >= 40
    assert token.isascii()


def test_lease_manifest() -> None:
    lease = lease_manifest("dispatcher-0", "lambdalet", T + timedelta(microseconds=5))
    assert lease_name("dispatcher-0") == "lambdalet-dispatcher-dispatcher-0"
    assert lease["metadata"] == {
        "name": "lambdalet-dispatcher-dispatcher-0",
        "namespace": "lambdalet",
        "labels": {
            "app.kubernetes.io/part-of": "lambdalet",
            "app.kubernetes.io/component": "dispatcher",
        },
    }
    assert lease["spec"] == {
        "holderIdentity": "dispatcher-0",
        "leaseDurationSeconds": 15,
        "renewTime": "2026-11-22T12:00:00.000005Z",
    }


@pytest.mark.parametrize(
    ("http", "expected"),
    [
        (None, None),
        ({"auth": {"type": "none"}}, None),
        ({"auth": {"type": "bearer", "secretRef": {"name": "tok"}}}, ("tok", "token")),
        ({"auth": {"type": "bearer", "secretRef": {"name": "tok", "key": "k"}}}, ("tok", "k")),
    ],
)
def test_the_token_a_function_asks_for(
    http: dict[str, object] | None, expected: tuple[str, str] | None
) -> None:
    manifest = function(http=http) if http is not None else function()
    assert _auth_secret(Function.model_validate(manifest)) == expected
