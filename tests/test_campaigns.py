"""Campaigns: one-off broadcasts to a segment, with subject A/B, a holdout and the journeys' send rules."""

from __future__ import annotations

import email
import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from tailormail.analytics.experiment_data import all_experiments, holdout_experiments
from tailormail.cli import app
from tailormail.clock import ManualClock, to_ms
from tailormail.deliver.admin import suppress
from tailormail.errors import NotFound, ValidationError
from tailormail.journeys import campaigns as c
from tailormail.journeys.definitions import send_policy
from tailormail.journeys.engine import SendPolicy, assign_arm
from tailormail.journeys.runner import StoreFacts
from tailormail.journeys.service import forget_runners
from tailormail.runtime import Runtime, journey_effects
from tailormail.store import campaigns as q
from tailormail.store.schema_deliver import outbox, outbox_bodies
from tailormail.worker import make_worker

PEOPLE = 40


def address(i: int) -> str:
    return f"p{i}@example.org"


def people(runtime: Runtime, n: int = PEOPLE, **extra: dict[str, object]) -> dict[str, int]:
    """Identify n people (all in new_subscribers); return user id -> profile id."""
    batch = []
    for i in range(n):
        traits: dict[str, object] = {"email": address(i), "firstName": f"P{i}", "timezone": "UTC"}
        traits.update(extra.get(f"u{i}", {}))
        batch.append({"type": "identify", "userId": f"u{i}", "traits": traits})
    runtime.ingestor.ingest_raw(batch)
    with runtime.store.read() as conn:
        rows = conn.exec_driver_sql("select id, traits from profiles").all()
    return {json.loads(t)["email"] if isinstance(t, str) else t["email"]: pid for pid, t in rows}


def campaign(runtime: Runtime, **changes: object) -> c.Campaign:
    base = {
        "name": "spring",
        "template": "newsletter",
        "segment": "new_subscribers",
        "send_at_ms": to_ms(runtime.clock.now()),
    }
    return c.Campaign(**{**base, **changes})  # type: ignore[arg-type]


def run_all(runtime: Runtime) -> None:
    """What the worker's campaign task does, until nothing is left to decide now."""
    now_ms = to_ms(runtime.clock.now())
    with runtime.store.begin() as conn:
        c.resolve_due(conn, runtime.settings, now_ms)
    effects, policy = journey_effects(runtime.settings), send_policy(runtime.settings)
    while True:
        with runtime.store.begin() as conn:
            if not c.send_due(conn, effects, policy, now_ms, limit=7).decided:
                break
    with runtime.store.begin() as conn:
        c.finish_done(conn, now_ms)


def outbox_rows(runtime: Runtime) -> list[dict[str, object]]:
    with runtime.store.read() as conn:
        stmt = select(outbox, outbox_bodies.c.mime).join(outbox_bodies, outbox_bodies.c.outbox_id == outbox.c.id)
        return [dict(r) for r in conn.execute(stmt).mappings()]


def test_a_broadcast_with_subject_ab_and_holdout_honours_the_send_rules(runtime: Runtime) -> None:
    ids = people(runtime, u3={"unsubscribed": True})
    now_ms = to_ms(runtime.clock.now())
    with runtime.store.begin() as conn:
        suppress(conn, address(5), "bounce", now_ms)
    # Person 8 already has three marketing emails this week (any journey or campaign counts) ...
    with runtime.store.begin() as conn:
        for n in range(3):
            conn.execute(outbox.insert().values(**_outbox_row(f"old:{n}", address(8), ids[address(8)], now_ms)))
        # ... and transactional mail does not count.
        conn.execute(
            outbox.insert().values(**_outbox_row("receipt", address(9), ids[address(9)], now_ms, "transactional"))
        )
    subjects = ("Spring is here", "20% off everything")
    spring = campaign(runtime, subjects=subjects, holdout=0.2)
    with runtime.store.begin() as conn:
        c.schedule(runtime.settings, conn, spring, now_ms)
    run_all(runtime)
    run_all(runtime)  # deciding again is harmless

    with runtime.store.read() as conn:
        members = {r["profile_id"]: r for r in q.arms_of(conn, "spring")}
        summary = c.summary(conn, "spring")
    assert len(members) == PEOPLE and summary["status"] == "done"
    held = {pid for pid, r in members.items() if r["arm"] == "holdout"}
    assert 2 <= len(held) <= 16 and all(members[p]["status"] == "holdout" for p in held)
    blocked = {ids[address(3)], ids[address(5)], ids[address(8)]} - held
    sent = {r["profile_id"]: r for r in outbox_rows(runtime) if r["campaign"] == "spring"}
    odd = set(sent) ^ (set(members) - held - blocked)
    assert not odd, ({p: members[p] for p in odd}, {a: p for a, p in ids.items() if p in odd})
    for pid, row in sent.items():
        arm = members[pid]["arm"]
        assert row["idempotency_key"] == c.message_key("spring", pid) and row["variant"] == arm
        subject = email.message_from_bytes(row["mime"])["Subject"]  # type: ignore[arg-type]
        assert subject == subjects["AB".index(arm)]
    assert {members[p]["arm"] for p in sent} == {"A", "B"}
    expected = {ids[address(3)]: "suppressed", ids[address(5)]: "suppressed", ids[address(8)]: "frequency cap"}
    for pid, reason in expected.items():
        if pid not in held:
            assert (members[pid]["status"], members[pid]["reason"]) == ("skipped", reason)
    if ids[address(9)] not in held:
        assert ids[address(9)] in sent, "a transactional email does not count toward the cap"
    # The same person always lands in the same arm.
    again = campaign(runtime, subjects=subjects, holdout=0.2).split()
    for pid, r in members.items():
        arm = assign_arm("campaign:spring", "send", pid, again)
        assert (arm.name if arm else "holdout") == r["arm"]


def _outbox_row(key: str, to: str, pid: int, now_ms: int, kind: str = "marketing") -> dict[str, object]:
    return {
        "idempotency_key": key,
        "message_id": f"<{key}@x>",
        "recipient": to,
        "sender": "news@shop.example",
        "profile_id": pid,
        "kind": kind,
        "not_before": now_ms,
        "status": "sent",
        "attempts": 1,
        "next_attempt_at": now_ms,
        "created_at": now_ms - 86_400_000,
        "updated_at": now_ms,
    }


def test_the_frequency_cap_counts_the_outbox_for_journeys_too(runtime: Runtime) -> None:
    ids = people(runtime, 2)
    pid = ids[address(0)]
    now_ms = to_ms(runtime.clock.now())
    with runtime.store.begin() as conn:
        conn.execute(outbox.insert().values(**_outbox_row("a", address(0), pid, now_ms)))
        conn.execute(outbox.insert().values(**_outbox_row("b", address(0), pid, now_ms, "transactional")))
        old = {**_outbox_row("c", address(0), pid, now_ms), "created_at": now_ms - 8 * 86_400_000}
        conn.execute(outbox.insert().values(**old))
        bounced = {**_outbox_row("d", address(0), pid, now_ms), "status": "bounced"}
        conn.execute(outbox.insert().values(**bounced))
        facts = StoreFacts(conn, pid, now_ms)
        assert facts.marketing_sent_since(now_ms - 7 * 86_400_000) == 1
        assert not facts.suppressed()
        suppress(conn, address(0), "complaint", now_ms)
        assert StoreFacts(conn, pid, now_ms).suppressed(), "the suppression list counts, not only the trait"


def test_quiet_hours_defer_members_until_they_end(runtime: Runtime, clock: ManualClock) -> None:
    ids = people(runtime, 3, u1={"timezone": "Asia/Tokyo"})  # noon UTC is 21:00 in Tokyo
    with runtime.store.begin() as conn:
        c.schedule(runtime.settings, conn, campaign(runtime), to_ms(clock.now()))
    run_all(runtime)
    sent = {r["profile_id"] for r in outbox_rows(runtime)}
    assert sent == {ids[address(0)], ids[address(2)]}
    with runtime.store.read() as conn:
        waiting = {r["profile_id"]: r for r in q.arms_of(conn, "spring")}[ids[address(1)]]
        assert waiting["status"] == "pending" and q.get_campaign(conn, "spring")["status"] == "sending"  # type: ignore[index]
    clock.advance(timedelta(hours=11))  # 08:00 in Tokyo
    run_all(runtime)
    assert {r["profile_id"] for r in outbox_rows(runtime)} == set(ids.values())
    with runtime.store.read() as conn:
        assert q.get_campaign(conn, "spring")["status"] == "done"  # type: ignore[index]


def test_a_rolled_back_batch_leaves_no_email_and_is_decided_again(runtime: Runtime) -> None:
    people(runtime, 5)
    now_ms = to_ms(runtime.clock.now())
    with runtime.store.begin() as conn:
        c.schedule(runtime.settings, conn, campaign(runtime), now_ms)
        c.resolve_due(conn, runtime.settings, now_ms)
    effects = journey_effects(runtime.settings)
    with pytest.raises(RuntimeError), runtime.store.begin() as conn:
        assert c.send_due(conn, effects, SendPolicy(), now_ms).queued == 5
        raise RuntimeError("the worker died before the commit")
    assert outbox_rows(runtime) == []
    run_all(runtime)
    assert len(outbox_rows(runtime)) == 5


def test_scheduled_campaigns_wait_for_their_moment_in_the_worker(runtime: Runtime, clock: ManualClock) -> None:
    forget_runners()
    people(runtime, 3)
    later = campaign(runtime, send_at_ms=to_ms(clock.now() + timedelta(hours=2)))
    with runtime.store.begin() as conn:
        c.schedule(runtime.settings, conn, later, to_ms(clock.now()))
    worker = make_worker(runtime)
    worker.run_once()
    assert outbox_rows(runtime) == []
    runtime.ingestor.ingest_raw([{"type": "identify", "userId": "late", "traits": {"email": "late@example.org"}}])
    clock.advance(timedelta(hours=2))
    worker.run_once()
    assert {r["recipient"] for r in outbox_rows(runtime)} == {address(0), address(1), address(2), "late@example.org"}
    forget_runners()


@pytest.mark.parametrize(
    ("changes", "error", "text"),
    [
        ({"segment": "new_subscriber"}, NotFound, "did you mean 'new_subscribers'"),
        ({"template": "nope"}, NotFound, "template 'nope' not found"),
        ({"template": "broken"}, ValidationError, "lint error"),
        ({"subjects": ("only one",)}, ValidationError, "two or more"),
        ({"name": "has space"}, ValidationError, "not allowed"),
    ],
)
def test_a_campaign_that_cannot_send_is_refused(
    runtime: Runtime, workspace: Path, changes: dict[str, object], error: type[Exception], text: str
) -> None:
    (workspace / "templates" / "broken.liquid").write_text(
        "---\nsubject: Hi {{ customer.firstName }\n---\n<mj-section><mj-column><mj-text>{{ nope.thing }}</mj-text>"
        "</mj-column></mj-section>\n"
    )
    with pytest.raises(error, match=text), runtime.store.begin() as conn:
        c.schedule(runtime.settings, conn, campaign(runtime, **changes), to_ms(runtime.clock.now()))
    with runtime.store.read() as conn:
        assert q.list_campaigns(conn) == []


def test_holdout_parsing() -> None:
    assert c.parse_holdout("10%") == pytest.approx(0.1) and c.parse_holdout("0.25") == 0.25
    assert c.parse_holdout(None) == 0.0
    for bad in ("ten", "60%", "-1%"):
        with pytest.raises(ValidationError, match="holdout"):
            c.parse_holdout(bad)


def test_the_cli_sends_lists_and_shows(workspace: Path) -> None:
    config = workspace / "tailormail.toml"
    config.write_text(config.read_text().replace('quiet_hours = "21:00-08:00"', 'quiet_hours = "off"'))
    from tailormail.runtime import open_runtime

    rt = open_runtime(workspace)
    people(rt, 6)
    rt.close()
    cli = CliRunner()
    args = ["campaigns", "send", "newsletter", "--segment", "new_subscribers", "--name", "news1", "-w", str(workspace)]
    sent = cli.invoke(app, [*args, "--ab", "subject", "--subject", "One", "--subject", "Two", "--holdout", "0%"])
    assert sent.exit_code == 0, sent.output
    assert "Queued in the outbox" in sent.output and "A: One" in sent.output
    listed = cli.invoke(app, ["campaigns", "list", "--json", "-w", str(workspace)])
    assert listed.exit_code == 0, listed.output
    (row,) = json.loads(listed.output)
    assert row["campaign"] == "news1" and row["people"] == 6 and row["queued"] == 6 and row["status"] == "done"
    shown = cli.invoke(app, ["campaigns", "show", "news1", "--json", "-w", str(workspace)])
    assert json.loads(shown.output)["delivery"] == {"queued": 6}
    scheduled = cli.invoke(app, [*args[:-4], "--name", "news2", "--at", "+2h", "-w", str(workspace)])
    assert scheduled.exit_code == 0 and "Scheduled for" in scheduled.output, scheduled.output
    assert cli.invoke(app, ["campaigns", "cancel", "news2", "-w", str(workspace)]).exit_code == 0
    dup = cli.invoke(app, [*args])
    assert dup.exit_code != 0 and "exists" in dup.output
    bad = cli.invoke(app, [*args[:-4], "--ab", "subject", "--subject", "x", "-w", str(workspace)])
    assert bad.exit_code != 0 and "two or more" in bad.output


def test_the_holdout_is_measured_against_the_recipients(runtime: Runtime, clock: ManualClock) -> None:
    ids = people(runtime, 30)
    with runtime.store.begin() as conn:
        c.schedule(runtime.settings, conn, campaign(runtime, holdout=0.5), to_ms(clock.now()))
    run_all(runtime)
    with runtime.store.read() as conn:
        arms = {r["profile_id"]: r["arm"] for r in q.arms_of(conn, "spring")}
    held = sorted(p for p, a in arms.items() if a == "holdout")
    treated = sorted(p for p, a in arms.items() if a != "holdout")
    users = {pid: f"u{i}" for i, pid in enumerate(ids[address(i)] for i in range(30))}
    buyers = [users[p] for p in treated[:4]] + [users[held[0]]]
    clock.advance(timedelta(hours=1))
    runtime.ingestor.ingest_raw(
        [
            {
                "type": "track",
                "userId": u,
                "event": "purchase",
                "timestamp": clock.now().isoformat(),
                "properties": {"revenue": 50.0},
            }
            for u in buyers
        ]
    )
    with runtime.store.read() as conn:
        (experiment,) = holdout_experiments(conn, goal_event="purchase", attribution_days=7)
    assert experiment.control == "holdout"
    obs = experiment.observations
    assert len(obs["holdout"]["converted"]) == len(held) and len(obs["treated"]["converted"]) == len(treated)
    assert sum(obs["treated"]["converted"]) == 4 and sum(obs["holdout"]["converted"]) == 1
    assert sum(obs["treated"]["revenue"]) == 200.0


def test_the_holdout_split_is_checked_against_its_planned_share(runtime: Runtime, clock: ManualClock) -> None:
    people(runtime, 200)
    with runtime.store.begin() as conn:
        c.schedule(runtime.settings, conn, campaign(runtime, holdout=0.1), to_ms(clock.now()))
    run_all(runtime)
    with runtime.store.read() as conn:
        results = dict(all_experiments(conn, goal_event="purchase", attribution_days=7))
    split = results["campaign spring vs holdout"].sample_ratio
    assert split.expected_share == pytest.approx({"holdout": 0.1, "treated": 0.9})
    assert 5 <= split.counts["holdout"] <= 40 and not split.mismatch  # 10 % held out is what was planned
