"""Sorting an invocation's answer into its outcome (``lambdalet.outcomes``)."""

from __future__ import annotations

import json

import pytest

from lambdalet.outcomes import ERROR_DOC_LIMIT, Outcome, error_type_of, of_answer, of_refusal


def doc(error_type: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": "..."}).encode()


@pytest.mark.parametrize(
    ("status", "function_error", "body", "outcome"),
    [
        (200, None, b'"ok"', Outcome.SUCCESS),
        (204, None, b"", Outcome.SUCCESS),
        (200, "Unhandled", doc("ValueError"), Outcome.ERROR),
        (200, "Unhandled", doc("Function.ResponseSizeTooLarge"), Outcome.ERROR),
        (200, "Unhandled", b"not json", Outcome.ERROR),
        (200, "Unhandled", b"[1]", Outcome.ERROR),
        (200, "Unhandled", doc("Sandbox.Timedout"), Outcome.TIMEOUT),
        (200, "Unhandled", doc("Runtime.OutOfMemory"), Outcome.OOM),
        (502, "Unhandled", doc("Runtime.OutOfMemory"), Outcome.OOM),  # killed during init
        (200, "Unhandled", doc("Runtime.ExitError"), Outcome.RUNTIME_EXIT),
        (502, "Unhandled", doc("Runtime.ExitError"), Outcome.INIT_ERROR),  # exited during init
        (502, "Unhandled", doc("Runtime.ImportModuleError"), Outcome.INIT_ERROR),
        (502, "Unhandled", doc("Runtime.CodeDownloadError"), Outcome.INIT_ERROR),
        (429, None, doc("TooManyRequestsException"), Outcome.THROTTLED),  # the pod's slots
        (503, None, doc("ServiceException"), Outcome.UNAVAILABLE),  # the pod is stopping
        (413, None, doc("RequestEntityTooLargeException"), Outcome.REJECTED),
        (400, None, doc("InvalidRequestContentException"), Outcome.REJECTED),
    ],
)
def test_of_answer(status: int, function_error: str | None, body: bytes, outcome: Outcome) -> None:
    assert of_answer(status, function_error, body) is outcome


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (429, Outcome.THROTTLED),
        (502, Outcome.UNAVAILABLE),
        (503, Outcome.UNAVAILABLE),
        (504, Outcome.UNAVAILABLE),
        (400, Outcome.REJECTED),
        (401, Outcome.REJECTED),
        (404, Outcome.REJECTED),
        (413, Outcome.REJECTED),
    ],
)
def test_of_refusal(status: int, outcome: Outcome) -> None:
    assert of_refusal(status) is outcome


def test_a_huge_error_document_is_not_parsed() -> None:
    huge = json.dumps({"errorType": "Sandbox.Timedout", "pad": "x" * ERROR_DOC_LIMIT}).encode()
    assert error_type_of(huge) is None
    assert of_answer(200, "Unhandled", huge) is Outcome.ERROR
