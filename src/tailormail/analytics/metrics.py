"""Email metrics by any grouping, with last-touch conversion attribution.

Sends come from the outbox; deliveries, bounces, opens, clicks,
unsubscribes and spam complaints are events, which carry the email's idempotency key; conversions are goal events
credited to the last email the person clicked within the attribution window,
else the last one they opened.  Automated hits (proxies, scanners) are left
out unless asked for.
"""

from __future__ import annotations

import bisect
import itertools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from tailormail.analytics.membership import NO_SEGMENT, memberships
from tailormail.store import analytics as q

DIMENSIONS = ("campaign", "journey", "node", "template", "variant", "segment", "day")
"""What metrics can be grouped by (an email counts in every segment its recipient was in when it went out)."""

DAY_MS = 86_400_000
DELIVERY_EVENTS = ("email_delivered", "email_bounced")
"""What the send loop writes back (see track.delivery): delivered and bounced count from these."""
COMPLAINT_EVENT = "email_complained"
"""A mailbox provider's spam report on one email (see track.complaints)."""


@dataclass
class Metrics:
    """Counts and rates of one group of emails."""

    group: dict[str, Any]
    sent: int = 0
    delivered: int = 0
    bounced: int = 0
    opened: int = 0
    clicked: int = 0
    unsubscribed: int = 0
    complained: int = 0
    conversions: int = 0
    revenue: float = 0.0

    @property
    def bounce_rate(self) -> float:
        """Bounced emails per email sent."""
        return _ratio(self.bounced, self.sent)

    @property
    def open_rate(self) -> float:
        """Unique opens per delivered email."""
        return _ratio(self.opened, self.delivered)

    @property
    def click_rate(self) -> float:
        """Unique clicks per delivered email (click-through rate)."""
        return _ratio(self.clicked, self.delivered)

    @property
    def click_to_open_rate(self) -> float:
        """Unique clicks per unique open."""
        return _ratio(self.clicked, self.opened)

    @property
    def conversion_rate(self) -> float:
        """Attributed conversions per delivered email."""
        return _ratio(self.conversions, self.delivered)

    @property
    def revenue_per_recipient(self) -> float:
        """Attributed revenue per delivered email."""
        return self.revenue / self.delivered if self.delivered else 0.0

    @property
    def unsubscribe_rate(self) -> float:
        """Unsubscribes from these emails per delivered email."""
        return _ratio(self.unsubscribed, self.delivered)

    @property
    def complaint_rate(self) -> float:
        """Spam complaints per delivered email (mailbox providers start filtering above about 0.1 %)."""
        return _ratio(self.complained, self.delivered)

    def as_dict(self) -> dict[str, Any]:
        """Counts and rates, flat, for tables and JSON."""
        return {
            **self.group,
            "sent": self.sent,
            "delivered": self.delivered,
            "bounced": self.bounced,
            "bounce_rate": self.bounce_rate,
            "opened": self.opened,
            "clicked": self.clicked,
            "open_rate": self.open_rate,
            "click_rate": self.click_rate,
            "click_to_open_rate": self.click_to_open_rate,
            "conversions": self.conversions,
            "conversion_rate": self.conversion_rate,
            "revenue": round(self.revenue, 2),
            "revenue_per_recipient": self.revenue_per_recipient,
            "unsubscribed": self.unsubscribed,
            "unsubscribe_rate": self.unsubscribe_rate,
            "complained": self.complained,
            "complaint_rate": self.complaint_rate,
        }


@dataclass(frozen=True)
class Column:
    """One column of the metrics table, as the CLI and the report show it."""

    label: str
    attribute: str
    style: str = "count"
    """count, rate (one decimal), small rate (two decimals: conversions, complaints) or money."""
    short: str = ""
    """The heading in a terminal, where 15 full headings do not fit (empty: the report only)."""

    def cell(self, m: Metrics) -> Any:
        """The value of ``m`` in this column, formatted for a table."""
        value = getattr(m, self.attribute)
        if self.style == "rate":
            return f"{value:.1%}"
        if self.style == "small rate":
            return f"{value:.2%}"
        return float(value) if self.style == "money" else value


COLUMNS = (
    Column("sent", "sent", short="sent"),
    Column("delivered", "delivered", short="deliv."),
    Column("bounced", "bounced"),
    Column("bounce rate", "bounce_rate", "rate", "bounce"),
    Column("open rate", "open_rate", "rate", "open"),
    Column("click rate", "click_rate", "rate", "click"),
    Column("click-to-open", "click_to_open_rate", "rate", "CTOR"),
    Column("conversions", "conversions", short="conv."),
    Column("conversion rate", "conversion_rate", "small rate", "conv. %"),
    Column("revenue", "revenue", "money", "revenue"),
    Column("revenue / recipient", "revenue_per_recipient", "money", "rev./rcpt"),
    Column("unsubscribed", "unsubscribed"),
    Column("unsubscribe rate", "unsubscribe_rate", "small rate", "unsub."),
    Column("spam complaints", "complained", short="spam"),
    Column("complaint rate", "complaint_rate", "small rate", "spam %"),
)
"""The metrics table's columns after the grouping ones (every count and rate is also in ``as_dict``).

The terminal's headings: deliv. delivered, bounce/open/click rates, CTOR click-to-open rate,
conv. conversions, rev./rcpt revenue per delivered email, unsub. unsubscribe rate, spam complaints.
"""


@dataclass
class EmailOutcome:
    """One sent email and what its recipient did with it."""

    send: dict[str, Any]
    delivery: str | None = None
    """``email_delivered`` or ``email_bounced`` when the send loop wrote the outcome back as an event."""
    opened: bool = False
    clicked: bool = False
    unsubscribed: bool = False
    complained: bool = False
    conversions: int = 0
    revenue: float = 0.0


@dataclass
class _Touches:
    """Per person, the times and keys of their real opens and clicks, sorted by time."""

    opens: dict[int, list[tuple[int, str]]] = field(default_factory=lambda: defaultdict(list))
    clicks: dict[int, list[tuple[int, str]]] = field(default_factory=lambda: defaultdict(list))


def compute(
    conn: Connection,
    by: Sequence[str],
    *,
    goal_event: str,
    attribution_days: float,
    include_automated: bool = False,
    emails: dict[str, EmailOutcome] | None = None,
) -> list[Metrics]:
    """Metrics grouped by ``by`` (any of DIMENSIONS), biggest groups first (``emails``: reuse outcomes)."""
    if emails is None:
        emails = outcomes(
            conn, goal_event=goal_event, attribution_days=attribution_days, include_automated=include_automated
        )
    if "segment" in by:
        _add_segments(conn, emails.values())
    return _group(emails.values(), by)


def _add_segments(conn: Connection, emails: Iterable[EmailOutcome]) -> None:
    """Note on each send the segments its recipient was in when it went out."""
    emails = list(emails)
    history = memberships(conn, {e.send["profile_id"] for e in emails if e.send["profile_id"] is not None})
    for e in emails:
        member = history.get(e.send["profile_id"])
        at = e.send["sent_at"] or e.send["created_at"]
        e.send["segment"] = member.segments_at(at) if member else [NO_SEGMENT]


def outcomes(
    conn: Connection, *, goal_event: str, attribution_days: float, include_automated: bool = False
) -> dict[str, EmailOutcome]:
    """Every email by idempotency key, with its opens, clicks, unsubscribe and attributed conversions."""
    emails = {row["idempotency_key"]: EmailOutcome(row) for row in q.sends(conn)}
    by_outbox_id = {e.send["id"]: e for e in emails.values()}
    touches = _Touches()
    named = ["email_opened", "email_clicked", "unsubscribed", COMPLAINT_EVENT, *DELIVERY_EVENTS]
    for event in q.events_named(conn, named):
        _apply_hit(emails, by_outbox_id, touches, event, include_automated)
    for table in (touches.opens, touches.clicks):
        for times in table.values():
            times.sort()
    window = int(attribution_days * DAY_MS)
    touched = [times[0][0] for table in (touches.opens, touches.clicks) for times in table.values()]
    if not touched:
        return emails  # no real open or click: nothing to credit
    latest = max(times[-1][0] for table in (touches.opens, touches.clicks) for times in table.values())
    # Only goals between the first touch and the last touch's window can be credited: read just those.
    for _, profile_id, ts, revenue in q.goal_events(conn, [goal_event], since=min(touched), until=latest + window):
        key = _credited(touches, profile_id, ts, window)
        if key in emails:
            emails[key].conversions += 1
            emails[key].revenue += revenue
    return emails


def _apply_hit(
    emails: dict[str, EmailOutcome],
    by_outbox_id: dict[int, EmailOutcome],
    touches: _Touches,
    event: dict[str, Any],
    include_automated: bool,
) -> None:
    props = event["properties"] or {}
    if event["event"] in DELIVERY_EVENTS:
        match = emails.get(props.get("message_key"))  # type: ignore[arg-type]
        if match and match.delivery != "email_bounced":  # a bounce after a delivery (async DSN) wins
            match.delivery = event["event"]
        return
    if event["event"] == "unsubscribed":
        match = by_outbox_id.get(props.get("outbox_id"))  # type: ignore[arg-type]
        if match:
            match.unsubscribed = True
        return
    key = props.get("message_key")
    if event["event"] == COMPLAINT_EVENT:  # a person pressed "spam": never automated
        if key in emails:
            emails[key].complained = True
        return
    if key not in emails or (props.get("automated") and not include_automated):
        return
    if event["event"] == "email_opened":
        emails[key].opened = True
        touches.opens[event["profile_id"]].append((event["ts"], key))
    else:
        emails[key].clicked = True
        emails[key].opened = True  # a click implies the email was opened, whatever the pixel saw
        touches.clicks[event["profile_id"]].append((event["ts"], key))


def _credited(touches: _Touches, profile_id: int, at: int, window: int) -> str | None:
    """The email credited for a goal at ``at``: the last click in the window, else the last open."""
    for table in (touches.clicks, touches.opens):
        times = table.get(profile_id)
        if times:
            i = bisect.bisect_right(times, (at, "\uffff")) - 1
            if i >= 0 and at - times[i][0] <= window:
                return times[i][1]
    return None


def _group(emails: Iterable[EmailOutcome], by: Sequence[str]) -> list[Metrics]:
    groups: dict[tuple[Any, ...], Metrics] = {}
    for e in emails:
        for key in itertools.product(*(_values(e.send, d) for d in by)):
            m = groups.get(key)
            if m is None:
                m = groups[key] = Metrics(dict(zip(by, key, strict=True)))
            _add(m, e)
    return sorted(groups.values(), key=lambda m: (-m.sent, str(m.group)))


def _add(m: Metrics, e: EmailOutcome) -> None:
    # The events say what became of the email; the outbox status stands in where none was written.
    status = {"email_delivered": "sent", "email_bounced": "bounced"}.get(e.delivery or "", e.send["status"])
    if status in ("sent", "bounced"):
        m.sent += 1
        m.delivered += status == "sent"
        m.bounced += status == "bounced"
    m.opened += e.opened
    m.clicked += e.clicked
    m.unsubscribed += e.unsubscribed
    m.complained += e.complained
    m.conversions += e.conversions
    m.revenue += e.revenue


def _values(send: dict[str, Any], dimension: str) -> list[Any]:
    """The group(s) an email falls in along one dimension (several segments at once)."""
    if dimension == "day":
        at = send["sent_at"] or send["created_at"]
        return [datetime.fromtimestamp(at / 1000, UTC).date().isoformat()]
    value = send[dimension]
    return value if isinstance(value, list) else [value]


def _ratio(a: int, b: int) -> float:
    return a / b if b else 0.0
