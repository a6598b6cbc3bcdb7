"""Experiment observations: campaign and send-step variants per recipient, and journey splits per person."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import Connection

from tailormail.analytics.experiments import ExperimentResult
from tailormail.analytics.metrics import DAY_MS, EmailOutcome, outcomes
from tailormail.analytics.verdicts import Observations, analyze
from tailormail.config import Settings
from tailormail.errors import TailormailError
from tailormail.store import analytics as q
from tailormail.store import campaigns as campaign_q

METRICS = ("clicked", "converted", "revenue")
"""What every send experiment is judged on: click-through, conversion (0/1) and revenue per recipient."""


@dataclass(frozen=True)
class SendExperiment:
    """One campaign (or journey step) whose recipients got different variants."""

    name: str
    control: str
    observations: Observations
    weights: dict[str, float] | None = None
    """The planned share of each arm, for the sample-ratio check (None: equal shares)."""


def send_experiments(emails: dict[str, EmailOutcome]) -> list[SendExperiment]:
    """Every campaign or journey step with two or more variants among its delivered emails."""
    groups: dict[str, dict[str, dict[str, list[float]]]] = defaultdict(dict)
    for email in emails.values():
        send = email.send
        if send["status"] != "sent" or not send.get("variant"):
            continue
        name = f"campaign {send['campaign']}" if send.get("campaign") else f"journey {send['journey']} / {send['node']}"
        arm = groups[name].setdefault(str(send["variant"]), {m: [] for m in METRICS})
        arm["clicked"].append(float(email.clicked))
        arm["converted"].append(float(email.conversions > 0))
        arm["revenue"].append(email.revenue)
    out = []
    for name, arms in sorted(groups.items()):
        if len(arms) >= 2:
            control = "control" if "control" in arms else sorted(arms)[0]
            out.append(SendExperiment(name, control, arms))  # type: ignore[arg-type]
    return out


SPLIT_METRICS = ("converted", "revenue")
"""What a journey split is judged on, per person assigned: reached the goal (0/1), and revenue, in the window."""

HOLDOUT = "holdout"
"""The split arm that gets nothing: the control for the lift of personalization itself."""


@dataclass(frozen=True)
class SplitPlan:
    """What a journey split planned: arm weights (for the sample-ratio check) and the goal event."""

    weights: dict[str, float]
    goal: str | None = None


def split_experiments(
    conn: Connection, *, goal_event: str, window_days: float, plans: dict[tuple[str, str], SplitPlan] | None = None
) -> list[tuple[SendExperiment, dict[str, float] | None]]:
    """Every journey split node as an experiment over the people assigned to it, with its planned weights.

    Each person counts once (their first assignment); they converted when the
    goal event (the journey's own, else ``goal_event``) came within
    ``window_days`` after the assignment, and their revenue is what those
    goal events carried.  The holdout, when there is one, is the control.
    """
    plans = plans or {}
    first: dict[tuple[str, str], dict[int, tuple[str, int]]] = defaultdict(dict)
    for journey, node, pid, arm, at in q.split_assignments(conn):
        first[(journey, node)].setdefault(pid, (arm, at))
    goals = {plan.goal or goal_event for key, plan in plans.items() if key in first} | {goal_event}
    window = int(window_days * DAY_MS)
    starts = [at for people in first.values() for _, at in people.values()]
    times = _goal_times(conn, sorted(goals), min(starts, default=0), max(starts, default=0) + window)
    out = []
    for (journey, node), people in sorted(first.items()):
        plan = plans.get((journey, node))
        goal = (plan.goal if plan else None) or goal_event
        arms: dict[str, dict[str, list[float]]] = {}
        for pid, (arm, at) in people.items():
            hits = [rev for ts, rev in times.get(goal, {}).get(pid, []) if at <= ts <= at + window]
            values = arms.setdefault(arm, {m: [] for m in SPLIT_METRICS})
            values["converted"].append(float(bool(hits)))
            values["revenue"].append(sum(hits))
        if len(arms) >= 2:
            control = HOLDOUT if HOLDOUT in arms else ("control" if "control" in arms else sorted(arms)[0])
            name = f"journey {journey} / split {node}"
            weights = plan.weights if plan and set(arms) <= set(plan.weights) else None  # renamed arms: no plan
            out.append((SendExperiment(name, control, arms), weights))  # type: ignore[arg-type]
    return out


def _goal_times(
    conn: Connection, names: list[str], since: int, until: int
) -> dict[str, dict[int, list[tuple[int, float]]]]:
    """Per goal event and person: (time, revenue) of each occurrence between ``since`` and ``until`` (ms)."""
    out: dict[str, dict[int, list[tuple[int, float]]]] = defaultdict(lambda: defaultdict(list))
    for name, profile_id, ts, revenue in q.goal_events(conn, names, since=since, until=until):
        out[name][profile_id].append((ts, revenue))
    return out


def split_plans(settings: Settings) -> dict[tuple[str, str], SplitPlan]:
    """The planned weights and goal of every split in the workspace's journeys ({} when they do not load)."""
    from tailormail.journeys.definitions import load_journeys
    from tailormail.journeys.model import Split

    try:
        journeys = load_journeys(settings)
    except TailormailError:
        return {}  # invalid journey files are reported by `journeys validate`; analyse without the plan
    plans = {}
    for journey in journeys.values():
        for node_id, node in journey.nodes.items():
            if isinstance(node, Split):
                weights = {arm.name: arm.weight for arm in node.arms}
                if node.holdout:
                    weights[HOLDOUT] = node.holdout
                plans[(journey.name, node_id)] = SplitPlan(weights, journey.goal)
    return plans


def all_experiments(
    conn: Connection,
    *,
    goal_event: str,
    attribution_days: float,
    plans: dict[tuple[str, str], SplitPlan] | None = None,
    emails: dict[str, EmailOutcome] | None = None,
) -> list[tuple[str, ExperimentResult]]:
    """Every campaign A/B test, send-step variant test and journey split, analysed (``emails``: reuse outcomes)."""
    if emails is None:
        emails = outcomes(conn, goal_event=goal_event, attribution_days=attribution_days)
    splits = split_experiments(conn, goal_event=goal_event, window_days=attribution_days, plans=plans)
    holdouts = holdout_experiments(conn, goal_event=goal_event, attribution_days=attribution_days)
    return (
        [(e.name, analyze(e.observations, e.control, METRICS)) for e in send_experiments(emails)]
        + [(e.name, analyze(e.observations, e.control, SPLIT_METRICS, weights=w)) for e, w in splits]
        + [(e.name, analyze(e.observations, e.control, LIFT_METRICS, weights=e.weights)) for e in holdouts]
    )


LIFT_METRICS = ("converted", "revenue")
"""What a holdout is judged on: whether the person converted, and their revenue, after the send."""


def holdout_experiments(conn: Connection, *, goal_event: str, attribution_days: float) -> list[SendExperiment]:
    """Every campaign with a holdout: its recipients against the holdout, on goal events after the send.

    Intention to treat: everyone assigned to an arm that was not held out counts
    as treated, whether or not their email was sent (skipped for the cap, say),
    so the comparison is between the two randomly assigned groups.
    """
    found = []
    for campaign in campaign_q.list_campaigns(conn):
        if not campaign["holdout"] or campaign["resolved_at"] is None:
            continue
        members = campaign_q.arms_of(conn, campaign["name"])
        start = int(campaign["resolved_at"])
        end = start + int(attribution_days * 86_400_000)
        outcome: dict[int, tuple[float, float]] = {}
        for _, profile_id, _ts, revenue in q.goal_events(conn, [goal_event], since=start, until=end - 1):
            _, total = outcome.get(profile_id, (0.0, 0.0))
            outcome[profile_id] = (1.0, total + revenue)
        arms: dict[str, dict[str, list[float]]] = {}
        for member in members:
            arm = arms.setdefault(
                "holdout" if member["arm"] == "holdout" else "treated", {"converted": [], "revenue": []}
            )
            converted, revenue = outcome.get(member["profile_id"], (0.0, 0.0))
            arm["converted"].append(converted)
            arm["revenue"].append(revenue)
        if len(arms) == 2:
            share = float(campaign["holdout"])
            weights = {"holdout": share, "treated": 1.0 - share}
            name = f"campaign {campaign['name']} vs holdout"
            found.append(SendExperiment(name, "holdout", arms, weights))  # type: ignore[arg-type]
    return found
