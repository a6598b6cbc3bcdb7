"""The demo's later steps: previews, live journeys on a demo clock, simulated tracking, the report.

Recipients here are simulated: they open and click with probabilities that
depend on how relevant the email is to them, by requests to the real
tracking endpoints of a real HTTP server.  The report says so.
"""

from __future__ import annotations

import html
import random
import re
import threading
from datetime import timedelta
from email import message_from_bytes
from typing import TYPE_CHECKING, Any

from tailormail.clock import ManualClock, from_ms, to_ms
from tailormail.runtime import open_runtime
from tailormail.store import analytics as analytics_q
from tailormail.store import deliver as outbox_q
from tailormail.store import profiles as profile_q

if TYPE_CHECKING:
    from tailormail.demo import DemoRun, Section

CAMPAIGNS = {
    "cart_abandoners": "cart_reminder",
    "active_buyers": "cross_sell",
    "engaged_browsers": "newsletter",
    "new_subscribers": "welcome",
    "lapsed_customers": "win_back",
}
"""One campaign per preset segment, each using the content rules of its blocks."""
CART_SHOPPERS = 150
"""How many simulated customers put something in their cart during the live part (at most)."""
TICK = timedelta(minutes=30)
LIVE_HOURS = 28
CAMPAIGN = "demo-newsletter"
"""The live part's broadcast: the newsletter to engaged browsers, a subject A/B test and a 10 % holdout."""
SUBJECTS = ("This week at the shop", "Picked for you: this week's favourites")
OPEN_CHANCE = {"cart_abandonment": 0.55, "birthday": 0.5, "welcome_series": 0.45, "A": 0.25, "B": 0.4}
"""Simulated chance to open, by journey or campaign arm: the more the email fits the person, the higher."""
ORGANIC_PURCHASE = 0.04
"""Chance that a campaign member (holdout included) buys anyway in the days after: the baseline for lift."""


def content_previews(run: DemoRun) -> Section:
    """Render one campaign per preset segment for a few of its members and write the previews."""
    from tailormail.content.preview import PreviewRequest, render_mails, write_previews
    from tailormail.demo import Section, Table
    from tailormail.segments.membership import members

    rt = run.runtime
    rows = []
    for segment, template in CAMPAIGNS.items():
        with rt.store.read() as conn:
            ids = sorted(members(conn, segment))[:3]
            users = [p["user_id"] for p in (profile_q.get_profile(conn, profile_id=i) for i in ids) if p]
            if not users:  # an empty request would mean "everyone" to the previewer
                rows.append([segment, template, 0, 0, 0, "no members yet"])
                continue
            mails = render_mails(conn, rt.settings, PreviewRequest(template, user_ids=users), from_ms(run.now_ms))
        out = rt.settings.workspace / "previews" / template
        # Chromium starts once per picture (seconds each): one person per campaign gets screenshots.
        previews = write_previews(mails[:1], out, template=template)
        previews += write_previews(mails[1:], out, template=template, screenshots=False)
        shots = sum(len(p.screenshots) for p in previews)
        rows.append(
            [
                segment,
                template,
                len(previews),
                sum(1 for p in previews if p.error),
                shots,
                str(out.relative_to(rt.settings.workspace)),
            ]
        )
    section = Section("Content")
    section.tables.append(
        Table(
            "One campaign per preset segment",
            ["segment", "template", "previews", "failed", "screenshots", "folder"],
            rows,
        )
    )
    section.notes.append("Open the .html files in previews/ to see each person's email (screenshots need Chromium).")
    return section


def live_journeys(run: DemoRun) -> Section:
    """Live cart activity on a demo clock: journeys run, the worker delivers to the workspace Maildir."""
    from tailormail.deliver.service import deliver_task
    from tailormail.demo import Section, Table
    from tailormail.journeys.campaigns import Campaign, schedule
    from tailormail.journeys.service import campaigns_task, forget_runners, timers_task
    from tailormail.runtime import journey_effects

    forget_runners()
    clock = ManualClock(from_ms(run.now_ms))
    rt = open_runtime(run.runtime.settings.workspace, clock=clock)
    rng = random.Random(run.options.seed)
    try:
        with rt.store.read() as conn:
            people = _shoppers(conn, rng)
            products = analytics_q.some_products(conn, 50)
        plan = _cart_plan(people, products, clock, rng)
        # Only the journey timers and delivery run each tick: the demo clock moves faster than
        # the other worker tasks (segment rechecks, model retraining) need to be shown.
        timers = timers_task(lambda: journey_effects(rt.settings))
        broadcasts = campaigns_task(lambda: journey_effects(rt.settings))
        newsletter = Campaign(CAMPAIGN, "newsletter", "engaged_browsers", to_ms(clock.now()), SUBJECTS, holdout=0.1)
        with rt.store.begin() as conn:
            schedule(rt.settings, conn, newsletter, to_ms(clock.now()))
        end = clock.now() + timedelta(hours=LIVE_HOURS)
        while clock.now() < end:
            due = [m for m in plan if m["at"] <= clock.now()]
            plan = [m for m in plan if m["at"] > clock.now()]
            if due:
                rt.ingestor.ingest_raw(
                    [{k: v for k, v in m.items() if k != "at"} | {"timestamp": m["at"].isoformat()} for m in due]
                )
            timers(rt, clock.now())
            broadcasts(rt, clock.now())
            deliver_task(rt, clock.now())
            clock.advance(TICK)
        with rt.store.read() as conn:
            rows = analytics_q.sends_by_step(conn)
    finally:
        rt.close()
        forget_runners()
    section = Section("Journeys")
    section.tables.append(
        Table(f"What journeys sent in {LIVE_HOURS} demo hours", ["journey", "step", "status", "emails"], rows)
    )
    section.notes.append(
        f"{len(people)} simulated shoppers added to cart; about a third bought within the hour "
        "(the cart journey's goal ends their run). Mail is in the workspace's outbox/ Maildir."
    )
    section.notes.append(
        f"Campaign {CAMPAIGN}: the newsletter to engaged_browsers with two subject lines (A/B) "
        "and a 10 % holdout that gets nothing; quiet hours and the frequency cap apply."
    )
    return section


def _shoppers(conn: Any, rng: random.Random) -> list[tuple[str, int]]:
    ids = analytics_q.profiles_with_email(conn, 5000)
    chosen = rng.sample(ids, min(CART_SHOPPERS, max(len(ids) // 10, 1), len(ids)))
    return sorted(chosen)


def _cart_plan(
    people: list[tuple[str, int]], products: list[dict[str, Any]], clock: ManualClock, rng: random.Random
) -> list[dict[str, Any]]:
    start = clock.now()
    plan = []
    for i, (user, _pid) in enumerate(people):
        product = products[i % len(products)]
        at = start + timedelta(minutes=rng.randrange(0, 6 * 60))
        props = {
            "product_id": product["product_id"],
            "name": product["name"],
            "category": product["category"],
            "price": product["price"],
            "quantity": 1,
            "image_url": product["image_url"],
        }
        plan.append(
            {
                "type": "track",
                "userId": user,
                "event": "add_to_cart",
                "messageId": f"demo-cart-{i}",
                "properties": props,
                "at": at,
            }
        )
        if rng.random() < 1 / 3:
            plan.append(
                {
                    "type": "track",
                    "userId": user,
                    "event": "purchase",
                    "messageId": f"demo-buy-{i}",
                    "properties": {"order_id": f"demo-{i}", "revenue": product["price"], "products": [props]},
                    "at": at + timedelta(minutes=rng.randrange(5, 55)),
                }
            )
    return plan


_LINK = re.compile(r'href="(https?://[^"]+/c/[^"]+)"')
_PIXEL = re.compile(r'src="(https?://[^"]+/o/[^"]+\.gif)"')


def simulated_tracking(run: DemoRun) -> Section:
    """Simulated recipients open and click (more when the content fits them) through the real endpoints."""
    import httpx
    import uvicorn

    from tailormail.api.app import create_app
    from tailormail.demo import Section, Table
    from tailormail.track.settings import track_settings

    clock = ManualClock(from_ms(run.now_ms) + timedelta(hours=LIVE_HOURS + 2))
    rt = open_runtime(run.runtime.settings.workspace, clock=clock)
    rng = random.Random(run.options.seed + 1)
    base = track_settings(rt.settings).base_url.rstrip("/")
    server = uvicorn.Server(uvicorn.Config(create_app(rt), host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    counts = {"emails": 0, "opens": 0, "clicks": 0, "purchases": 0}
    try:
        while not server.started:
            threading.Event().wait(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        local = f"http://127.0.0.1:{port}"
        with rt.store.read() as conn:
            sent = [row for row in analytics_q.sends(conn) if row["status"] == "sent"]
            bodies = {row["id"]: (outbox_q.get_outbox(conn, row["id"]) or {}).get("mime", b"") for row in sent}
        agent = {"User-Agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 Version/17.0"}
        with httpx.Client(headers=agent, timeout=10) as client:
            for row in sent:
                counts["emails"] += 1
                _one_recipient(rt, client, row, bodies[row["id"]], base, local, rng, counts)
        counts["purchases"] += _organic_purchases(rt, rng)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        rt.close()
    section = Section("Tracking (simulated recipients)")
    section.tables.append(
        Table("Hits on the real tracking endpoints", ["what", "count"], [[k, v] for k, v in counts.items()])
    )
    section.notes.append(
        "Simulated: each recipient opens with a probability that grows with how well the email "
        "fits them (a cart reminder for their own cart fits best) and clicks some links."
    )
    return section


def _one_recipient(
    rt: Any,
    client: Any,
    row: dict[str, Any],
    mime: bytes,
    base: str,
    local: str,
    rng: random.Random,
    counts: dict[str, int],
) -> None:
    body = _html(mime)
    relevance = OPEN_CHANCE.get(row["journey"] or row["variant"] or "", 0.3)
    if rng.random() >= relevance:
        return
    rt.clock.advance(timedelta(minutes=rng.randrange(3, 240)))
    for pixel in _PIXEL.findall(body)[:1]:
        client.get(pixel.replace(base, local))
        counts["opens"] += 1
    links = _LINK.findall(body)
    if links and rng.random() < relevance:
        client.get(rng.choice(links).replace(base, local).replace("&amp;", "&"), follow_redirects=False)
        counts["clicks"] += 1
        if rng.random() < relevance / 2:
            rt.clock.advance(timedelta(minutes=rng.randrange(5, 120)))
            counts["purchases"] += _purchase(rt, row["profile_id"], rng)


def _purchase(rt: Any, profile_id: int | None, rng: random.Random) -> int:
    """Ingest a simulated purchase by this person now; 1 if they could buy (have a user id), else 0."""
    user = _user_of(rt, profile_id)
    if not user:
        return 0
    event = {
        "type": "track",
        "userId": user,
        "event": rt.settings.events.purchase,
        "timestamp": rt.clock.now().isoformat(),
        "properties": {"revenue": round(rng.uniform(20, 160), 2)},
    }
    rt.ingestor.ingest_raw([event])
    return 1


def _organic_purchases(rt: Any, rng: random.Random) -> int:
    """Some campaign members buy whatever they got (holdout too): the baseline the holdout measures lift against."""
    from tailormail.store import campaigns as campaign_q

    with rt.store.read() as conn:
        members = campaign_q.arms_of(conn, CAMPAIGN)
    return sum(_purchase(rt, m["profile_id"], rng) for m in members if rng.random() < ORGANIC_PURCHASE)


def _user_of(rt: Any, profile_id: int | None) -> str | None:
    """The user id of a profile (None when it is gone or anonymous)."""
    if profile_id is None:
        return None
    with rt.store.read() as conn:
        profile = profile_q.get_profile(conn, profile_id=profile_id)
    return profile["user_id"] if profile else None


def _html(mime: bytes) -> str:
    for part in message_from_bytes(mime).walk():
        if part.get_content_type() == "text/html":
            payload = part.get_payload(decode=True)
            return payload.decode(part.get_content_charset() or "utf-8") if isinstance(payload, bytes) else ""
    return ""


def final_report(run: DemoRun) -> Section:
    """Write the analytics report (metrics, experiments, cohorts, paths) and summarise the experiments."""
    from tailormail.analytics.heatmap import picture_maker
    from tailormail.analytics.report import ReportOptions, build_report
    from tailormail.demo import Section, Table
    from tailormail.track.settings import track_settings

    rt = run.runtime
    track = track_settings(rt.settings)
    now_ms = to_ms(from_ms(run.now_ms) + timedelta(hours=LIVE_HOURS + 8))
    with rt.store.read() as conn:
        page = build_report(
            conn,
            now_ms,
            ReportOptions(
                goal_event=track.goal_event,
                attribution_days=track.attribution_days,
                simulated=True,
                title="tailormail demo: what worked",
            ),
            picture_maker(conn, rt.settings, from_ms(now_ms)),
        )
        rows = analytics_q.sends_by_step(conn)
    path = rt.settings.workspace / "reports" / "report.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    section = Section("Report")
    rows_of_verdicts = _verdicts(page)
    section.tables.append(
        Table(
            "Experiment verdicts",
            ["experiment", "verdict"],
            rows_of_verdicts or [["", "no experiment had two variants yet"]],
        )
    )
    section.notes.append(
        f"Analytics report: {path} (self-contained; open it in a browser). "
        f"{sum(r[3] for r in rows if r[2] == 'sent')} emails were sent."
    )
    return section


def _verdicts(report_html: str) -> list[list[str]]:
    """[experiment, verdict] rows read off the report's experiments section."""
    rows, experiment = [], ""
    for heading, verdict in re.findall(r"<h3>([^<]+)</h3>|<p class=verdict>([^<]+)</p>", report_html):
        if heading:
            experiment = html.unescape(heading)
        elif verdict:
            rows.append([experiment, html.unescape(verdict)])
    return rows
