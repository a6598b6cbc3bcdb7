"""Named queries on sync run logs, source state and the outbound outbox."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, func, select, update

from tailormail.store.dialect import insert_ignoring_conflicts
from tailormail.store.schema_sync import sync_outbox, sync_runs, sync_state


def start_run(conn: Connection, name: str, kind: str, trigger: str, now_ms: int) -> int:
    """Insert a running run log; return its id."""
    stmt = sync_runs.insert().returning(sync_runs.c.id)
    values = {"name": name, "kind": kind, "trigger": trigger, "status": "running", "started_at": now_ms}
    values.update(read=0, written=0, skipped=0, failed=0, retries=0, errors=[])
    return int(conn.execute(stmt, values).scalar_one())


def finish_run(conn: Connection, run_id: int, values: dict[str, Any]) -> None:
    """Record a run's outcome (status, counts, errors, watermark, finished_at)."""
    conn.execute(update(sync_runs).where(sync_runs.c.id == run_id).values(**values))


def get_run(conn: Connection, run_id: int) -> dict[str, Any]:
    """One run log row."""
    return dict(conn.execute(select(sync_runs).where(sync_runs.c.id == run_id)).mappings().one())


def prune_runs(conn: Connection, name: str, keep: int) -> int:
    """Delete all but the latest ``keep`` runs of a name; return how many went."""
    cutoff = conn.execute(
        select(sync_runs.c.id).where(sync_runs.c.name == name).order_by(sync_runs.c.id.desc()).offset(keep).limit(1)
    ).scalar()
    if cutoff is None:
        return 0
    return int(conn.execute(delete(sync_runs).where(sync_runs.c.name == name, sync_runs.c.id <= cutoff)).rowcount)


def runs_of(conn: Connection, name: str, limit: int = 50) -> list[dict[str, Any]]:
    """The latest runs of one source or destination, newest first."""
    stmt = select(sync_runs).where(sync_runs.c.name == name).order_by(sync_runs.c.id.desc()).limit(limit)
    return [dict(r) for r in conn.execute(stmt).mappings()]


def last_runs(conn: Connection) -> dict[str, dict[str, Any]]:
    """The latest run of every name."""
    latest = select(func.max(sync_runs.c.id)).group_by(sync_runs.c.name).scalar_subquery()
    rows = conn.execute(select(sync_runs).where(sync_runs.c.id.in_(latest))).mappings()
    return {r["name"]: dict(r) for r in rows}


def get_state(conn: Connection, name: str) -> dict[str, Any] | None:
    """The stored state (watermark, alert) of a source or destination."""
    row = conn.execute(select(sync_state).where(sync_state.c.name == name)).mappings().first()
    return dict(row) if row else None


def all_states(conn: Connection) -> dict[str, dict[str, Any]]:
    """The state of every known source and destination."""
    return {r["name"]: dict(r) for r in conn.execute(select(sync_state)).mappings()}


def register(conn: Connection, name: str, kind: str, now_ms: int) -> None:
    """Remember a source the first time it is seen (its lateness baseline)."""
    row = {"name": name, "kind": kind, "registered_at": now_ms}
    conn.execute(insert_ignoring_conflicts(conn, sync_state), [row])


def set_state(conn: Connection, name: str, **values: Any) -> None:
    """Update a source's watermark or alert fields."""
    conn.execute(update(sync_state).where(sync_state.c.name == name).values(**values))


def enqueue(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Add deliveries to the outbox; a repeated idempotency key is ignored."""
    if rows:
        conn.execute(insert_ignoring_conflicts(conn, sync_outbox), rows)


def due_deliveries(conn: Connection, destination: str, now_ms: int, limit: int) -> list[dict[str, Any]]:
    """Pending deliveries of a destination whose next attempt is due, oldest first."""
    stmt = (
        select(sync_outbox)
        .where(
            sync_outbox.c.status == "pending",
            sync_outbox.c.destination == destination,
            sync_outbox.c.next_attempt_at <= now_ms,
        )
        .order_by(sync_outbox.c.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)  # many workers share the outbox
    return [dict(r) for r in conn.execute(stmt).mappings()]


def update_delivery(conn: Connection, delivery_id: int, **values: Any) -> None:
    """Record the outcome of one delivery attempt."""
    conn.execute(update(sync_outbox).where(sync_outbox.c.id == delivery_id).values(**values))


def deliveries(conn: Connection, destination: str, status: str, limit: int = 100) -> list[dict[str, Any]]:
    """Deliveries of a destination in one status (e.g. the dead-letter list), newest first."""
    stmt = (
        select(sync_outbox)
        .where(sync_outbox.c.destination == destination, sync_outbox.c.status == status)
        .order_by(sync_outbox.c.id.desc())
        .limit(limit)
    )
    return [dict(r) for r in conn.execute(stmt).mappings()]


def requeue_dead(conn: Connection, destination: str, now_ms: int) -> int:
    """Move a destination's dead deliveries back to pending; return how many."""
    done = conn.execute(
        update(sync_outbox)
        .where(sync_outbox.c.destination == destination, sync_outbox.c.status == "dead")
        .values(status="pending", attempts=0, next_attempt_at=now_ms)
    )
    return int(done.rowcount)


def outbox_counts(conn: Connection) -> dict[tuple[str, str], int]:
    """(destination, status) -> number of deliveries."""
    stmt = select(sync_outbox.c.destination, sync_outbox.c.status, func.count()).group_by(
        sync_outbox.c.destination, sync_outbox.c.status
    )
    return {(d, s): int(n) for d, s, n in conn.execute(stmt)}
