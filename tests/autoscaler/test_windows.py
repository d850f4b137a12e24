"""Window arithmetic: averages with gaps and short histories, recent peaks, float-safe ceil."""

from __future__ import annotations

import pytest

from lambdalet.autoscaler.windows import (
    Peak,
    Sample,
    ceil_pods,
    push_peak,
    window_average,
    window_peak,
)

NOW = 100.0


def every_second(level: float, first: int, last: int) -> tuple[Sample, ...]:
    return tuple((float(t), level) for t in range(first, last + 1))


@pytest.mark.parametrize(
    ("samples", "window", "average"),
    [
        pytest.param((), 6.0, 0.0, id="no-samples"),
        pytest.param(every_second(4.0, 95, 100), 6.0, 4.0, id="full-window"),
        pytest.param(every_second(4.0, 41, 100), 60.0, 4.0, id="full-stable-window"),
        pytest.param(
            ((95.0, 4.0), (96.0, 4.0), (98.0, 4.0), (100.0, 10.0)),
            6.0,
            22.0 / 6,
            id="docstring-example-gaps-count-as-zero",
        ),
        pytest.param(((100.0, 10.0),), 6.0, 10.0, id="one-sample-window-shrinks-to-it"),
        pytest.param(
            every_second(6.0, 91, 100), 60.0, 6.0, id="short-history-not-diluted-by-unseen"
        ),
        pytest.param(every_second(6.0, 91, 95), 60.0, 3.0, id="trailing-silence-counts-as-zero"),
        pytest.param(every_second(9.0, 40, 94), 6.0, 0.0, id="all-older-than-window"),
        pytest.param(((94.0, 9.0), (95.0, 3.0)), 6.0, 0.5, id="window-is-open-at-its-start"),
        pytest.param(((100.0, 3.0), (100.5, 9.0)), 6.0, 3.0, id="future-samples-ignored"),
        pytest.param(
            ((99.1, 2.0), (99.6, 4.0), (100.0, 6.0)), 6.0, 4.0, id="more-samples-than-seconds"
        ),
    ],
)
def test_window_average(samples: tuple[Sample, ...], window: float, average: float) -> None:
    assert window_average(samples, NOW, window) == pytest.approx(average)


@pytest.mark.parametrize(
    ("value", "pods"),
    [
        pytest.param(7 / 0.7, 10, id="float-noise-above-an-integer"),
        pytest.param(4.9 / 0.7, 7, id="float-noise-above-7"),
        pytest.param(10.0000011, 11, id="real-excess"),
        pytest.param(0.0, 0, id="zero"),
        pytest.param(1e-9, 0, id="noise-above-zero"),
        pytest.param(0.01, 1, id="any-load-wants-a-pod"),
    ],
)
def test_ceil_pods(value: float, pods: int) -> None:
    assert ceil_pods(value) == pods


@pytest.mark.parametrize(
    ("peaks", "at", "desired", "after"),
    [
        pytest.param((), 10.0, 4, ((10.0, 4),), id="first"),
        pytest.param(
            ((10.0, 8), (40.0, 5)),
            65.0,
            3,
            ((10.0, 8), (40.0, 5), (65.0, 3)),
            id="lower-appended",
        ),
        pytest.param(
            ((10.0, 8), (40.0, 5), (65.0, 3)), 71.0, 6, ((71.0, 6),), id="expired-and-dominated"
        ),
        pytest.param(((10.0, 8),), 70.0, 1, ((70.0, 1),), id="exactly-a-window-old-expires"),
        pytest.param(((60.0, 5),), 61.0, 5, ((61.0, 5),), id="equal-replaces"),
    ],
)
def test_push_peak(
    peaks: tuple[Peak, ...], at: float, desired: int, after: tuple[Peak, ...]
) -> None:
    assert push_peak(peaks, at, desired, 60.0) == after


@pytest.mark.parametrize(
    ("at", "peak"),
    [
        pytest.param(65.0, 8, id="all-inside"),
        pytest.param(70.0, 5, id="first-expired"),
        pytest.param(124.0, 3, id="only-last-inside"),
        pytest.param(200.0, 0, id="none-inside"),
    ],
)
def test_window_peak(at: float, peak: int) -> None:
    assert window_peak(((10.0, 8), (40.0, 5), (65.0, 3)), at, 60.0) == peak
