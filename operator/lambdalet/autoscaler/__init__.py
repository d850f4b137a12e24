"""The autoscaler: a pure decision (``decide``) over concurrency, queue depth and pokes.

The loop that gathers observations and patches Deployments' ``scale`` subresource is the thin
shell around it; see ``decide``'s module docstring for the rules.
"""

from lambdalet.autoscaler.decide import (
    Decision,
    Observations,
    ObservationsError,
    Reason,
    State,
    decide,
)
from lambdalet.autoscaler.policy import Policy, PolicyError
from lambdalet.autoscaler.windows import Sample

__all__ = [
    "Decision",
    "Observations",
    "ObservationsError",
    "Policy",
    "PolicyError",
    "Reason",
    "Sample",
    "State",
    "decide",
]
