"""The main job, end to end on a simulated shop: what `tailormail demo` runs.

The demo is a list of steps; each takes the shared ``DemoRun`` and returns its
own ``Section`` of the summary (tables, notes, charts).  Later parts of the
pipeline (segments, content, journeys, tracking) add one step each to
``STEPS``.  The CLI only formats the returned ``DemoSummary``.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tailormail.clock import Clock, SystemClock, from_ms, to_ms
from tailormail.config import CONFIG_FILE, load_settings
from tailormail.errors import ConfigError
from tailormail.runtime import Runtime, open_runtime
from tailormail.simulate.output import SimulationResult, simulate_into
from tailormail.simulate.shop import Progress
from tailormail.store import Store, shop_stats
from tailormail.store import events as event_q
from tailormail.store import profiles as profile_q
from tailormail.store.maintenance import drop_all_tables, holds_data
from tailormail.workspace import init_workspace

MARKER = ".tailormail-demo"
"""File that marks a workspace as the demo's own, so a rerun may reset its database."""


@dataclass
class Table:
    """A titled table of a summary section."""

    title: str
    columns: list[str]
    rows: list[list[Any]]


@dataclass
class Chart:
    """A chart of a summary section: one series of (x, y) points."""

    title: str
    kind: str
    """``line`` or ``bar``."""
    x: list[Any]
    y: list[float]
    y_label: str


@dataclass
class Section:
    """What one demo step reports."""

    title: str
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)


@dataclass
class DemoOptions:
    """How big a shop the demo simulates, and where."""

    workspace: Path
    customers: int = 5000
    days: int = 90
    seed: int = 7
    live: bool = True
    """Also run the live part (previews, journeys on a demo clock, simulated tracking, the report)."""


@dataclass
class DemoRun:
    """The state shared by the steps of one demo run."""

    options: DemoOptions
    runtime: Runtime
    now_ms: int
    progress: Progress | None = None
    simulation: SimulationResult | None = None


@dataclass
class DemoSummary:
    """Everything the demo did, section by section, and where its report is."""

    workspace: Path
    sections: list[Section]
    report: Path | None
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        """The summary as plain JSON-ready data."""
        from dataclasses import asdict

        return {"workspace": str(self.workspace), "report": str(self.report), "seconds": self.seconds,
                "sections": [asdict(s) for s in self.sections]}  # fmt: skip


Step = Callable[[DemoRun], Section]


def run_demo(
    options: DemoOptions,
    *,
    clock: Clock | None = None,
    progress: Progress | None = None,
    on_step: Callable[[str], None] | None = None,
) -> DemoSummary:
    """Prepare a fresh demo workspace, run every step, write the HTML report.

    ``progress`` advances by simulated customers; ``on_step`` hears each step's summary line as it starts.
    """
    from tailormail.demo_report import write_report

    started = time.perf_counter()
    clock = clock or SystemClock()
    root = options.workspace.resolve()
    first = prepare_workspace(root)
    first.notes.extend(fit_prediction_horizons(root, options.days))
    runtime = open_runtime(root, clock=clock)
    try:
        run = DemoRun(options, runtime, to_ms(clock.now()), progress)
        steps = STEPS if options.live else STEPS[:CORE_STEPS]
        sections = [first]
        for step in steps:
            if on_step:
                on_step((step.__doc__ or step.__name__).splitlines()[0])
            sections.append(step(run))
    finally:
        runtime.close()
    report = write_report(root / "reports" / "summary.html", sections, generated=from_ms(run.now_ms))
    return DemoSummary(root, sections, report, round(time.perf_counter() - started, 2))


def prepare_workspace(root: Path) -> Section:
    """Create the demo workspace, or empty the database of one an earlier demo made."""
    config = root / CONFIG_FILE
    if root.exists() and not config.exists() and any(root.iterdir()):
        raise ConfigError(f"{root} exists and is not a workspace", hint="give the demo a new or empty --workspace")
    if config.exists() and not (root / MARKER).exists():
        raise ConfigError(
            f"{root} is a workspace the demo did not create; the demo empties its database",
            hint="give the demo another --workspace (e.g. demo-workspace)",
        )
    created = not config.exists()
    if created:
        init_workspace(root)
    url = load_settings(root).database_url
    store = Store(url)
    try:
        with store.begin() as conn:
            if holds_data(conn) and _marked_url(root) != url:
                raise ConfigError(
                    "the demo's database URL points at a database that already holds data",
                    hint="unset TAILORMAIL_DATABASE_URL or point it at an empty database",
                )
            dropped = drop_all_tables(conn)
    finally:
        store.close()
    (root / MARKER).write_text(json.dumps({"database_url": url}) + "\n", encoding="utf-8")
    note = f"created {root}" if created else f"reset the database of {root} ({len(dropped)} tables dropped)"
    return Section("Workspace", notes=[note, f"database: {_safe_url(url)}"])


def fit_prediction_horizons(root: Path, days: int) -> list[str]:
    """Shorten the models' horizons to a third of a short history, so each can train and be backtested.

    Training needs two horizons of history (labels before the cut-off, evaluation after
    it); the default 90-day churn and value horizons need 180 days.
    """
    if days >= 180:
        return []
    horizon = max(days // 3, 7)
    config = root / CONFIG_FILE
    text = config.read_text(encoding="utf-8")
    for key, value in (("purchase_days", min(30, horizon)), ("churn_days", horizon), ("high_value_days", horizon)):
        text = re.sub(rf"(?m)^{key} = \d+", f"{key} = {value}", text, count=1)
    config.write_text(text, encoding="utf-8")
    return [f"prediction horizons set to at most {horizon} days in tailormail.toml ({days} days of history)"]


def _marked_url(root: Path) -> str | None:
    try:
        return str(json.loads((root / MARKER).read_text(encoding="utf-8"))["database_url"])
    except (OSError, ValueError, KeyError):
        return None


def _safe_url(url: str) -> str:
    """A database URL without its password."""
    head, sep, tail = url.rpartition("@")
    if not sep or ":" not in head.split("//", 1)[-1]:
        return url
    scheme, _, credentials = head.partition("//")
    return f"{scheme}//{credentials.split(':', 1)[0]}:***@{tail}"


def simulate_shop(run: DemoRun) -> Section:
    """Simulate the shop over the days ending now and ingest it."""
    opts, rt = run.options, run.runtime
    run.simulation = result = simulate_into(
        rt.store, rt.settings, customers=opts.customers, days=opts.days, seed=opts.seed,
        end=from_ms(run.now_ms), now_ms=run.now_ms, progress=run.progress,
    )  # fmt: skip
    rows: list[list[Any]] = [
        ["customers", result.customers],
        ["products", result.products],
        ["messages ingested", result.stored],
        ["window", f"{from_ms(result.start * 1000):%Y-%m-%d %H:%M} to {from_ms(result.end * 1000):%Y-%m-%d %H:%M} UTC"],
    ]
    return Section("Simulated shop", tables=[Table("Simulation", ["what", "value"], rows)])


def shop_summary(run: DemoRun) -> Section:
    """Profiles, events by type, revenue and orders, top products and categories."""
    names = run.runtime.settings.events
    with run.runtime.store.read() as conn:
        profiles = profile_q.count_profiles(conn)
        counts = event_q.event_counts(conn)
        daily = shop_stats.daily_totals(conn, names.purchase)
        buyers = shop_stats.distinct_people(conn, names.purchase)
        countries = shop_stats.profiles_by_trait(conn, "country", limit=5)
        products, categories = _sales(shop_stats.event_properties(conn, names.purchase))
    by_type = [[kind, event or "", n, round(money, 2)] for kind, event, n, money in counts]
    orders = sum(n for _, n, _ in daily)
    revenue = round(sum(r for _, _, r in daily), 2)
    overview: list[list[Any]] = [
        ["profiles", profiles],
        ["buyers", buyers],
        ["orders", orders],
        ["revenue", revenue],
        ["average order value", round(revenue / orders, 2) if orders else 0.0],
    ]
    return Section(
        "Shop summary",
        tables=[
            Table("Overview", ["measure", "value"], overview),
            Table("Events by type", ["type", "event", "count", "revenue"], by_type),
            Table("Top products by revenue", ["product", "category", "units", "revenue"], products[:5]),
            Table("Categories by revenue", ["category", "units", "revenue"], categories),
            Table("Profiles by country", ["country", "profiles"], [[c or "?", n] for c, n in countries]),
        ],
        charts=[
            Chart("Revenue per day", "line", [from_ms(d).date().isoformat() for d, _, _ in daily],
                  [round(r, 2) for _, _, r in daily], "revenue"),
            Chart("Revenue by category", "bar", [c[0] for c in categories], [c[2] for c in categories], "revenue"),
        ],
    )  # fmt: skip


def _sales(orders: Any) -> tuple[list[list[Any]], list[list[Any]]]:
    """Units and revenue per product and per category, from purchase order lines."""
    units: Counter[str] = Counter()
    money: defaultdict[str, float] = defaultdict(float)
    about: dict[str, tuple[str, str]] = {}
    for order in orders:
        for line in order.get("products") or []:
            product = str(line.get("product_id"))
            quantity = int(line.get("quantity", 1))
            about[product] = (str(line.get("name", product)), str(line.get("category", "")))
            units[product] += quantity
            money[product] += float(line.get("price", 0.0)) * quantity
    ranked = sorted(money, key=lambda p: (-money[p], p))
    cat_units: Counter[str] = Counter()
    cat_money: defaultdict[str, float] = defaultdict(float)
    for product in ranked:
        cat_units[about[product][1]] += units[product]
        cat_money[about[product][1]] += money[product]
    products = [[*about[p], units[p], round(money[p], 2)] for p in ranked]
    categories = [[c, cat_units[c], round(cat_money[c], 2)] for c in sorted(cat_money, key=lambda c: -cat_money[c])]
    return products, categories


def segment_sizes(run: DemoRun) -> Section:
    """Refresh the preset segments (and RFM), show their sizes and explain one member."""
    from tailormail.segments.service import SegmentService

    service = SegmentService(run.runtime.store, run.runtime.settings)
    diffs = service.refresh(None, run.now_ms)
    section = Section("Segments")
    section.tables.append(Table("Preset segments", ["segment", "members"], [[d.segment, d.size or 0] for d in diffs]))
    example = next((d for d in diffs if d.segment == "cart_abandoners" and d.entered), None)
    example = example or next((d for d in diffs if d.entered), None)
    if example is not None:
        with run.runtime.store.read() as conn:
            user = profile_q.get_profile(conn, profile_id=min(example.entered))
        if user is not None and user["user_id"]:
            report = service.explain(example.segment, user["user_id"], run.now_ms)
            section.notes.append(f"Why {user['user_id']} is in {example.segment}:")
            for step in report["steps"]:
                values = ", ".join(f"{k}: {v}" for k, v in step["values"].items())
                mark = "yes" if step["holds"] else "no "
                section.notes.append(f"  {'  ' * step['depth']}[{mark}] {step['condition']}  ({values})")
    return section


def predictions(run: DemoRun) -> Section:
    """Train the three models, score everyone, and show quality and the predicted segments' sizes."""
    from tailormail.errors import ValidationError
    from tailormail.predict import report, service
    from tailormail.segments.service import SegmentService

    rt, now = run.runtime, from_ms(run.now_ms)
    section = Section("Predictions")
    rows: list[list[Any]] = []
    for spec in service.PredictSettings.from_settings(rt.settings).specs():
        try:
            (result,) = service.train(rt.store, rt.settings, now, spec.name)
        except ValidationError as error:  # too little history for this horizon: say so, go on
            rows.append([spec.name, "", "not trained", "", error.message])
            continue
        rows.append([result.model, f"v{result.version}", result.status, f"{result.roc_auc:.3f}", ""])
    reports = {r["model"]: r for r in service.latest_reports(rt.store)}
    for row in rows:
        top = (reports.get(row[0]) or {}).get("coefficients") or []
        row[4] = row[4] or (top[0]["sentence"] if top else "")
    section.tables.append(
        Table("Models (time-split backtest)", ["model", "version", "status", "ROC AUC", "strongest signal"], rows)
    )
    if not reports:
        section.notes.append("No model could be trained on this short history; simulate more days (--days).")
        return section
    service.score(rt.store, rt.settings, now)
    path = rt.settings.workspace / "reports" / "predictions.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report.render(list(reports.values())), encoding="utf-8")
    sizes = {d.segment: d.size or 0 for d in SegmentService(rt.store, rt.settings).refresh(None, run.now_ms)}
    section.tables.append(
        Table("Predicted segments", ["segment", "members"], [[s, sizes.get(s, 0)] for s in ("high_value", "at_risk")])
    )
    section.notes.append(f"Model report with ROC, calibration and lift charts: {path}")
    return section


def _later_steps() -> list[Step]:
    from tailormail.demo_pipeline import content_previews, final_report, live_journeys, simulated_tracking

    return [content_previews, live_journeys, simulated_tracking, final_report]


STEPS: list[Step] = [simulate_shop, shop_summary, segment_sizes, predictions, *_later_steps()]
CORE_STEPS = 4
"""The steps before the live part (the shop, its summary, the segments, the predictions)."""
"""The demo's steps in order; each later part of the pipeline appends its own."""
