"""Imports the handler named by ``_HANDLER`` once, at init, with Lambda's error types.

``"app.handler"`` is function ``handler`` of module ``app`` under ``LAMBDA_TASK_ROOT``;
``"pkg/sub/app.handler"`` and ``"pkg.sub.app.handler"`` both name ``pkg.sub.app``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, cast

from lambdalet_runtime.context import LambdaContext
from lambdalet_runtime.errors import FaultError

Handler = Callable[[Any, LambdaContext], Any]


def load_handler(name: str) -> Handler:
    module_name, _, function_name = name.rpartition(".")
    if not module_name or not function_name:
        raise FaultError(
            "Runtime.MalformedHandlerName",
            f"Bad handler '{name}': expected 'module.function'",
        )
    module_name = module_name.replace("/", ".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise FaultError(
            "Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}"
        ) from exc
    except SyntaxError as exc:
        raise FaultError(
            "Runtime.UserCodeSyntaxError", f"Syntax error in module '{module_name}': {exc}"
        ) from exc
    handler = getattr(module, function_name, None)
    if handler is None:
        raise FaultError(
            "Runtime.HandlerNotFound",
            f"Handler '{function_name}' missing on module '{module_name}'",
        )
    if not callable(handler):
        raise FaultError(
            "Runtime.HandlerNotFound",
            f"Handler '{function_name}' on module '{module_name}' is not callable",
        )
    return cast(Handler, handler)
