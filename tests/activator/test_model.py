"""``FunctionConfig.from_api``: what the activator takes from a Function's spec."""

from __future__ import annotations

from typing import Any

from lambdalet.activator.model import FunctionConfig
from lambdalet.api.function import Function


def function(**spec: Any) -> Function:
    return Function.model_validate(
        {
            "apiVersion": "lambdalet.dev/v1alpha1",
            "kind": "Function",
            "metadata": {"name": "hello", "namespace": "team"},
            "spec": {
                "runtime": "python3.11",
                "handler": "app.handler",
                "code": {"inline": {"app.py": "def handler(e, c): return e\n"}},
                **spec,
            },
        }
    )


def test_defaults_are_cluster_local_without_auth() -> None:
    config = FunctionConfig.from_api(function())
    assert config.key == ("team", "hello")
    assert config.public is False
    assert config.auth_secret is None


def test_public_exposure_and_bearer_auth() -> None:
    config = FunctionConfig.from_api(
        function(
            http={
                "exposure": "public",
                "auth": {"type": "bearer", "secretRef": {"name": "hello-token"}},
            }
        )
    )
    assert config.public is True
    assert config.auth_secret == ("hello-token", "token")
