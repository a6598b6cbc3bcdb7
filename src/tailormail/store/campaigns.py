"""Named queries on campaigns (one-off broadcasts) and their members."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, func, select, update

from tailormail.store.dialect import in_chunks, insert_ignoring_conflicts
from tailormail.store.schema_journeys import campaign_members, campaigns


def insert_campaign(conn: Connection, row: dict[str, Any]) -> bool:
    """Store a new campaign; False when the name is taken."""
    # RETURNING says whether the row went in on both databases (rowcount does not, on psycopg).
    stmt = insert_ignoring_conflicts(conn, campaigns).values(**row).returning(campaigns.c.name)
    return conn.execute(stmt).first() is not None


def get_campaign(conn: Connection, name: str) -> dict[str, Any] | None:
    """One campaign by name."""
    row = conn.execute(select(campaigns).where(campaigns.c.name == name)).mappings().first()
    return dict(row) if row else None


def list_campaigns(conn: Connection) -> list[dict[str, Any]]:
    """Every campaign, newest first."""
    rows = conn.execute(select(campaigns).order_by(campaigns.c.created_at.desc(), campaigns.c.name)).mappings()
    return [dict(r) for r in rows]


def due_campaigns(conn: Connection, now_ms: int) -> list[dict[str, Any]]:
    """Scheduled campaigns whose moment has come."""
    stmt = select(campaigns).where(campaigns.c.status == "scheduled", campaigns.c.send_at <= now_ms)
    return [dict(r) for r in conn.execute(stmt.order_by(campaigns.c.send_at)).mappings()]


def start_sending(conn: Connection, name: str, now_ms: int) -> bool:
    """Move a campaign from scheduled to sending; False if another worker already did."""
    # The guarded UPDATE is the lock: a second worker waits on the row, then matches nothing.
    result = conn.execute(
        update(campaigns)
        .where(campaigns.c.name == name, campaigns.c.status == "scheduled")
        .values(status="sending", resolved_at=now_ms)
    )
    return bool(result.rowcount)


def set_status(conn: Connection, name: str, status: str, now_ms: int) -> None:
    """Set a campaign's status (done and cancelled record the moment)."""
    conn.execute(update(campaigns).where(campaigns.c.name == name).values(status=status, finished_at=now_ms))


def add_members(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Record the people a campaign resolved to (a person already recorded is left alone)."""
    for chunk in in_chunks(rows, 2000):
        conn.execute(insert_ignoring_conflicts(conn, campaign_members), list(chunk))


def claim_pending(conn: Connection, now_ms: int, limit: int) -> list[dict[str, Any]]:
    """Pending members due now, locked for this transaction (skipped by other workers on PostgreSQL)."""
    stmt = (
        select(campaign_members)
        .where(campaign_members.c.status == "pending", campaign_members.c.due_at <= now_ms)
        .order_by(campaign_members.c.due_at, campaign_members.c.campaign, campaign_members.c.profile_id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    return [dict(r) for r in conn.execute(stmt).mappings()]


def decide(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Record what was decided for members: keys campaign, profile_id and the new values."""
    # One executemany per shape of row (decided, or only moved by quiet hours), not one UPDATE per person.
    shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        values = tuple(sorted(k for k in row if k not in ("campaign", "profile_id")))
        shapes.setdefault(values, []).append({f"b_{k}": v for k, v in row.items()})
    c = campaign_members.c
    for values, params in shapes.items():
        stmt = (
            update(campaign_members)
            .where(c.campaign == bindparam("b_campaign"), c.profile_id == bindparam("b_profile_id"))
            .values({name: bindparam(f"b_{name}") for name in values})
        )
        conn.execute(stmt, params)


def unfinished(conn: Connection, names: Sequence[str]) -> set[str]:
    """Of these campaigns, those with members still pending."""
    if not names:
        return set()
    stmt = (
        select(campaign_members.c.campaign)
        .where(campaign_members.c.campaign.in_(list(names)), campaign_members.c.status == "pending")
        .distinct()
    )
    return set(conn.execute(stmt).scalars())


def sending_campaigns(conn: Connection) -> list[str]:
    """Names of campaigns being sent."""
    return list(conn.execute(select(campaigns.c.name).where(campaigns.c.status == "sending")).scalars())


def member_counts(conn: Connection, name: str) -> dict[tuple[str, str, str | None], int]:
    """(arm, status, reason) -> people, for one campaign."""
    c = campaign_members.c
    stmt = select(c.arm, c.status, c.reason, func.count()).where(c.campaign == name).group_by(c.arm, c.status, c.reason)
    return {(arm, status, reason): int(n) for arm, status, reason, n in conn.execute(stmt)}


def arms_of(conn: Connection, name: str) -> list[dict[str, Any]]:
    """Every member's profile id, arm and status (for experiment analysis)."""
    c = campaign_members.c
    stmt = (
        select(c.profile_id, c.arm, c.status, c.reason, c.outbox_key).where(c.campaign == name).order_by(c.profile_id)
    )
    return [dict(r) for r in conn.execute(stmt).mappings()]
