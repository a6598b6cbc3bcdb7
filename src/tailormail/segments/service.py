"""What the CLI and the API do with segments, each operation one call."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tailormail.clock import from_ms
from tailormail.config import Settings
from tailormail.errors import NotFound, ValidationError
from tailormail.segments import definitions as defs
from tailormail.segments import governance
from tailormail.segments.describe import describe, summary
from tailormail.segments.evaluate import matching_profiles
from tailormail.segments.explain import explain, find_profile
from tailormail.segments.membership import Diff, refresh
from tailormail.segments.rfm import refresh_rfm
from tailormail.segments.sql import Scope, compile_rule
from tailormail.store import Store
from tailormail.store import segments as q

DAY_MS = 86_400_000


def _iso(ms: int | None) -> str | None:
    return from_ms(ms).isoformat(timespec="seconds") if ms is not None else None


@dataclass
class SegmentService:
    """Segments of one workspace: definitions on disk, memberships in the store."""

    store: Store
    settings: Settings

    def definitions(self) -> dict[str, defs.Segment]:
        """Every definition, validated."""
        return defs.load_segments(self.settings)

    def get(self, name: str) -> defs.Segment:
        """One definition, or NotFound suggesting the closest name."""
        return defs.get_segment(self.definitions(), name)

    def summaries(self, now_ms: int) -> list[dict[str, Any]]:
        """Size, change over 7 days and last refresh of every segment."""
        segments = self.definitions()
        with self.store.read() as conn:
            sizes, states = q.sizes(conn), q.states(conn)
            week = q.change_counts_since(conn, now_ms - 7 * DAY_MS)
        rows = []
        for name, segment in sorted(segments.items()):
            entered, exited = week.get(name, (0, 0))
            state = states.get(name)
            rows.append(
                {
                    "name": name,
                    "active": segment.active,
                    "size": sizes.get(name, 0),
                    "entered_7d": entered,
                    "exited_7d": exited,
                    "change_7d": entered - exited,
                    "refreshed_at": _iso(state["refreshed_at"]) if state else None,
                    "stale": bool(state and state["rule_hash"] != segment.rule_hash),
                    "description": segment.description,
                }
            )
        return rows

    def show(self, name: str, now_ms: int) -> dict[str, Any]:
        """A definition with its sentence, its SQL and its size."""
        segment = self.get(name)
        with self.store.read() as conn:
            stmt = compile_rule(segment.rule, Scope(now_ms, conn.dialect.name, None, self.settings.timezone))
            sql = str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
            size = len(q.current_members(conn, name))
        return {
            "name": name,
            "description": segment.description,
            "active": segment.active,
            "source": segment.source,
            "rule": segment.document.get("rule") if isinstance(segment.document, dict) else None,
            "summary": summary(segment.rule),
            "explanation": describe(segment.rule),
            "sql": sql,
            "size": size,
        }

    def members(self, name: str, *, as_of: int | None = None, after: int = 0, limit: int = 100) -> dict[str, Any]:
        """A page of members (now, or evaluated at ``as_of``), with the cursor of the next page."""
        segment = self.get(name)
        with self.store.read() as conn:
            if as_of is None:
                page = q.members_page(conn, name, after=after, limit=limit)
                rows = [
                    {"profile_id": r["profile_id"], "user_id": r["user_id"], "since": _iso(r["since"])} for r in page
                ]
            else:
                ids = sorted(matching_profiles(conn, segment.rule, now_ms=as_of, settings=self.settings))
                ids = [i for i in ids if i > after][:limit]
                users = q.user_ids(conn, ids)
                rows = [{"profile_id": i, "user_id": users.get(i), "since": None} for i in ids]
        cursor = rows[-1]["profile_id"] if len(rows) == limit else None
        return {"segment": name, "as_of": _iso(as_of), "members": rows, "next_after": cursor}

    def refresh(
        self, names: list[str] | None, now_ms: int, on_done: Callable[[Diff], None] | None = None
    ) -> list[Diff]:
        """RFM traits first, then each named (default: every active) segment in full."""
        segments = self.definitions()
        chosen = [defs.get_segment(segments, n) for n in names] if names else [s for s in segments.values() if s.active]
        with self.store.begin() as conn:
            refresh_rfm(conn, self.settings, now_ms)
        out = []
        for segment in chosen:
            with self.store.begin() as conn:
                out.append(refresh(conn, segment, now_ms, settings=self.settings))
            if on_done:
                on_done(out[-1])
        return out

    def explain(self, name: str, user_id: str, now_ms: int) -> dict[str, Any]:
        """Each condition for one person: holds or not, and the values that decided it."""
        segment = self.get(name)
        with self.store.read() as conn:
            profile = find_profile(conn, user_id)
            if profile is None:
                raise NotFound(f"no profile with userId {user_id!r}")
            steps = explain(conn, segment.rule, profile, now_ms, self.settings)
            stored = profile["id"] in q.current_members(conn, name, [profile["id"]])
        return {
            "segment": name,
            "user_id": user_id,
            "at": _iso(now_ms),
            "member": steps[0].holds,
            "stored_member": stored,
            "steps": [s.as_json() for s in steps],
        }

    def overlap(self) -> dict[str, Any]:
        """The Jaccard matrix of the active segments."""
        names = sorted(n for n, s in self.definitions().items() if s.active)
        with self.store.read() as conn:
            sizes, shared = q.sizes(conn), q.pair_intersections(conn)
        return {
            "segments": names,
            "sizes": [sizes.get(n, 0) for n in names],
            "jaccard": governance.overlap_matrix(names, sizes, shared),
        }

    def doctor(self, now_ms: int) -> list[governance.Finding]:
        """Governance findings: too many, tiny, unchanged, unused, overlapping."""
        segments = self.definitions()
        with self.store.read() as conn:
            sizes, shared, states = q.sizes(conn), q.pair_intersections(conn), q.states(conn)
        text = governance.journey_references(self.settings.workspace)
        return governance.doctor(segments, sizes, shared, states, text, now_ms, governance.Limits.of(self.settings))

    def save(self, name: str, document: Any, now_ms: int) -> dict[str, Any]:
        """Create or replace a segment's YAML file, then refresh it so real time can follow it."""
        if not isinstance(document, dict):
            raise ValidationError("a segment is a JSON object with description and rule", field="body")
        defs.write_segment(self.settings, name, document)
        segment = self.get(name)
        if segment.active:
            with self.store.begin() as conn:
                refresh(conn, segment, now_ms, settings=self.settings)
        return self.show(name, now_ms)

    def delete(self, name: str) -> None:
        """Remove a segment's file and its memberships (its history stays)."""
        defs.delete_segment(self.settings, name)
        with self.store.begin() as conn:
            q.forget_segment(conn, name)
