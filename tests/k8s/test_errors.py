"""The Kubernetes error tree: each API status maps to one class, once, in ``from_status``."""

from __future__ import annotations

import pytest

from lambdalet.k8s.errors import (
    AlreadyExists,
    Conflict,
    KubeError,
    NotFound,
    PermanentKubeError,
    TransientKubeError,
    from_status,
)


def status_body(reason: str, message: str = "the server says no") -> dict[str, str]:
    return {"kind": "Status", "reason": reason, "message": message}


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (404, status_body("NotFound"), NotFound),
        (409, status_body("Conflict"), Conflict),  # a write with a stale resourceVersion
        (409, status_body("AlreadyExists"), AlreadyExists),  # a create of a taken name
        (409, {}, Conflict),
        (429, status_body("TooManyRequests"), TransientKubeError),
        (500, status_body("InternalError"), TransientKubeError),
        (503, "not a Status", TransientKubeError),
        (400, status_body("BadRequest"), PermanentKubeError),
        (403, status_body("Forbidden"), PermanentKubeError),
        (422, status_body("Invalid"), PermanentKubeError),
    ],
)
def test_a_status_maps_to_exactly_its_class(
    status: int, body: object, expected: type[KubeError]
) -> None:
    error = from_status(status, body, "create Lease")
    assert type(error) is expected
    assert error.status == status


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (Conflict("x"), True),
        (AlreadyExists("x"), True),
        (NotFound("x"), False),
    ],
)
def test_conflicts_stay_transient_and_not_found_permanent(
    error: KubeError, transient: bool
) -> None:
    # Callers that do not care what a 409 means retry it, as they did before it had a class.
    assert isinstance(error, TransientKubeError) is transient
    assert isinstance(error, PermanentKubeError) is not transient


def test_already_exists_is_a_conflict() -> None:
    assert issubclass(AlreadyExists, Conflict)
    assert not issubclass(Conflict, AlreadyExists)


def test_the_message_and_reason_come_from_the_status() -> None:
    error = from_status(409, status_body("AlreadyExists", 'leases "x" already exists'), "create")
    assert (error.message, error.reason) == ('create: leases "x" already exists', "AlreadyExists")
    assert str(from_status(409, {}, "take Lease")) == "take Lease: HTTP 409"
