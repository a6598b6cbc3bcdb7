"""Offline evaluation on a time split: hit rate at k against the popularity baseline.

Train on every event up to ``as_of``; for each person who purchased in the
following ``horizon_days`` and had touched some product before, recommend k
products as of ``as_of`` and count a hit when one of them was among what they
then bought.  The baseline recommends the k most popular products (with the
same "not what you just bought" rule), so the comparison isolates what the
co-occurrence adds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from tailormail.config import EventNames
from tailormail.content.recommend.model import (
    DAY_MS,
    RecommendSettings,
    histories,
    popular_for,
    rank,
    touches_from,
    train,
)
from tailormail.errors import ValidationError
from tailormail.store import products as product_q


@dataclass(frozen=True)
class Evaluation:
    """The result of one time-split evaluation."""

    as_of_ms: int
    horizon_days: int
    k: int
    buyers: int
    """People who purchased in the test window."""
    people: int
    """Of those, the people with history before ``as_of`` (the ones scored)."""
    hits: int
    baseline_hits: int

    @property
    def hit_rate(self) -> float:
        """Share of scored people with at least one recommended product bought."""
        return self.hits / self.people if self.people else 0.0

    @property
    def baseline_hit_rate(self) -> float:
        """The same share for the popularity baseline."""
        return self.baseline_hits / self.people if self.people else 0.0

    @property
    def lift(self) -> float | None:
        """Hit rate over the baseline's (None when the baseline hit nothing)."""
        return self.hit_rate / self.baseline_hit_rate if self.baseline_hit_rate else None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        return {
            "as_of_ms": self.as_of_ms,
            "horizon_days": self.horizon_days,
            "k": self.k,
            "buyers": self.buyers,
            "people": self.people,
            "hit_rate": round(self.hit_rate, 4),
            "baseline_hit_rate": round(self.baseline_hit_rate, 4),
            "lift": None if self.lift is None else round(self.lift, 3),
        }


def evaluate(
    conn: Connection,
    *,
    as_of_ms: int | None = None,
    horizon_days: int = 30,
    k: int = 4,
    names: EventNames | None = None,
    settings: RecommendSettings | None = None,
) -> Evaluation:
    """Hit rate at ``k`` of the recommender and of the popularity baseline."""
    names = names or EventNames()
    settings = settings or RecommendSettings()
    as_of = _split_point(conn, names, as_of_ms, horizon_days)
    bought = _bought_after(conn, names, settings, as_of, horizon_days)
    model = train(conn, as_of + 1, names, settings)
    people = histories(conn, sorted(bought), as_of, names, settings)
    scored = [pid for pid in sorted(bought) if people[pid].weights]
    picks = rank(model, [people[pid] for pid in scored], k)
    baseline = popular_for(model, [people[pid] for pid in scored], k)
    return Evaluation(
        as_of_ms=as_of,
        horizon_days=horizon_days,
        k=k,
        buyers=len(bought),
        people=len(scored),
        hits=sum(_hit(bought[pid], row) for pid, row in zip(scored, picks, strict=True)),
        baseline_hits=sum(_hit(bought[pid], row) for pid, row in zip(scored, baseline, strict=True)),
    )


def _hit(bought: set[str], picks: list[tuple[str, str]]) -> bool:
    return any(product_id in bought for product_id, _ in picks)


def _split_point(conn: Connection, names: EventNames, as_of_ms: int | None, horizon_days: int) -> int:
    earliest, latest, _ = product_q.event_bounds(conn, [names.product_view, names.add_to_cart, names.purchase])
    if earliest is None or latest is None:
        raise ValidationError(
            "no product events to evaluate on",
            field="events",
            hint=f"ingest {names.product_view!r} and {names.purchase!r} events with a product_id first",
        )
    as_of = as_of_ms if as_of_ms is not None else latest - horizon_days * DAY_MS
    if not earliest < as_of <= latest:
        raise ValidationError(
            "--as-of must fall inside the event history",
            field="as_of",
            hint="choose a moment after the first product event and before the last one",
        )
    return as_of


def _bought_after(
    conn: Connection, names: EventNames, settings: RecommendSettings, as_of: int, horizon_days: int
) -> dict[int, set[str]]:
    rows = product_q.product_events(
        conn, [names.purchase], since_ms=as_of + 1, until_ms=as_of + 1 + horizon_days * DAY_MS
    )
    bought: dict[int, set[str]] = {}
    for touch in touches_from(rows, {names.purchase: settings.purchase_weight}, names.purchase):
        bought.setdefault(touch.profile_id, set()).add(touch.product_id)
    return bought
