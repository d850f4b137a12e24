"""Policy: built from a Function's scaling and concurrency, and refuses values it cannot use."""

from __future__ import annotations

from typing import Any

import pytest

from lambdalet.api.function import Concurrency, Scaling
from lambdalet.autoscaler import Policy, PolicyError


@pytest.mark.parametrize(
    ("scaling", "concurrency", "expected"),
    [
        pytest.param(
            {},
            {},
            {"min_scale": 0, "max_scale": 10, "target_concurrency": 1.0, "scale_to_zero_after": 60},
            id="lambda-defaults",
        ),
        pytest.param({}, {"perInstance": 4}, {"target_concurrency": 4.0}, id="per-instance"),
        pytest.param(
            {"targetConcurrency": 2.5},
            {"perInstance": 4},
            {"target_concurrency": 2.5},
            id="explicit-target-wins",
        ),
        pytest.param(
            {"minScale": 2, "maxScale": 40, "scaleToZeroAfterSeconds": 300},
            {},
            {"min_scale": 2, "max_scale": 40, "scale_to_zero_after": 300.0},
            id="bounds-and-grace",
        ),
    ],
)
def test_from_api(
    scaling: dict[str, Any], concurrency: dict[str, Any], expected: dict[str, Any]
) -> None:
    policy = Policy.from_api(
        Scaling.model_validate(scaling), Concurrency.model_validate(concurrency)
    )

    assert {name: getattr(policy, name) for name in expected} == expected
    assert (policy.stable_window, policy.panic_window, policy.target_utilisation) == (60, 6, 0.7)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        pytest.param(
            {"min_scale": 3, "max_scale": 2}, "min_scale <= max_scale", id="min-above-max"
        ),
        pytest.param({"max_scale": 0}, "max_scale >= 1", id="max-zero"),
        pytest.param({"target_concurrency": 0.0}, "target_concurrency > 0", id="target-zero"),
        pytest.param({"target_utilisation": 1.5}, "target_utilisation <= 1", id="util-above-1"),
        pytest.param({"panic_window": 90.0}, "panic_window <= stable_window", id="panic-long"),
        pytest.param({"panic_window": 0.5}, "1 <= panic_window", id="panic-short"),
        pytest.param({"panic_threshold": 1.0}, "panic_threshold > 1", id="threshold-1"),
        pytest.param({"max_scale_up_rate": 1.0}, "max_scale_up_rate > 1", id="no-up-progress"),
        pytest.param({"max_scale_down_rate": 0.5}, "max_scale_down_rate > 1", id="down-rate"),
        pytest.param({"queue_target": 0.0}, "queue_target > 0", id="queue-target"),
        pytest.param({"scale_to_zero_after": -1.0}, "scale_to_zero_after >= 0", id="grace"),
        pytest.param({"stable_window": float("nan")}, "finite", id="nan"),
        pytest.param({"queue_target": float("inf")}, "finite", id="inf"),
    ],
)
def test_invalid_policy(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        Policy(**fields)


@pytest.mark.parametrize(
    ("scale_to_zero_after", "grace"),
    [
        pytest.param(60.0, 60.0, id="as-configured"),
        pytest.param(6.0, 6.0, id="equal-to-panic-window"),
        pytest.param(0.0, 6.0, id="zero-means-one-panic-window"),
    ],
)
def test_scale_to_zero_grace(scale_to_zero_after: float, grace: float) -> None:
    assert Policy(scale_to_zero_after=scale_to_zero_after).scale_to_zero_grace == grace
