"""Report generation over the simulated shop, with a campaign, its tracking events and a journey split.

``tailormail report``'s work (build_report: metrics with last-touch
attribution, experiments, click tables, two cohort matrices, paths, charts;
no heatmap pictures, which are Chromium's time) over the shop fixture of
TAILORMAIL_BENCH_REPORT_CUSTOMERS customers (default 20,000; the target is
1,000,000 customers / 20,000,000 events in under 30 s).  An email layer is
added once to a copy of the fixture: a campaign with two variants sent to a
fifth of the customers, deliveries, opens (25 %) and clicks (5 %) ingested as
events, and a journey split (two arms and a holdout) over a tenth of them.
Baseline in the same run: the same aggregates hand-written in SQL (sends,
unique opens and clicks per campaign and variant, purchases within five days
of a click, clicks per link, the two cohort matrices and the last four steps
before a first purchase).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from bench.fixtures import FIXTURE_END, cache_dir, shop_database, sqlite_url
from tailormail.analytics.cohorts import cohorts
from tailormail.analytics.experiment_data import HOLDOUT, SplitPlan, all_experiments
from tailormail.analytics.heatmap import link_clicks
from tailormail.analytics.metrics import compute, outcomes
from tailormail.analytics.paths import paths_to_goal
from tailormail.analytics.report import ReportOptions, build_report
from tailormail.clock import ManualClock, to_ms
from tailormail.deliver.outbox import Email, enqueue_many
from tailormail.runtime import Runtime, open_runtime
from tailormail.store import journeys as journey_q

CUSTOMERS = int(os.environ.get("TAILORMAIL_BENCH_REPORT_CUSTOMERS", "20000"))
SENT_AT = FIXTURE_END - timedelta(days=20)
DAY = 86_400_000


def _share(pid: int, salt: str) -> float:
    """A stable pseudo-random number in [0, 1) per person (so the layer is the same every build)."""
    digest = hashlib.blake2b(f"{salt}:{pid}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def report_database(customers: int) -> Path:
    """A copy of the shop fixture with the email layer added (built once, then reused)."""
    shop = shop_database(customers)
    final = cache_dir() / f"{shop.name}-report2"  # -report2: independent per-salt hashes (crc32 ones correlated)
    if not (final / "done").exists():
        building = final.with_name(final.name + ".building")
        shutil.rmtree(building, ignore_errors=True)
        shutil.copytree(shop, building)
        add_email_layer(open_runtime(building, database_url=sqlite_url(building), clock=ManualClock(SENT_AT)))
        (building / "done").write_text("ok")
        shutil.rmtree(final, ignore_errors=True)
        building.rename(final)
    return final


def add_email_layer(rt: Runtime) -> None:
    """Sends, their tracking events and a journey split, through the outbox, ingest and the journey log."""
    started = time.perf_counter()
    with rt.store.read() as conn:
        people = [
            (int(p), str(u))
            for p, u in conn.exec_driver_sql("SELECT id, user_id FROM profiles WHERE user_id IS NOT NULL ORDER BY id")
        ]
    sent_ms = to_ms(SENT_AT)
    recipients = [(p, u) for p, u in people if _share(p, "send") < 0.2]
    mime = _mime()
    for start in range(0, len(recipients), 5000):
        chunk = recipients[start : start + 5000]
        emails = [
            Email(key=f"spring/{p}", to=f"{u}@example.com".lower(), mime=mime, profile_id=p, campaign="spring",
                  template="cross_sell", variant="A" if _share(p, "arm") < 0.5 else "B")
            for p, u in chunk
        ]  # fmt: skip
        with rt.store.begin() as conn:
            enqueue_many(conn, emails, now_ms=sent_ms)
        rt.ingestor.ingest_raw([e for p, u in chunk for e in _events(p, u, sent_ms)])
    with (
        rt.store.begin() as conn
    ):  # the send loop's outcome, written directly: sending 200,000 mails is not measured here
        conn.exec_driver_sql(f"UPDATE outbox SET status = 'sent', sent_at = {sent_ms}, attempts = 1")
        assigned = [(p, u) for p, u in people if _share(p, "split") < 0.1]
        rows = [
            {"run_id": p, "journey": "win_back", "profile_id": p, "node": "offer_test", "action": "assigned",
             "detail": {"arm": _arm(p)}, "at": sent_ms}
            for p, _ in assigned
        ]  # fmt: skip
        for start in range(0, len(rows), 5000):
            journey_q.log(conn, rows[start : start + 5000])
    print(f"  email layer: {len(recipients):,} sends, {len(assigned):,} split assignments "
          f"in {time.perf_counter() - started:,.0f} s")  # fmt: skip
    rt.close()


def _arm(pid: int) -> str:
    x = _share(pid, "arm-split")
    return "reminder" if x < 0.45 else ("discount" if x < 0.9 else HOLDOUT)


def _mime() -> bytes:
    msg = EmailMessage()
    msg["From"], msg["Subject"] = "shop@example.com", "Spring picks"
    msg.set_content("hi")
    return msg.as_bytes()


def _events(pid: int, user: str, sent_ms: int) -> list[dict[str, Any]]:
    key = f"spring/{pid}"
    common = {
        "message_key": key,
        "campaign": "spring",
        "template": "cross_sell",
        "variant": "A" if _share(pid, "arm") < 0.5 else "B",
    }
    out = [_track(user, "email_delivered", f"d-{key}", sent_ms + 1000, common)]
    if _share(pid, "open") < 0.25:
        out.append(_track(user, "email_opened", f"o-{key}", sent_ms + 3_600_000, {**common, "automated": False}))
    if _share(pid, "click") < 0.05:
        link = int(_share(pid, "link") * 6)
        props = {**common, "automated": False, "link_id": link, "block": "product_grid" if link else "hero",
                 "position": link + 1, "url": f"https://shop.example/p/{int(_share(pid, 'product') * 40)}"}  # fmt: skip
        out.append(_track(user, "email_clicked", f"c-{key}", sent_ms + 3_700_000, props))
    return out


def _track(user: str, event: str, mid: str, ts: int, props: dict[str, Any]) -> dict[str, Any]:
    from tailormail.clock import from_ms

    return {"type": "track", "userId": user, "event": event, "messageId": mid, "timestamp": from_ms(ts).isoformat(),
            "properties": props}  # fmt: skip


BASELINE_SQL = {
    "sends, unique opens and clicks per campaign and variant": """
        SELECT o.campaign, o.variant, count(*) AS sent,
               sum(o.idempotency_key IN (SELECT json_extract(properties, '$.message_key') FROM events
                   WHERE event = 'email_opened' AND NOT coalesce(json_extract(properties, '$.automated'), 0))),
               sum(o.idempotency_key IN (SELECT json_extract(properties, '$.message_key') FROM events
                   WHERE event = 'email_clicked' AND NOT coalesce(json_extract(properties, '$.automated'), 0)))
        FROM outbox o GROUP BY o.campaign, o.variant""",
    "purchases within 5 days of a click": """
        SELECT count(*), sum(p.revenue) FROM events c JOIN events p
          ON p.profile_id = c.profile_id AND p.event = 'purchase' AND p.ts BETWEEN c.ts AND c.ts + 5 * 86400000
        WHERE c.event = 'email_clicked'""",
    "clicks per link": """
        SELECT json_extract(properties, '$.template'), json_extract(properties, '$.link_id'), count(*)
        FROM events WHERE event = 'email_clicked' GROUP BY 1, 2""",
    "split arms and conversions": """
        SELECT json_extract(l.detail, '$.arm'), count(DISTINCT l.profile_id), count(DISTINCT p.profile_id)
        FROM journey_log l LEFT JOIN events p ON p.profile_id = l.profile_id AND p.event = 'purchase'
             AND p.ts BETWEEN l.at AND l.at + 5 * 86400000
        WHERE l.action = 'assigned' GROUP BY 1""",
    "cohort matrix, any activity": """
        WITH f AS (SELECT profile_id, min(ts) AS first_ts FROM events GROUP BY profile_id)
        SELECT (f.first_ts - :origin) / 604800000 AS cohort,
               (e.ts - :origin) / 604800000 - (f.first_ts - :origin) / 604800000 AS age,
               count(DISTINCT e.profile_id)
        FROM events e JOIN f ON f.profile_id = e.profile_id GROUP BY 1, 2""",
    "cohort matrix, repeat purchases": """
        WITH f AS (SELECT profile_id, min(ts) AS first_ts FROM events WHERE event = 'purchase' GROUP BY profile_id)
        SELECT (f.first_ts - :origin) / 604800000 AS cohort,
               (e.ts - :origin) / 604800000 - (f.first_ts - :origin) / 604800000 AS age,
               count(DISTINCT e.profile_id)
        FROM events e JOIN f ON f.profile_id = e.profile_id WHERE e.event = 'purchase' GROUP BY 1, 2""",
    "last four steps before a first purchase": """
        WITH g AS (SELECT profile_id, min(ts) AS goal_ts FROM events WHERE event = 'purchase' GROUP BY profile_id),
        r AS (SELECT e.profile_id, e.event, g.goal_ts IS NOT NULL AS converted,
                     row_number() OVER (PARTITION BY e.profile_id ORDER BY e.ts DESC, e.id DESC) AS n
              FROM events e LEFT JOIN g ON g.profile_id = e.profile_id
              WHERE e.event IN ('product_view', 'add_to_cart', 'checkout_started', 'email_opened', 'email_clicked')
                AND (g.goal_ts IS NULL OR e.ts < g.goal_ts))
        SELECT profile_id, group_concat(event, '>'), max(converted) FROM r WHERE n <= 4 GROUP BY profile_id""",
}


def baseline(root: Path, origin_ms: int) -> tuple[float, float, dict[str, float]]:
    """(wall s, CPU s, seconds per query) of the hand-written SQL with plain sqlite3."""
    import sqlite3

    db = sqlite3.connect(root / "tailormail.db")
    per: dict[str, float] = {}
    wall, cpu = time.perf_counter(), time.process_time()
    for name, sql in BASELINE_SQL.items():
        t = time.perf_counter()
        db.execute(sql, {"origin": origin_ms}).fetchall()
        per[name] = time.perf_counter() - t
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    db.close()
    return wall, cpu, per


def parts(rt: Runtime, now_ms: int, options: ReportOptions) -> list[tuple[str, float, float]]:
    """(part, wall s, CPU s) of each part of the report timed alone, one after another on one connection."""
    goal, days = options.goal_event, options.attribution_days
    timed: list[tuple[str, float, float]] = []
    with rt.store.read() as conn:
        steps: list[tuple[str, Any]] = [
            ("outcomes (sends, email events, attribution)",
             lambda: outcomes(conn, goal_event=goal, attribution_days=days)),
            ("metrics grouping", lambda: compute(conn, ["campaign", "journey"], goal_event=goal, attribution_days=days,
                                                 emails=emails)),
            ("experiments", lambda: all_experiments(conn, goal_event=goal, attribution_days=days,
                                                    plans=options.split_plans, emails=emails)),
            ("click tables", lambda: link_clicks(conn)),
            ("cohort matrix, any activity", lambda: cohorts(conn, now_ms=now_ms, period="week", activity=None)),
            ("cohort matrix, repeat purchases", lambda: cohorts(conn, now_ms=now_ms, period="week",
                                                                start="first_purchase", activity=goal)),
            ("paths", lambda: paths_to_goal(conn, options.journey_events, goal)),
        ]  # fmt: skip
        emails: Any = None
        for name, step in steps:
            wall, cpu = time.perf_counter(), time.process_time()
            result = step()
            timed.append((name, time.perf_counter() - wall, time.process_time() - cpu))
            if emails is None:
                emails = result
    return timed


def main() -> None:
    root = report_database(CUSTOMERS)
    rt = open_runtime(root, database_url=sqlite_url(root), clock=ManualClock(FIXTURE_END))
    with rt.store.read() as conn:
        events = conn.exec_driver_sql("SELECT count(*) FROM events").scalar_one()
        profiles = conn.exec_driver_sql("SELECT count(*) FROM profiles").scalar_one()
    plans = {("win_back", "offer_test"): SplitPlan({"reminder": 45, "discount": 45, HOLDOUT: 10}, "purchase")}
    options = ReportOptions(split_plans=plans, title="bench")
    load = os.getloadavg()
    now_ms = to_ms(FIXTURE_END)
    wall, cpu = time.perf_counter(), time.process_time()
    with rt.store.read() as conn:
        page = build_report(conn, now_ms, options)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    alone = parts(rt, now_ms, options)
    rt.close()
    base_wall, base_cpu, per = baseline(root, now_ms - 52 * 7 * DAY)
    print(f"report: {profiles:,} profiles, {events:,} events (SQLite); load average {load[0]:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after")  # fmt: skip
    print(f"  tailormail build_report: {wall:,.1f} s wall, {cpu:,.1f} CPU-s, {len(page) / 2**20:.1f} MiB of HTML"
          f"  (target < 30 s at 1,000,000 profiles / 20,000,000 events)")  # fmt: skip
    print("  each part alone, one after another:")
    for name, part_wall, part_cpu in alone:
        print(f"    {name:45} {part_wall:7.2f} s {part_cpu:7.2f} CPU-s")
    print(f"  baseline hand-written SQL: {base_wall:,.1f} s wall, {base_cpu:,.1f} CPU-s")
    for name, seconds in per.items():
        print(f"    {name:45} {seconds:7.2f} s")
    print(f"  ratio tailormail/baseline: {wall / base_wall:.2f} wall, {cpu / max(base_cpu, 1e-9):.2f} CPU")


if __name__ == "__main__":
    main()
