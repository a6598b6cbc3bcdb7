"""Named queries for content: template versions, render failures, order history, recommendation models."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, select

from tailormail.store.dialect import insert_ignoring_conflicts, upsert
from tailormail.store.schema import events
from tailormail.store.schema_content import recommend_models, render_failures, template_versions


def record_template_version(conn: Connection, version: dict[str, Any]) -> None:
    """Store a compiled template version once per (template, content hash)."""
    conn.execute(insert_ignoring_conflicts(conn, template_versions), [version])


def template_versions_of(conn: Connection, template: str) -> list[dict[str, Any]]:
    """Every stored version of a template, newest first."""
    rows = conn.execute(
        select(template_versions)
        .where(template_versions.c.template == template)
        .order_by(template_versions.c.compiled_at.desc(), template_versions.c.id.desc())
    )
    return [dict(r) for r in rows.mappings()]


def save_recommend_model(conn: Connection, key: str, trained_as_of: int, payload: bytes) -> None:
    """Keep a trained recommendation model (one per key: a newer one replaces the older)."""

    def newer(excluded: Any) -> Any:  # a slower trainer finishing late must not put an older model back
        return recommend_models.c.trained_as_of < excluded.trained_as_of

    stmt = upsert(conn, recommend_models, ["key"], ["trained_as_of", "payload"], only_if=newer)
    conn.execute(stmt, [{"key": key, "trained_as_of": trained_as_of, "payload": payload}])


def recommend_model(conn: Connection, key: str, not_after_ms: int) -> tuple[int, bytes] | None:
    """(trained as of, payload) of the kept model of ``key``, if it learnt only from before ``not_after_ms``."""
    row = conn.execute(
        select(recommend_models.c.trained_as_of, recommend_models.c.payload).where(
            recommend_models.c.key == key, recommend_models.c.trained_as_of <= not_after_ms
        )
    ).first()
    return None if row is None else (int(row[0]), bytes(row[1]))


def record_render_failures(conn: Connection, failures: Sequence[dict[str, Any]]) -> None:
    """Store why each of these recipients got no mail."""
    if failures:
        conn.execute(render_failures.insert(), list(failures))


def render_failures_of(conn: Connection, template: str, limit: int = 100) -> list[dict[str, Any]]:
    """The latest render failures of a template."""
    rows = conn.execute(
        select(render_failures)
        .where(render_failures.c.template == template)
        .order_by(render_failures.c.failed_at.desc(), render_failures.c.id.desc())
        .limit(limit)
    )
    return [dict(r) for r in rows.mappings()]


def purchases_of(
    conn: Connection, profile_ids: Iterable[int], purchase_event: str, per_person: int = 5
) -> dict[int, list[dict[str, Any]]]:
    """The last ``per_person`` purchase events of each profile, newest first."""
    found: dict[int, list[dict[str, Any]]] = {}
    wanted = sorted(set(profile_ids))
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        rows = conn.execute(
            select(events.c.profile_id, events.c.message_id, events.c.properties, events.c.revenue, events.c.ts)
            .where(events.c.event == purchase_event, events.c.profile_id.in_(chunk))
            .order_by(events.c.profile_id, events.c.ts.desc())
        )
        for pid, message_id, properties, revenue, ts in rows:
            orders = found.setdefault(pid, [])
            if len(orders) < per_person:
                orders.append({"message_id": message_id, "properties": properties or {}, "revenue": revenue, "ts": ts})
    return found
