"""Named queries on the outbox, the attempts log and the suppression list."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import Connection, and_, bindparam, case, delete, func, select, update

from tailormail.store.dialect import driver_cursor, in_chunks, insert_ignoring_conflicts, insert_many, upsert
from tailormail.store.schema_deliver import delivery_attempts, outbox, outbox_bodies, suppressions

CLAIM_COLUMNS = [
    *(c for c in outbox.c if c.name not in ("created_at", "updated_at", "sent_at", "last_error")),
    outbox_bodies.c.mime,
]


def insert_outbox(
    conn: Connection, rows: list[dict[str, Any]], finish: Callable[[dict[str, Any], int], bytes] | None = None
) -> dict[str, int]:
    """Insert outbox rows (with their ``mime``), skipping known idempotency keys; return key -> id for all.

    ``finish(row, id)``, when given, makes the stored bytes (the id is known only after the insert).
    """
    if not rows:
        return {}
    conn.execute(insert_ignoring_conflicts(conn, outbox), [{k: v for k, v in r.items() if k != "mime"} for r in rows])
    ids = outbox_ids_by_key(conn, [row["idempotency_key"] for row in rows])
    bodies = [
        {"outbox_id": (i := ids[row["idempotency_key"]]), "mime": finish(row, i) if finish else row["mime"]}
        for row in rows
    ]
    conn.execute(insert_ignoring_conflicts(conn, outbox_bodies), bodies)
    return ids


def outbox_ids_by_key(conn: Connection, keys: Iterable[str]) -> dict[str, int]:
    """Map idempotency keys to outbox ids (unknown keys are left out)."""
    wanted = list(dict.fromkeys(keys))
    found: dict[str, int] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        rows = conn.execute(select(outbox.c.idempotency_key, outbox.c.id).where(outbox.c.idempotency_key.in_(chunk)))
        found.update({key: row_id for key, row_id in rows})
    return found


def claim_due(conn: Connection, worker: str, now_ms: int, lease_ms: int, limit: int) -> list[dict[str, Any]]:
    """Claim up to ``limit`` due rows for ``worker`` until ``now_ms + lease_ms``.

    Due: queued rows whose time has come, and rows another worker claimed but
    whose lease ran out (it died mid-send; that try counts as an attempt).  On
    PostgreSQL, ``SKIP LOCKED`` lets several workers claim disjoint batches at
    once; on SQLite the caller's write transaction (BEGIN IMMEDIATE) makes the
    claim the single writer.  Each returned row carries ``interrupted``.
    """
    # Two index range scans (status, next_attempt_at) instead of one OR that would sort every due row:
    # expired leases first (few: at most the batches in flight), then the queue in due order.
    rows = _select_due(conn, "expired", now_ms, limit)
    if len(rows) < limit:
        rows += _select_due(conn, "queued", now_ms, limit - len(rows))
    if rows and conn.dialect.name == "sqlite":
        conn.exec_driver_sql(_SQLITE_CLAIM, (worker, now_ms + lease_ms, now_ms, json.dumps([r["id"] for r in rows])))
    elif rows:
        conn.execute(
            update(outbox)
            .where(outbox.c.id.in_([r["id"] for r in rows]))
            .values(
                status="sending",
                attempts=case((outbox.c.status == "sending", outbox.c.attempts + 1), else_=outbox.c.attempts),
                claimed_by=worker,
                lease_until=now_ms + lease_ms,
                updated_at=now_ms,
            )
        )
    for row in rows:
        row["interrupted"] = row["status"] == "sending"
        row["attempts"] += int(row["interrupted"])
        row["status"] = "sending"
    return rows


def _select_due(conn: Connection, which: str, now_ms: int, limit: int) -> list[dict[str, Any]]:
    """Due rows with their bytes, oldest due first: leases run out (``expired``) or ``queued`` ones."""
    if conn.dialect.name == "sqlite":  # every batch of the send loop: driver SQL, no statement to build
        rows = driver_cursor(conn).execute(_SQLITE_DUE[which], (now_ms, limit)).fetchall()
        return [dict(zip(CLAIM_NAMES, row, strict=True)) for row in rows]
    condition = (
        and_(outbox.c.status == "sending", outbox.c.lease_until < now_ms)
        if which == "expired"
        else and_(outbox.c.status == "queued", outbox.c.next_attempt_at <= now_ms)
    )
    stmt = (
        select(*CLAIM_COLUMNS)
        .join(outbox_bodies, outbox_bodies.c.outbox_id == outbox.c.id)
        .where(condition)
        .order_by(outbox.c.next_attempt_at, outbox.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=outbox)
    )
    result = conn.execute(stmt)
    keys = tuple(result.keys())
    return [dict(zip(keys, row, strict=True)) for row in result.all()]


# The send loop's SQLite statements, as driver SQL: per batch, SQLAlchemy's statement building and
# expanding IN lists cost more Python time (holding the GIL the SMTP connections wait on) than SQLite's work.
CLAIM_NAMES = tuple(c.name for c in CLAIM_COLUMNS)
_SQLITE_CLAIM_SELECT = (
    "SELECT "
    + ", ".join(f"b.{c.name}" if c.table is outbox_bodies else f"o.{c.name}" for c in CLAIM_COLUMNS)
    + " FROM outbox AS o JOIN outbox_bodies AS b ON b.outbox_id = o.id WHERE "
)
_SQLITE_DUE = {
    "expired": _SQLITE_CLAIM_SELECT
    + "o.status = 'sending' AND o.lease_until < ? ORDER BY o.next_attempt_at, o.id LIMIT ?",
    "queued": _SQLITE_CLAIM_SELECT
    + "o.status = 'queued' AND o.next_attempt_at <= ? ORDER BY o.next_attempt_at, o.id LIMIT ?",
}
_SQLITE_CLAIM = (
    "UPDATE outbox SET status = 'sending',"
    " attempts = CASE WHEN status = 'sending' THEN attempts + 1 ELSE attempts END,"
    " claimed_by = ?, lease_until = ?, updated_at = ? WHERE id IN (SELECT value FROM json_each(?))"
)
_SQLITE_SUPPRESSED = "SELECT address, reason FROM suppressions WHERE address IN (SELECT value FROM json_each(?))"


def _sqlite_finish_grouped(next_attempt: bool) -> str:
    due = " next_attempt_at = ?," if next_attempt else ""
    return (
        f"UPDATE outbox SET status = ?, attempts = ?,{due} last_error = ?, sent_at = ?, updated_at = ?,"
        " claimed_by = NULL, lease_until = NULL"
        " WHERE id IN (SELECT value FROM json_each(?)) AND claimed_by = ? AND status = 'sending'"
    )


FINAL_STATUSES = ("sent", "failed", "bounced", "suppressed")
OUTCOME_FIELDS = ("status", "attempts", "next_attempt_at", "last_error", "sent_at", "updated_at")
ATTEMPT_COLUMNS = ("outbox_id", "attempt", "result", "smtp_code", "smtp_response", "worker", "at")
GROUPED_AT_LEAST = 8
"""Outcomes shared by this many rows are written with one ``UPDATE ... WHERE id IN``, not row by row."""


def finish_claimed(conn: Connection, worker: str, outcomes: list[dict[str, Any]]) -> int:
    """Record what happened to claimed rows, only where ``worker`` still holds them.

    Each outcome has id, status, attempts, next_attempt_at, last_error, sent_at
    and updated_at; ``next_attempt_at`` is written only for rows going back to
    the queue (a final row keeps its own).  A row whose lease was taken over by
    another worker is left to that worker.  Returns the number of rows updated.

    Rows that share an outcome (a batch that was sent: same status, attempt,
    time) are updated with one statement per group, so a batch costs a few
    statements instead of a parameter set per row; the odd ones go row by row.
    """
    groups: dict[tuple[Any, ...], list[int]] = {}
    for o in outcomes:
        due = o["next_attempt_at"] if o["status"] not in FINAL_STATUSES else None
        key = (o["status"], o["attempts"], due, o["last_error"], o["sent_at"], o["updated_at"])
        groups.setdefault(key, []).append(o["id"])
    done, single = 0, []
    held = (outbox.c.claimed_by == worker, outbox.c.status == "sending")
    for key, ids in groups.items():
        if len(ids) < GROUPED_AT_LEAST:
            single += [dict(zip(("b_id", *(f"b_{f}" for f in OUTCOME_FIELDS)), (i, *key), strict=True)) for i in ids]
            continue
        values = dict(zip(OUTCOME_FIELDS, key, strict=True))
        if values["next_attempt_at"] is None:
            del values["next_attempt_at"]
        if conn.dialect.name == "sqlite":
            sql = _sqlite_finish_grouped("next_attempt_at" in values)
            cursor = conn.exec_driver_sql(sql, (*values.values(), json.dumps(ids), worker))
            done += cursor.rowcount or 0
            continue
        for chunk in in_chunks(ids, 500):
            stmt = update(outbox).where(outbox.c.id.in_(chunk), *held)
            done += conn.execute(stmt.values(**values, claimed_by=None, lease_until=None)).rowcount or 0
    if single:
        stmt = (
            update(outbox)
            .where(outbox.c.id == bindparam("b_id"), *held)
            .values(
                status=bindparam("b_status"),
                attempts=bindparam("b_attempts"),
                next_attempt_at=func.coalesce(bindparam("b_next_attempt_at"), outbox.c.next_attempt_at),
                last_error=bindparam("b_last_error"),
                sent_at=bindparam("b_sent_at"),
                updated_at=bindparam("b_updated_at"),
                claimed_by=None,
                lease_until=None,
            )
        )
        done += conn.execute(stmt, single).rowcount or 0
    return int(done)


def log_attempts(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Append rows to the attempts log (through the driver's executemany on SQLite)."""
    if rows:
        insert_many(
            conn, delivery_attempts.insert(), ATTEMPT_COLUMNS, [tuple(r[c] for c in ATTEMPT_COLUMNS) for r in rows]
        )


def suppressed_among(conn: Connection, addresses: Iterable[str]) -> dict[str, str]:
    """Which of these (lower-cased) addresses are suppressed, with the reason."""
    wanted = list(set(addresses))
    found: dict[str, str] = {}
    if conn.dialect.name == "sqlite":  # checked for every batch the send loop claims
        return dict(conn.exec_driver_sql(_SQLITE_SUPPRESSED, (json.dumps(wanted),)).fetchall())
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        rows = conn.execute(
            select(suppressions.c.address, suppressions.c.reason).where(suppressions.c.address.in_(chunk))
        )
        found.update({address: reason for address, reason in rows})
    return found


def add_suppressions(conn: Connection, rows: list[dict[str, Any]], *, replace: bool = False) -> None:
    """Suppress addresses; an existing entry keeps its reason unless ``replace``."""
    if not rows:
        return
    if replace:
        conn.execute(upsert(conn, suppressions, ["address"], ["reason", "detail", "created_at"]), rows)
    else:
        conn.execute(insert_ignoring_conflicts(conn, suppressions), rows)


def remove_suppression(conn: Connection, address: str) -> bool:
    """Lift a suppression; False when the address was not suppressed."""
    return bool(conn.execute(delete(suppressions).where(suppressions.c.address == address)).rowcount)


def list_suppressions(conn: Connection, limit: int = 1000) -> list[dict[str, Any]]:
    """Suppressed addresses, newest first."""
    stmt = select(suppressions).order_by(suppressions.c.created_at.desc(), suppressions.c.address).limit(limit)
    return [dict(r) for r in conn.execute(stmt).mappings()]


def list_outbox(conn: Connection, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Outbox rows without their bytes, newest first, optionally of one status."""
    stmt = select(outbox).order_by(outbox.c.id.desc()).limit(limit)
    if status:
        stmt = stmt.where(outbox.c.status == status)
    return [dict(r) for r in conn.execute(stmt).mappings()]


def get_outbox(conn: Connection, outbox_id: int) -> dict[str, Any] | None:
    """One outbox row (with its bytes), or None."""
    stmt = select(outbox, outbox_bodies.c.mime).join(outbox_bodies, outbox_bodies.c.outbox_id == outbox.c.id)
    row = conn.execute(stmt.where(outbox.c.id == outbox_id)).mappings().first()
    return dict(row) if row else None


def attempts_of(conn: Connection, outbox_id: int) -> list[dict[str, Any]]:
    """Every logged attempt of one outbox row, oldest first."""
    stmt = select(delivery_attempts).where(delivery_attempts.c.outbox_id == outbox_id).order_by(delivery_attempts.c.id)
    return [dict(r) for r in conn.execute(stmt).mappings()]


def requeue(conn: Connection, outbox_id: int, now_ms: int) -> bool:
    """Put a row back in the queue, due now; False when it is unknown or already sent or sending."""
    done = conn.execute(
        update(outbox)
        .where(outbox.c.id == outbox_id, outbox.c.status.not_in(("sent", "sending")))
        .values(status="queued", next_attempt_at=now_ms, updated_at=now_ms, claimed_by=None, lease_until=None)
    )
    return bool(done.rowcount)


def status_counts(conn: Connection) -> dict[str, int]:
    """How many outbox rows are in each status."""
    rows = conn.execute(select(outbox.c.status, func.count()).group_by(outbox.c.status))
    return {status: int(n) for status, n in rows}


COUNTED_STATUSES = ("queued", "sending", "sent")
"""What the frequency cap counts: mail on its way or delivered (not suppressed, bounced or failed)."""


def marketing_counts(conn: Connection, profile_ids: Iterable[int], since_ms: int) -> dict[int, int]:
    """Per person, the marketing emails queued or sent since then, by any journey or campaign."""
    ids = list(dict.fromkeys(profile_ids))
    found: dict[int, int] = {}
    for start in range(0, len(ids), 500):
        stmt = (
            select(outbox.c.profile_id, func.count())
            .where(
                outbox.c.profile_id.in_(ids[start : start + 500]),
                outbox.c.kind == "marketing",
                outbox.c.status.in_(COUNTED_STATUSES),
                outbox.c.created_at >= since_ms,
            )
            .group_by(outbox.c.profile_id)
        )
        found.update({int(pid): int(n) for pid, n in conn.execute(stmt)})
    return found


def campaign_delivery(conn: Connection, campaign: str) -> dict[str, int]:
    """Outbox status -> emails, for one campaign."""
    stmt = select(outbox.c.status, func.count()).where(outbox.c.campaign == campaign).group_by(outbox.c.status)
    return {status: int(n) for status, n in conn.execute(stmt)}


def outbox_by_message_ids(conn: Connection, message_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Outbox rows (without their bytes) by Message-ID; unknown ids are left out."""
    wanted = sorted(set(message_ids))
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(wanted), 500):
        stmt = select(outbox).where(outbox.c.message_id.in_(wanted[start : start + 500]))
        found.update({row["message_id"]: dict(row) for row in conn.execute(stmt).mappings()})
    return found
