"""The objects the control-plane tests create and read: a Function manifest, and a condition of
an object's status."""

from __future__ import annotations

from typing import Any

OK_HANDLER = "def handler(event, context):\n    return 'ok'\n"


def function(name: str, **spec: Any) -> dict[str, Any]:
    """A Function with an inline Python 3.12 handler that answers 'ok'; ``spec`` adds fields or
    overrides these."""
    return {
        "apiVersion": "lambdalet.dev/v1alpha1",
        "kind": "Function",
        "metadata": {"name": name},
        "spec": {
            "runtime": "python3.12",
            "handler": "app.handler",
            "code": {"inline": {"app.py": OK_HANDLER}},
            **spec,
        },
    }


def condition(body: dict[str, Any], kind: str) -> dict[str, Any] | None:
    """The condition of type ``kind`` in a Function's or EventSource's status, if it has one."""
    for c in body.get("status", {}).get("conditions", []):
        if c["type"] == kind:
            return c  # type: ignore[no-any-return]
    return None
