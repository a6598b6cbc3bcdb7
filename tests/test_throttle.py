"""The throttle of the ingest path's file checks, with an injected clock."""

from __future__ import annotations

import pytest

from tailormail.throttle import Throttle

CASES = [
    ("the first ask is due", [0.0], [True]),
    ("within the interval: not due", [0.0, 0.5, 0.999], [True, False, False]),
    ("an interval later: due, and the next one counts from there", [0.0, 1.0, 1.5, 2.0], [True, True, False, True]),
    ("a long pause: due once", [0.0, 10.0, 10.2, 11.0], [True, True, False, True]),
    ("a clock that goes back is not due until it passes the mark", [5.0, 4.0, 5.9, 6.0], [True, False, False, True]),
]


@pytest.mark.parametrize(("times", "expected"), [(t, e) for _, t, e in CASES], ids=[c[0] for c in CASES])
def test_due_at_most_once_per_interval(times: list[float], expected: list[bool]) -> None:
    now = iter(times)
    throttle = Throttle(1.0, clock=lambda: next(now))
    assert [throttle.due() for _ in times] == expected
