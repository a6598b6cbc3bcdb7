"""The pure step function: from a run, its node and ``now``, the next actions.

Nothing here touches a database, a clock or the network.  What the step needs
to know about the person (does a rule hold, their timezone, how many marketing
emails they got lately, whether they are suppressed) comes in as ``Facts``;
what it decides goes out as actions that the runner persists, each with an
idempotency key built from the run, the node and the attempt, so replaying a
step after a crash cannot send twice.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tailormail.journeys import model as m
from tailormail.segments import rules as r

MAX_STEPS = 1000
"""Nodes one step may pass through; the parser refuses loops without a wait, this is a backstop."""


@dataclass(frozen=True)
class SendPolicy:
    """Workspace rules applied to every marketing send."""

    cap_count: int = 3
    """At most this many marketing emails per person ..."""
    cap_days: int = 7
    """... in this many days (transactional mail is exempt)."""
    quiet_start: str = "21:00"
    """Quiet hours start (person's local time): sends wait until they end."""
    quiet_end: str = "08:00"


class Facts(Protocol):
    """What a step may ask about the person; the runner answers from the store."""

    def holds(self, rule: r.Condition) -> bool:
        """Whether a segment-language rule holds for the person now."""
        ...

    def timezone(self) -> str:
        """The person's IANA timezone (the workspace's when unknown)."""
        ...

    def trait(self, path: tuple[str, ...]) -> Any:
        """A trait's value, or None."""
        ...

    def marketing_sent_since(self, since_ms: int) -> int:
        """How many marketing emails the person was sent since then."""
        ...

    def suppressed(self) -> bool:
        """Whether the person's address is suppressed or unsubscribed."""
        ...


# --- actions -------------------------------------------------------------------


@dataclass(frozen=True)
class SendEmail:
    """Render ``template`` for the person and put it in the outbox."""

    node: str
    template: str
    key: str
    subject_variant: int | None = None


@dataclass(frozen=True)
class Skipped:
    """A send that policy stopped (frequency cap, suppression): recorded, not sent."""

    node: str
    reason: str


@dataclass(frozen=True)
class Sleep:
    """Park the run; wake it at ``due_ms`` and continue at ``resume`` (None ends the run)."""

    node: str
    due_ms: int
    resume: str | None
    reason: str


@dataclass(frozen=True)
class AwaitEvent:
    """Park the run until ``event`` (with filters) or the timeout, then go on accordingly."""

    node: str
    event: str
    where: tuple[r.Compare, ...]
    timeout_ms: int
    on_event: str | None
    on_timeout: str | None


@dataclass(frozen=True)
class Assigned:
    """The person was assigned an arm of a split (or the holdout)."""

    node: str
    arm: str


@dataclass(frozen=True)
class SetTraits:
    """Update the person's traits."""

    node: str
    traits: dict[str, Any]


@dataclass(frozen=True)
class CallWebhook:
    """POST to a URL through the outbound client."""

    node: str
    url: str
    key: str


@dataclass(frozen=True)
class Passed:
    """The run went through a node (counted by `journeys show`)."""

    node: str


@dataclass(frozen=True)
class Finished:
    """The run ended."""

    reason: str


Action = SendEmail | Skipped | Sleep | AwaitEvent | Assigned | SetTraits | CallWebhook | Passed | Finished


@dataclass
class Step:
    """What one step decided: the actions in order and where the run now is."""

    actions: list[Action] = field(default_factory=list)
    position: str | None = None
    """The node the run is parked at (None once finished)."""
    finished: bool = False


def step(
    journey: m.Journey,
    run_id: int,
    profile_id: int,
    node_id: str | None,
    now_ms: int,
    facts: Facts,
    policy: SendPolicy,
    attempt: int = 0,
) -> Step:
    """Run from ``node_id`` until the run must wait or ends."""
    out = Step()
    current = node_id
    for _ in range(MAX_STEPS):
        if current is None:
            out.actions.append(Finished("completed"))
            out.finished = True
            return out
        node = journey.nodes[current]
        nxt, parked = _visit(journey, current, node, run_id, profile_id, now_ms, facts, policy, attempt, out)
        if parked:
            out.position = current
            return out
        current = nxt
    raise RuntimeError(f"journey {journey.name}: more than {MAX_STEPS} steps without a wait")


def _visit(
    journey: m.Journey,
    node_id: str,
    node: m.Node,
    run_id: int,
    profile_id: int,
    now_ms: int,
    facts: Facts,
    policy: SendPolicy,
    attempt: int,
    out: Step,
) -> tuple[str | None, bool]:
    """Apply one node; return (the next node, whether the run is parked here)."""
    key = f"{journey.name}:{run_id}:{node_id}:{attempt}"
    if isinstance(node, m.Exit):
        out.actions += [Passed(node_id), Finished("exit")]
        out.finished = True
        return None, True
    if isinstance(node, m.Send):
        return _send(journey, node_id, node, profile_id, now_ms, facts, policy, key, out)
    if isinstance(node, m.Wait):
        due = wake_time(node, now_ms, facts)
        if due is None or due <= now_ms:
            out.actions.append(Passed(node_id))
            return node.next, False
        out.actions.append(Sleep(node_id, due, node.next, "wait"))
        return None, True
    if isinstance(node, m.WaitFor):
        out.actions.append(
            AwaitEvent(node_id, node.event, node.where, now_ms + node.timeout_ms, node.then, node.otherwise)
        )
        return None, True
    out.actions.append(Passed(node_id))
    if isinstance(node, m.Branch):
        return (node.then if facts.holds(node.rule) else node.otherwise), False
    if isinstance(node, m.Split):
        arm = assign_arm(journey.name, node_id, profile_id, node)
        out.actions.append(Assigned(node_id, arm.name if arm else "holdout"))
        if arm is None:
            out.actions.append(Finished("holdout"))
            out.finished = True
            return None, True
        return arm.next, False
    if isinstance(node, m.UpdateProfile):
        out.actions.append(SetTraits(node_id, dict(node.traits)))
        return node.next, False
    assert isinstance(node, m.Webhook)
    out.actions.append(CallWebhook(node_id, node.url, key))
    return node.next, False


def _send(
    journey: m.Journey,
    node_id: str,
    node: m.Send,
    profile_id: int,
    now_ms: int,
    facts: Facts,
    policy: SendPolicy,
    key: str,
    out: Step,
) -> tuple[str | None, bool]:
    verdict = send_gate(journey.kind, now_ms, facts, policy)
    if isinstance(verdict, int):
        out.actions.append(Sleep(node_id, verdict, node_id, "quiet hours"))
        return None, True
    if verdict is not None:
        out.actions += [Passed(node_id), Skipped(node_id, verdict)]
        return node.next, False
    variant = None
    if node.subject_variants:
        variant = _bucket(f"{journey.name}:{node_id}:subject", profile_id, len(node.subject_variants))
    out.actions += [Passed(node_id), SendEmail(node_id, node.template, key, variant)]
    return node.next, False


def send_gate(kind: str, now_ms: int, facts: Facts, policy: SendPolicy) -> str | int | None:
    """The workspace's send rules for one email: None to send, a reason to skip, or when quiet hours end.

    Journey send steps and campaigns both ask this, so a person is treated the
    same whichever of them decided the email.
    """
    if facts.suppressed():
        return "suppressed"
    if kind != "marketing":
        return None  # transactional mail is exempt from quiet hours and the cap
    quiet_end = quiet_hours_end(now_ms, facts.timezone(), policy)
    if quiet_end is not None:
        return quiet_end
    if facts.marketing_sent_since(now_ms - policy.cap_days * 86_400_000) >= policy.cap_count:
        return "frequency cap"
    return None


def assign_arm(journey: str, node_id: str, profile_id: int, split: m.Split) -> m.Arm | None:
    """The person's arm (None: holdout); the same person always lands in the same arm."""
    total = sum(a.weight for a in split.arms) + split.holdout
    point = _unit(f"{journey}:{node_id}", profile_id) * total
    for arm in split.arms:
        if point < arm.weight:
            return arm
        point -= arm.weight
    return None


def _unit(salt: str, profile_id: int) -> float:
    """A uniform number in [0, 1) fixed by the salt and the person."""
    digest = hashlib.sha256(f"{salt}:{profile_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _bucket(salt: str, profile_id: int, buckets: int) -> int:
    return min(buckets - 1, int(_unit(salt, profile_id) * buckets))


def zone(name: str) -> ZoneInfo:
    """The timezone named, falling back to UTC for unknown names."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def next_local_time(now_ms: int, tz: str, hhmm: str) -> int:
    """The next moment (strictly after now) the person's clock shows ``hhmm``."""
    local = datetime.fromtimestamp(now_ms / 1000, UTC).astimezone(zone(tz))
    hours, minutes = divmod(_minutes(hhmm), 60)
    candidate = local.replace(hour=hours, minute=minutes, second=0, microsecond=0)
    if candidate <= local:
        candidate = (local + timedelta(days=1)).replace(hour=hours, minute=minutes, second=0, microsecond=0)
    return int(candidate.astimezone(UTC).timestamp() * 1000)


def quiet_hours_end(now_ms: int, tz: str, policy: SendPolicy) -> int | None:
    """When quiet hours end if the person is inside them now, else None."""
    local = datetime.fromtimestamp(now_ms / 1000, UTC).astimezone(zone(tz))
    minute = local.hour * 60 + local.minute
    start, end = _minutes(policy.quiet_start), _minutes(policy.quiet_end)
    inside = (start <= minute or minute < end) if start > end else (start <= minute < end)
    return next_local_time(now_ms, tz, policy.quiet_end) if inside else None


def wake_time(node: m.Wait, now_ms: int, facts: Facts) -> int | None:
    """When a wait node ends for this person (None: nothing to wait for)."""
    if node.duration_ms is not None:
        return now_ms + node.duration_ms
    if node.until_local is not None:
        return next_local_time(now_ms, facts.timezone(), node.until_local)
    assert node.until_trait is not None
    value = facts.trait(node.until_trait)
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone(facts.timezone()))
    return int(moment.timestamp() * 1000)
