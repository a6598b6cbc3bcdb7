"""Experiment observations from what was sent: campaign variants and their outcomes per recipient."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import Connection

from tailormail.analytics.metrics import EmailOutcome
from tailormail.analytics.verdicts import Observations
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
        for event in q.events_named(conn, [goal_event]):
            if start <= event["ts"] < end:
                _, revenue = outcome.get(event["profile_id"], (0.0, 0.0))
                outcome[event["profile_id"]] = (1.0, revenue + float(event["revenue"] or 0.0))
        arms: dict[str, dict[str, list[float]]] = {}
        for member in members:
            arm = arms.setdefault(
                "holdout" if member["arm"] == "holdout" else "treated", {"converted": [], "revenue": []}
            )
            converted, revenue = outcome.get(member["profile_id"], (0.0, 0.0))
            arm["converted"].append(converted)
            arm["revenue"].append(revenue)
        if len(arms) == 2:
            found.append(SendExperiment(f"campaign {campaign['name']} vs holdout", "holdout", arms))  # type: ignore[arg-type]
    return found
