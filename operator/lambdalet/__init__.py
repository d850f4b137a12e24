"""Lambdalet: AWS-Lambda-style functions on any Kubernetes cluster.

The package is split by component (docs/architecture.md is the map): ``api`` holds the pydantic
models that define the ``Function`` and ``EventSource`` resources (and generate the CRDs),
``controller`` the kopf operator with its pure resource builders, ``autoscaler`` the replica
decisions, ``activator`` the HTTP entry of every Function, ``dispatcher`` the event sources, and
``k8s`` the only code that talks to the Kubernetes API.
"""

__version__ = "0.1.0"
