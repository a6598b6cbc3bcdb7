"""Cohorts: people grouped by when they started, and how many come back in each later period."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection

from tailormail.store import analytics as q

PERIODS = {"week": timedelta(days=7), "month": timedelta(days=30)}
"""Cohort widths; a month is 30 days so every period is the same length."""
ORIGIN = datetime(2000, 1, 3, tzinfo=UTC)
"""A Monday: weeks start on Mondays."""


@dataclass(frozen=True)
class CohortTable:
    """Rows are cohorts, columns periods since joining; cells the share active."""

    period: str
    labels: list[str]
    sizes: list[int]
    shares: list[list[float | None]]
    """shares[i][k]: of cohort i, the share active k periods after joining (None: not reached yet)."""


def cohorts(
    conn: Connection,
    *,
    now_ms: int,
    period: str = "week",
    start: str = "first_seen",
    activity: str | None = None,
    purchase_event: str = "purchase",
    profile_ids: Sequence[int] | None = None,
    max_periods: int = 12,
) -> CohortTable:
    """The cohort matrix: ``start`` is first_seen or first_purchase; ``activity`` None means any event."""
    width = int(PERIODS[period].total_seconds() * 1000)
    origin = int(ORIGIN.timestamp() * 1000)
    cohort_event = purchase_event if start == "first_purchase" else None
    current = (now_ms - origin) // width
    counts, sizes_by = q.cohort_matrix(
        conn,
        cohort_event=cohort_event,
        activity_event=activity,
        origin_ms=origin,
        period_ms=width,
        first_period=current - max_periods + 1,
        periods=max_periods,
        profile_ids=profile_ids,
    )
    cohort_ids = sorted(c for c in sizes_by if c > current - max_periods)
    cells = {(c, a): n for c, a, n in counts}
    shares = [
        [cells.get((c, k), 0) / sizes_by[c] if c + k <= current else None for k in range(max_periods)]
        for c in cohort_ids
    ]
    labels = [(ORIGIN + PERIODS[period] * c).date().isoformat() for c in cohort_ids]
    return CohortTable(period, labels, [sizes_by[c] for c in cohort_ids], shares)
