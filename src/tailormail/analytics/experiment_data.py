"""Experiment observations from what was sent: campaign variants and their outcomes per recipient."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from tailormail.analytics.metrics import EmailOutcome
from tailormail.analytics.verdicts import Observations

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
