"""Leader election's pure rule: when a replica may take the Lease."""

from __future__ import annotations

from typing import Any

import pytest

from lambdalet.controller.leader import Observed, free


def lease(holder: str, version: str = "7") -> dict[str, Any]:
    return {"metadata": {"resourceVersion": version}, "spec": {"holderIdentity": holder}}


@pytest.mark.parametrize(
    ("current", "observed", "now", "expected"),
    [
        (None, None, 0.0, True),  # no Lease yet: create it
        (lease(""), None, 0.0, True),  # released by a clean shutdown
        (lease("me"), None, 0.0, True),  # mine already (a restart with the same name)
        (lease("other"), None, 100.0, False),  # first look: its holder counts as alive
        (lease("other"), Observed("7", "other", 90.0), 100.0, False),  # unchanged for 10 s
        (lease("other"), Observed("7", "other", 85.0), 100.0, True),  # unchanged for 15 s
        (lease("other", "8"), Observed("7", "other", 0.0), 100.0, False),  # it renewed
    ],
)
def test_free(
    current: dict[str, Any] | None, observed: Observed | None, now: float, expected: bool
) -> None:
    assert free(current, "me", observed, now, 15.0) is expected
