"""The runtimes of the conformance suite, and what differs between them.

The tests of ``test_context``, ``test_invoke``, ``test_lifecycle`` and ``test_runtime_api`` are
written once and run for each runtime of ``RUNTIMES``: each runtime supplies its handlers in its
own language (``handlers/<language>/``, see the README there) and, here, the few things a test
must know of it: how its error documents and log lines look, and the init failures of its
language. The agent runs the runtime from this checkout (``runtime-images/python`` with this
interpreter, ``runtime-images/nodejs`` with the ``node`` on PATH). What only one language has
is tested apart (``test_python``, ``test_nodejs_invoke``, ``test_nodejs_lifecycle``), and so is
what the agent does whatever the runtime (``test_agent``, with the Python runtime).

A row of a test's table holds the same values for every runtime, or a ``ByLanguage`` where the
languages differ, as they do on Lambda; a runtime whose ``ByLanguage`` value is ``ABSENT`` has no
such case (a field only Node.js's ``context`` has, a number only Python keeps exact).
"""

from __future__ import annotations

import re
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
from _pytest.mark import ParameterSet

from tests.kit.servers.agent import PYTHON_BOOTSTRAP, REPO, StartAgent

HANDLERS = Path(__file__).resolve().parent / "handlers"
NODE_BOOTSTRAP = REPO / "runtime-images" / "nodejs" / "bootstrap.js"
ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"

Language = Literal["python", "nodejs"]


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()


@dataclass(frozen=True)
class ByLanguage:
    """A value that differs between the runtimes' languages (``ABSENT``: no such case)."""

    python: Any = ABSENT
    nodejs: Any = ABSENT


def node_binary() -> str:
    """The ``node`` on PATH; fails the test when there is none."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("the Node.js runtime tests need `node` on PATH", pytrace=False)
    return node


@dataclass(frozen=True)
class Runtime:
    name: str  # LAMBDALET_RUNTIME, and the id of its test cases
    language: Language
    extension: str  # of its handler files
    error_keys: frozenset[str]  # of the error document it posts for an exception
    trace_key: str  # the error document's list of frames
    # Whether that list begins with "<type>: <message>" (a JavaScript stack does).
    trace_names_the_error: bool
    # A regex of the log line that shows an error (request id, type, message; the id is "" in
    # an init error).
    error_logged: Callable[[str, str, str], str]
    # Regexes of the lines the ``warm`` handler logs in its n-th invocation, and during init.
    warm_log_lines: Callable[[str, int], list[str]]
    init_log_line: str
    # (files, handler, error type, message): the init failures of the language.
    init_errors: tuple[ParameterSet, ...]

    def __str__(self) -> str:
        return self.name

    def command(self) -> list[str]:
        """The runtime process, as the agent starts it (its bootstrap)."""
        if self.language == "python":
            return [sys.executable, str(PYTHON_BOOTSTRAP)]
        return [node_binary(), str(NODE_BOOTSTRAP)]

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """Agent settings that run this runtime, plus ``extra``."""
        return {
            "LAMBDALET_RUNTIME": self.name,
            "LAMBDALET_BOOTSTRAP": " ".join(self.command()),
            **(extra or {}),
        }

    def files(self, handler: str) -> dict[str, str]:
        """The task root of one of the suite's handlers: ``app.<ext>``, named ``app.handler``."""
        source = (HANDLERS / self.language / f"{handler}.{self.extension}").read_text()
        return {f"app.{self.extension}": source}

    def value(self, value: Any) -> Any:
        """``value`` as this runtime has it (in a dict too)."""
        if isinstance(value, ByLanguage):
            return getattr(value, self.language)
        if isinstance(value, dict):
            return {key: self.value(item) for key, item in value.items()}
        return value


def per_runtime(rows: Iterable[ParameterSet], runtimes: Iterable[Runtime] = ()) -> list[Any]:
    """Parametrize cases ``(runtime, *row)`` for each runtime and row, ids ``<runtime>-<row>``.

    ``ByLanguage`` values become the runtime's own; a row with an ``ABSENT`` one is left out for
    that runtime.
    """
    cases = []
    rows = list(rows)
    for runtime in list(runtimes) or RUNTIMES:
        for row in rows:
            values = [runtime.value(value) for value in row.values]
            if any(value is ABSENT for value in values):
                continue
            ident = row.id if row.id is not None else "-".join(map(str, values))
            cases.append(pytest.param(runtime, *values, id=f"{runtime}-{ident}", marks=row.marks))
    return cases


def init_error_cases() -> list[Any]:
    """(runtime, files, handler, error type, message) for each runtime's init failures."""
    return [
        pytest.param(runtime, *row.values, id=f"{runtime}-{row.id}")
        for runtime in RUNTIMES
        for row in runtime.init_errors
    ]


def crash_and_recover(
    start_agent: StartAgent, runtime: Runtime, event: dict[str, object]
) -> tuple[httpx.Response, str]:
    """Invoke the ``lifecycle`` handler with ``event`` (request id ``crash``), which ends the
    runtime process, between two invocations that do not; check that the crash was answered at
    once as a function error and that a fresh runtime took the next. Returns the crash's answer
    and the agent's log."""
    # The handler's timeout is 120 s: an answer in less than 30 s came at the crash, however
    # slow a loaded machine is, not at the timeout or when the handler would have returned.
    agent = start_agent(
        runtime.files("lifecycle"), env=runtime.env({"LAMBDALET_TIMEOUT_SECONDS": "120"})
    )
    before = agent.invoke({}).json()

    began = time.monotonic()
    reply = agent.invoke(event, headers={"Lambdalet-Request-Id": "crash"})
    took = time.monotonic() - began
    after = agent.invoke({})

    assert took < 30
    assert reply.headers["X-Amz-Function-Error"] == "Unhandled"
    assert after.status_code == 200
    assert after.json()["instance"] != before["instance"]
    assert after.json()["pid"] != before["pid"]
    return reply, agent.log()


def _python_error_logged(request_id: str, error_type: str, message: str) -> str:
    return rf"^\[ERROR\] {re.escape(error_type)}: .*{re.escape(message)}"


def _python_warm_lines(request_id: str, n: int) -> list[str]:
    return [rf"handling {request_id}", rf"\[INFO\]\t{ISO}\t{request_id}\tlogged {n}"]


PYTHON = Runtime(
    name="python3.12",
    language="python",
    extension="py",
    error_keys=frozenset({"errorMessage", "errorType", "requestId", "stackTrace"}),
    trace_key="stackTrace",
    trace_names_the_error=False,
    error_logged=_python_error_logged,
    warm_log_lines=_python_warm_lines,
    init_log_line="loaded",
    init_errors=(
        pytest.param(
            {},
            "missing.handler",
            "Runtime.ImportModuleError",
            "Unable to import module 'missing': No module named 'missing'",
            id="missing-module",
        ),
        pytest.param(
            {"app.py": "import not_installed_anywhere\n"},
            "app.handler",
            "Runtime.ImportModuleError",
            "Unable to import module 'app': No module named 'not_installed_anywhere'",
            id="missing-dependency",
        ),
        pytest.param(
            {"app.py": "def other(event, context):\n    pass\n"},
            "app.handler",
            "Runtime.HandlerNotFound",
            "Handler 'handler' missing on module 'app'",
            id="missing-function",
        ),
        pytest.param(
            {"app.py": "def handler(event, context)\n"},
            "app.handler",
            "Runtime.UserCodeSyntaxError",
            "Syntax error in module 'app'",
            id="syntax-error",
        ),
        pytest.param(
            {"app.py": "raise RuntimeError('no database')\n"},
            "app.handler",
            "RuntimeError",
            "no database",
            id="module-raises",
        ),
        pytest.param(
            {"app.py": ""},
            "app",
            "Runtime.MalformedHandlerName",
            "Bad handler 'app'",
            id="no-function-name",
        ),
    ),
)


def _node_error_logged(request_id: str, error_type: str, message: str) -> str:
    # The error document as JSON: an invocation's, or (no request id) an uncaught exception or
    # unhandled rejection during init.
    error = re.escape(f'"errorType":"{error_type}"')
    if request_id:
        return rf"^{ISO}\t{re.escape(request_id)}\tERROR\tInvoke Error \t.*{error}"
    return rf"\tundefined\tERROR\t(Uncaught Exception|Unhandled Promise Rejection) \t\{{{error}"


def _node_warm_lines(request_id: str, n: int) -> list[str]:
    prefix = rf"{ISO}\t{request_id}\t"
    return [
        rf"{prefix}INFO\thandling {request_id}",
        rf"{prefix}INFO\t\{{ calls: {n} \}}",
        rf"{prefix}WARN\tcareful",
        rf"{prefix}ERROR\tmulti",
        r"line",  # a multi-line message keeps its newline
        rf"{prefix}DEBUG\tdetails",
    ]


NODEJS = Runtime(
    name="nodejs20",
    language="nodejs",
    extension="js",
    error_keys=frozenset({"errorType", "errorMessage", "trace"}),
    trace_key="trace",
    trace_names_the_error=True,
    error_logged=_node_error_logged,
    warm_log_lines=_node_warm_lines,
    init_log_line=rf"{ISO}\tundefined\tINFO\tloaded",
    init_errors=(
        pytest.param(
            {},
            "missing.handler",
            "Runtime.ImportModuleError",
            "Error: Cannot find module 'missing'",
            id="missing-module",
        ),
        pytest.param(
            {"app.js": "require('not-installed-anywhere');\n"},
            "app.handler",
            "Runtime.ImportModuleError",
            "Error: Cannot find module 'not-installed-anywhere'",
            id="missing-dependency",
        ),
        pytest.param(
            {"app.mjs": "import 'not-installed-anywhere';\n"},
            "app.handler",
            "Runtime.ImportModuleError",
            "Error: Cannot find package 'not-installed-anywhere'",
            id="esm-missing-dependency",
        ),
        pytest.param(
            {"app.js": "exports.other = async () => 1;\n"},
            "app.handler",
            "Runtime.HandlerNotFound",
            "app.handler is undefined or not exported",
            id="missing-export",
        ),
        pytest.param(
            {"app.js": "exports.handler = 42;\n"},
            "app.handler",
            "Runtime.HandlerNotFound",
            "app.handler is not a function",
            id="export-not-a-function",
        ),
        pytest.param(
            {"app.js": "exports.handler = async (event => 1;\n"},
            "app.handler",
            "Runtime.UserCodeSyntaxError",
            "SyntaxError: ",
            id="syntax-error",
        ),
        pytest.param(
            {"app.mjs": "export const handler = async ( => 1;\n"},
            "app.handler",
            "Runtime.UserCodeSyntaxError",
            "SyntaxError: ",
            id="esm-syntax-error",
        ),
        pytest.param(
            {"app.js": "throw new Error('no database');\n"},
            "app.handler",
            "Error",
            "no database",
            id="module-throws",
        ),
        pytest.param(
            {"app.mjs": "await Promise.reject(new RangeError('no config'));\n"},
            "app.handler",
            "RangeError",
            "no config",
            id="top-level-await-rejects",
        ),
        pytest.param(
            {
                "app.js": "Promise.reject(new Error('forgotten'));\n"
                "exports.handler = async () => 1;\n"
            },
            "app.handler",
            "Runtime.UnhandledPromiseRejection",
            "Error: forgotten",
            id="unhandled-rejection-at-init",
        ),
        pytest.param(
            {"app.js": ""},
            "app",
            "Runtime.MalformedHandlerName",
            "Bad handler 'app'",
            id="no-export-name",
        ),
        pytest.param(
            {"app.js": ""},
            "../app.handler",
            "Runtime.MalformedHandlerName",
            "Bad handler '../app.handler'",
            id="outside-the-task-root",
        ),
    ),
)

RUNTIMES = (PYTHON, NODEJS)
