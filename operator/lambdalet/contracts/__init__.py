"""Contracts shared by the components, kept below all of them.

What two components agree on lives here, not inside either of them, so that no component imports
another: the key of a watched object (``keys``), an invocation's answer and the seam every caller
invokes through (``invocation``), the observed state of a Function's Deployment
(``deployments``), why a Function cannot become Ready (``problems``), the Lease protocol of
replicas that announce themselves (``leases``), Warning Events (``events``) and the tokens read
from Secrets (``secrets``). Modules here import only ``lambdalet.api``, ``lambdalet.k8s`` and
the small shared modules beside this package (``names``, ...); the import rules in
``pyproject.toml`` (``[tool.importlinter]``) keep it that way.
"""
