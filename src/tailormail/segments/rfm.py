"""RFM scores as computed traits: ``traits.rfm.{r, f, m, score, code}`` of every buyer.

Recency, frequency and monetary value of purchases, each as a quintile 1-5
among buyers (5 is best: most recent, most frequent, most spent); ``score`` is
their sum (3-15) and ``code`` the three digits ("545").  Rules use them like
any trait: ``{trait: rfm.score, gte: 12}``.
"""

from __future__ import annotations

from sqlalchemy import Connection

from tailormail.config import Settings
from tailormail.store import segments as q


def refresh_rfm(conn: Connection, settings: Settings, now_ms: int) -> int:
    """Recompute every buyer's RFM traits from purchases up to ``now_ms``; return how many."""
    return q.write_rfm_traits(conn, settings.events.purchase, now_ms)
