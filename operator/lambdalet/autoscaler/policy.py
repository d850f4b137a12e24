"""How one Function scales: the autoscaler's knobs, built once from the Function's spec.

``Policy.from_api`` reads ``spec.scaling`` and ``spec.concurrency``; the other fields are
platform-wide tuning that the operator's settings may override with ``dataclasses.replace``. The
decision function (``lambdalet.autoscaler.decide``) is the only reader.

Times are seconds on the autoscaler's monotonic clock; counts are pods (replicas).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lambdalet.api.function import Concurrency, Scaling


class PolicyError(ValueError):
    """A Policy field holds a value the decision function cannot work with."""


@dataclass(frozen=True)
class Policy:
    min_scale: int = 0
    max_scale: int = 10
    # In-flight invocations one pod should carry. Lambda semantics: concurrency.perInstance 1
    # means one event per execution environment, so the target is 1.0.
    target_concurrency: float = 1.0
    # Fraction of the target the autoscaler actually aims for, leaving headroom for the next
    # burst while new pods start (Knative's target-utilization, default 70 %). Worked example:
    # target 1.0 x 0.7 = 0.7 per pod, so 7 in-flight invocations want ceil(7 / 0.7) = 10 pods.
    target_utilisation: float = 0.7
    # Idle seconds (no in-flight invocation, no queued message, no poke) before the last pod
    # goes; never shorter than the panic window in effect (see ``scale_to_zero_grace``).
    scale_to_zero_after: float = 60.0
    stable_window: float = 60.0
    panic_window: float = 6.0
    # Panic when the panic window wants this many times the ready pods (2.0 = 200 %).
    panic_threshold: float = 2.0
    # Per decision: up to ceil(current x 1000) pods (from 0: as if current were 1), down to
    # floor(current / 2) pods. Both must be > 1 so that every step can make progress.
    max_scale_up_rate: float = 1000.0
    max_scale_down_rate: float = 2.0
    # Messages waiting per pod for queue-depth scaling (KEDA's queueLength target).
    queue_target: float = 5.0

    def __post_init__(self) -> None:
        floats = {
            "target_concurrency": self.target_concurrency,
            "target_utilisation": self.target_utilisation,
            "scale_to_zero_after": self.scale_to_zero_after,
            "stable_window": self.stable_window,
            "panic_window": self.panic_window,
            "panic_threshold": self.panic_threshold,
            "max_scale_up_rate": self.max_scale_up_rate,
            "max_scale_down_rate": self.max_scale_down_rate,
            "queue_target": self.queue_target,
        }
        for name, value in floats.items():
            if not math.isfinite(value):  # nan compares false with everything below
                raise PolicyError(f"{name} must be a finite number, not {value}")
        checks = (
            (0 <= self.min_scale <= self.max_scale, "0 <= min_scale <= max_scale"),
            (self.max_scale >= 1, "max_scale >= 1"),
            (self.target_concurrency > 0, "target_concurrency > 0"),
            (0 < self.target_utilisation <= 1, "0 < target_utilisation <= 1"),
            (self.scale_to_zero_after >= 0, "scale_to_zero_after >= 0"),
            (1 <= self.panic_window <= self.stable_window, "1 <= panic_window <= stable_window"),
            (self.panic_threshold > 1, "panic_threshold > 1"),
            (self.max_scale_up_rate > 1, "max_scale_up_rate > 1"),
            (self.max_scale_down_rate > 1, "max_scale_down_rate > 1"),
            (self.queue_target > 0, "queue_target > 0"),
        )
        for ok, rule in checks:
            if not ok:
                raise PolicyError(f"autoscaling policy needs {rule}: {self}")

    @classmethod
    def from_api(cls, scaling: Scaling, concurrency: Concurrency) -> Policy:
        """The policy of a Function with these ``spec.scaling`` and ``spec.concurrency``."""
        target = scaling.target_concurrency
        return cls(
            min_scale=scaling.min_scale,
            max_scale=scaling.max_scale,
            target_concurrency=float(concurrency.per_instance) if target is None else target,
            scale_to_zero_after=float(scaling.scale_to_zero_after_seconds),
        )

    @property
    def per_pod(self) -> float:
        """In-flight invocations one pod is meant to carry: the target scaled by utilisation."""
        return self.target_concurrency * self.target_utilisation

    @property
    def scale_to_zero_grace(self) -> float:
        """Idle seconds before scale to zero: ``scale_to_zero_after``, at least a panic window.

        A function is idle only once a whole panic window holds no in-flight invocation, so that
        ``scaleToZeroAfterSeconds: 0`` means "as soon as idle", not "between two reports".
        """
        return max(self.scale_to_zero_after, self.panic_window)
