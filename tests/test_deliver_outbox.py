"""The outbox and the send loop on a real database, with the in-memory transport and a manual clock."""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from tailormail.clock import ManualClock, to_ms
from tailormail.deliver import Email, enqueue, enqueue_many, message_id_for
from tailormail.deliver.admin import counts, retry_message, show_message, suppress
from tailormail.deliver.headers import FINISHED, UNSUBSCRIBE_PURPOSE, Finisher
from tailormail.deliver.memory import MemoryTransport
from tailormail.deliver.sender import SWITCH_INTERVAL, Sender, responsive_threads
from tailormail.deliver.settings import DeliverSettings
from tailormail.deliver.transport import Envelope, SendResult
from tailormail.errors import ValidationError
from tailormail.runtime import Runtime
from tailormail.store import deliver as queries
from tailormail.store.profiles import PROFILE_TABLES, erase_profile
from tailormail.store.schema_deliver import delivery_attempts, outbox
from tailormail.track.signing import verify


def mail(i: int, *, kind: str = "marketing", to: str | None = None, headers: str = "", **extra: Any) -> Email:
    to = to or f"p{i}@example.org"
    mime = f"From: Shop <news@shop.example>\r\nTo: {to}\r\n{headers}Subject: Hi {i}\r\n\r\nBody {i}\r\n".encode()
    return Email(key=f"campaign:c/profile:{i}", to=to, mime=mime, kind=kind, profile_id=i, campaign="c", **extra)


def make_sender(runtime: Runtime, transport: MemoryTransport, **settings: Any) -> Sender:
    options = {"retry_base_seconds": 60.0, "lease_seconds": 30.0, **settings}
    return Sender(runtime.store, runtime.clock, DeliverSettings(**options), transport, secret=runtime.settings.secret)


def put(runtime: Runtime, *emails: Email) -> dict[str, int]:
    with runtime.store.begin() as conn:
        return enqueue_many(conn, list(emails), now_ms=to_ms(runtime.clock.now()))


def status_of(runtime: Runtime, outbox_id: int) -> dict[str, Any]:
    with runtime.store.read() as conn:
        return show_message(conn, outbox_id)


def test_enqueue_is_idempotent_and_part_of_the_callers_transaction(runtime: Runtime) -> None:
    first = put(runtime, mail(1))
    again = put(runtime, mail(1), mail(2))
    assert again["campaign:c/profile:1"] == first["campaign:c/profile:1"]
    with pytest.raises(RuntimeError), runtime.store.begin() as conn:
        enqueue(conn, mail(3), now_ms=0)
        raise RuntimeError("the step that decided the email failed")
    with runtime.store.read() as conn:
        assert counts(conn)["queued"] == 2


@pytest.mark.parametrize(
    ("email", "field"),
    [
        (Email(key="", to="a@b.co", mime=b"From: x@y.co\r\n\r\n"), "key"),
        (Email(key="k", to="a@b.co", mime=b"From: x@y.co\r\n\r\n", kind="promo"), "kind"),
        (Email(key="k", to="a@b.co", mime=b"Subject: no sender\r\n\r\n"), "mime"),
        (Email(key="k", to="not-an-address", mime=b"From: x@y.co\r\n\r\n"), "to"),
    ],
)
def test_enqueue_refuses_bad_input_naming_the_field(runtime: Runtime, email: Email, field: str) -> None:
    with pytest.raises(ValidationError) as error, runtime.store.begin() as conn:
        enqueue(conn, email, now_ms=0)
    assert error.value.field == field


def test_sends_once_with_derived_message_id_and_signed_one_click_unsubscribe(
    runtime: Runtime, clock: ManualClock
) -> None:
    ids = put(runtime, mail(1), mail(2, kind="transactional"), mail(3, headers="Message-ID: <own@shop.example>\r\n"))
    transport = MemoryTransport()
    sender = make_sender(runtime, transport)
    assert sender.run_round() == 3
    assert sender.run_round() == 0, "nothing is sent twice"
    by_to = {e.recipient: e for e in transport.sent}
    marketing = by_to["p1@example.org"]
    assert marketing.message_id == message_id_for("campaign:c/profile:1", "shop.example")
    assert f"Message-ID: {marketing.message_id}\r\n".encode() in marketing.data
    head = marketing.data.split(b"\r\n\r\n")[0].decode()
    assert "List-Unsubscribe-Post: List-Unsubscribe=One-Click" in head
    token = head.split("/u/")[1].split(">")[0]
    assert f"mailto:unsubscribe@shop.example?subject={token}" in head
    payload = verify(runtime.settings.secret, UNSUBSCRIBE_PURPOSE, token)
    assert payload == {"email": "p1@example.org", "profile_id": 1, "outbox_id": ids["campaign:c/profile:1"]}
    assert b"List-Unsubscribe" not in by_to["p2@example.org"].data, "receipts carry no unsubscribe link"
    own = by_to["p3@example.org"]
    assert own.message_id == "<own@shop.example>" and own.data.count(b"Message-ID") == 1
    row = status_of(runtime, ids["campaign:c/profile:1"])
    assert row["status"] == "sent" and row["sent_at"] == to_ms(clock.now())
    assert [(a["result"], a["smtp_code"]) for a in row["attempt_log"]] == [("sent", 250)]


def test_not_before_holds_mail_until_its_time(runtime: Runtime, clock: ManualClock) -> None:
    later = to_ms(clock.now() + timedelta(hours=1))
    put(runtime, mail(1, not_before_ms=later))
    transport = MemoryTransport()
    sender = make_sender(runtime, transport)
    assert sender.run_round() == 0
    clock.advance(timedelta(hours=1))
    assert sender.run_round() == 1 and len(transport.sent) == 1


def test_temporary_failures_retry_with_backoff_then_fail(runtime: Runtime, clock: ManualClock) -> None:
    ids = put(runtime, mail(1), mail(2))
    busy = [SendResult(451, "greylisted")] * 3
    transport = MemoryTransport(
        {"p1@example.org": [SendResult(421, "busy"), SendResult(250, "ok")], "p2@example.org": busy}
    )
    sender = make_sender(runtime, transport, max_attempts=3)
    sender.run_round()
    first = status_of(runtime, ids["campaign:c/profile:1"])
    assert first["status"] == "queued" and first["last_error"] == "421 busy"
    second = status_of(runtime, ids["campaign:c/profile:2"])
    wait = min(first["next_attempt_at"], second["next_attempt_at"]) - to_ms(clock.now())
    assert 30_000 <= wait <= 60_000
    clock.advance(timedelta(milliseconds=wait - 1))
    assert sender.run_round() == 0, "no retry before its time"
    clock.advance(timedelta(minutes=10))
    sender.run_round()
    clock.advance(timedelta(minutes=10))
    sender.run_round()
    done = status_of(runtime, ids["campaign:c/profile:1"])
    assert done["status"] == "sent" and [a["result"] for a in done["attempt_log"]] == ["deferred", "sent"]
    failed = status_of(runtime, ids["campaign:c/profile:2"])
    assert failed["status"] == "failed" and failed["attempts"] == 3
    assert [a["result"] for a in failed["attempt_log"]] == ["deferred", "deferred", "failed"]


def test_a_bounce_suppresses_the_address_for_every_later_mail(runtime: Runtime) -> None:
    ids = put(runtime, mail(1))
    transport = MemoryTransport({"p1@example.org": [SendResult(550, "no such user")]})
    sender = make_sender(runtime, transport)
    sender.run_round()
    assert status_of(runtime, ids["campaign:c/profile:1"])["status"] == "bounced"
    later = put(runtime, Email(key="receipt:9", to="P1@example.org", mime=mail(1).mime, kind="transactional"))
    sender.run_round()
    row = status_of(runtime, later["receipt:9"])
    assert row["status"] == "suppressed" and row["last_error"] == "suppressed: bounce"
    assert len(transport.sent) == 1
    with runtime.store.read() as conn:
        assert queries.suppressed_among(conn, ["p1@example.org"]) == {"p1@example.org": "bounce"}


def test_suppression_is_checked_at_send_time_and_unsubscribes_spare_receipts(runtime: Runtime) -> None:
    ids = put(runtime, mail(1), mail(2, kind="transactional", to="p1@example.org"), mail(3))
    with runtime.store.begin() as conn:
        suppress(conn, "p1@example.org", "unsubscribe", 0)
        suppress(conn, "P3@Example.org", "complaint", 0)
    transport = MemoryTransport()
    make_sender(runtime, transport).run_round()
    assert [e.recipient for e in transport.sent] == ["p1@example.org"]
    assert "List-Unsubscribe" not in transport.sent[0].data.decode()
    assert status_of(runtime, ids["campaign:c/profile:1"])["status"] == "suppressed"
    assert status_of(runtime, ids["campaign:c/profile:3"])["attempt_log"][0]["result"] == "suppressed"


def test_an_expired_lease_is_taken_over_and_the_old_worker_cannot_record(runtime: Runtime, clock: ManualClock) -> None:
    ids = put(runtime, mail(1))
    now = to_ms(clock.now())
    with runtime.store.begin() as conn:
        [claimed] = queries.claim_due(conn, "dead-worker", now, 30_000, 10)
    transport = MemoryTransport()
    sender = make_sender(runtime, transport)
    assert sender.run_round() == 0, "a live lease is respected"
    clock.advance(timedelta(seconds=31))
    assert sender.run_round() == 1
    with runtime.store.begin() as conn:
        late = {**claimed, "status": "failed", "last_error": "x", "sent_at": None, "updated_at": now}
        keys = ("id", "status", "attempts", "next_attempt_at", "last_error", "sent_at", "updated_at")
        assert queries.finish_claimed(conn, "dead-worker", [{k: late[k] for k in keys}]) == 0
    row = status_of(runtime, ids["campaign:c/profile:1"])
    assert row["status"] == "sent" and row["attempts"] == 2
    assert [a["result"] for a in row["attempt_log"]] == ["interrupted", "sent"]
    assert transport.sent[0].message_id == row["message_id"]


def test_per_domain_rate_limit_spreads_sends_over_time(runtime: Runtime, clock: ManualClock) -> None:
    put(runtime, *(mail(i, to=f"p{i}@gmail.com") for i in range(3)), mail(9, to="p9@yahoo.com"))
    transport = MemoryTransport()
    sender = make_sender(runtime, transport, domain_rate_per_second=1.0, domain_burst=1)
    sender.run_round()
    assert sorted(e.recipient for e in transport.sent) == ["p0@gmail.com", "p9@yahoo.com"]
    clock.advance(timedelta(seconds=1))
    sender.run_round()
    assert len(transport.sent) == 3
    clock.advance(timedelta(seconds=1))
    sender.run_round()
    assert len(transport.sent) == 4
    with runtime.store.read() as conn:
        assert counts(conn)["sent"] == 4


def test_retry_requeues_failed_mail_but_never_sent_mail(runtime: Runtime) -> None:
    ids = put(runtime, mail(1), mail(2))
    transport = MemoryTransport({"p1@example.org": [SendResult(550, "no such user")]})
    sender = make_sender(runtime, transport)
    sender.run_round()
    with runtime.store.begin() as conn:
        retry_message(conn, ids["campaign:c/profile:1"], 0)
        with pytest.raises(ValidationError, match="is sent"):
            retry_message(conn, ids["campaign:c/profile:2"], 0)
    sender.run_round()
    assert status_of(runtime, ids["campaign:c/profile:1"])["status"] == "suppressed", "the bounce suppression holds"


def test_erasing_a_person_erases_their_mail_and_attempts_but_keeps_the_suppression(runtime: Runtime) -> None:
    assert (outbox, "profile_id") in PROFILE_TABLES
    ids = put(runtime, mail(1), mail(2))
    make_sender(runtime, MemoryTransport({"p1@example.org": [SendResult(550, "gone")]})).run_round()
    with runtime.store.begin() as conn:
        erase_profile(conn, 1)
    with runtime.store.read() as conn:
        assert queries.get_outbox(conn, ids["campaign:c/profile:1"]) is None
        assert queries.attempts_of(conn, ids["campaign:c/profile:1"]) == []
        assert queries.attempts_of(conn, ids["campaign:c/profile:2"]) != []
        assert queries.suppressed_among(conn, ["p1@example.org"]) == {"p1@example.org": "bounce"}


@pytest.mark.parametrize("when", ["queued", "sent"])
def test_mail_finished_when_queued_goes_out_byte_for_byte_as_if_finished_at_send_time(
    runtime: Runtime, when: str
) -> None:
    finisher = Finisher(runtime.settings.secret, DeliverSettings().base_url)
    emails = [mail(1), mail(2, kind="transactional"), mail(3, headers="Message-ID: <own@shop.example>\r\n")]
    with runtime.store.begin() as conn:
        ids = enqueue_many(
            conn, emails, now_ms=to_ms(runtime.clock.now()), finish=finisher if when == "queued" else None
        )
    transport = MemoryTransport()
    assert make_sender(runtime, transport).run_round() == 3
    by_to = {e.recipient: e for e in transport.sent}
    marketing = by_to["p1@example.org"].data
    assert marketing.startswith(FINISHED) and marketing.count(b"List-Unsubscribe:") == 1
    assert marketing.count(b"Message-ID:") == 1 and by_to["p3@example.org"].data.count(b"Message-ID:") == 1
    token = marketing.split(b"/u/")[1].split(b">")[0].decode()
    assert verify(runtime.settings.secret, UNSUBSCRIBE_PURPOSE, token)["outbox_id"] == ids["campaign:c/profile:1"]
    assert b"List-Unsubscribe" not in by_to["p2@example.org"].data
    with runtime.store.read() as conn:
        stored = queries.get_outbox(conn, ids["campaign:c/profile:1"])
    assert stored and (stored["mime"] == marketing) == (when == "queued"), "finished once, stored as sent"


def test_a_finisher_that_cannot_finish_leaves_the_mail_to_fail_alone_at_send_time(runtime: Runtime) -> None:
    finisher = Finisher(runtime.settings.secret, "https://mail.example/\r\nBcc: x")
    with runtime.store.begin() as conn:
        ids = enqueue_many(conn, [mail(1)], now_ms=to_ms(runtime.clock.now()), finish=finisher)
    transport = MemoryTransport()
    make_sender(runtime, transport, base_url=finisher.base_url).run_round()
    assert transport.sent == []
    row = status_of(runtime, ids["campaign:c/profile:1"])
    assert row["status"] == "failed" and "line break" in row["last_error"]


def test_a_batch_is_recorded_in_groups_only_where_this_worker_still_holds_each_row(runtime: Runtime) -> None:
    ids = put(runtime, *(mail(i) for i in range(20)))
    now = to_ms(runtime.clock.now())
    with runtime.store.begin() as conn:
        claimed = queries.claim_due(conn, "w1", now, 30_000, 50)
        taken = ids["campaign:c/profile:5"]
        conn.execute(outbox.update().where(outbox.c.id == taken).values(claimed_by="w2"))
        outcomes = [
            {
                "id": row["id"],
                "status": "queued" if row["id"] == ids["campaign:c/profile:7"] else "sent",
                "attempts": 1,
                "next_attempt_at": now + 60_000,
                "last_error": None,
                "sent_at": now,
                "updated_at": now,
            }
            for row in claimed
        ]
        assert queries.finish_claimed(conn, "w1", outcomes) == 19
    rows = {r["id"]: r for r in queries_rows(runtime)}
    assert rows[taken]["status"] == "sending" and rows[taken]["claimed_by"] == "w2", "another worker's row is left"
    retry = rows[ids["campaign:c/profile:7"]]
    assert retry["status"] == "queued" and retry["next_attempt_at"] == now + 60_000 and retry["claimed_by"] is None
    sent = [r for i, r in rows.items() if i not in (taken, retry["id"])]
    assert {(r["status"], r["attempts"], r["sent_at"], r["next_attempt_at"], r["lease_until"]) for r in sent} == {
        ("sent", 1, now, now, None)
    }, "a final row keeps its own next_attempt_at"


def queries_rows(runtime: Runtime) -> list[dict[str, Any]]:
    with runtime.store.read() as conn:
        return queries.list_outbox(conn, limit=1000)


class SlowRepliesTransport(MemoryTransport):
    """The memory transport, with replies that take longer than claiming two batches (as SMTP's do)."""

    def __init__(self) -> None:
        super().__init__()
        self.started: list[str] = []
        self.most_at_once = 0
        self.claims = 0

    async def send(self, envelope: Envelope) -> SendResult:
        """Note the start, wait until the second batch is claimed, then answer."""
        self.started.append(envelope.recipient)
        self.most_at_once = max(self.most_at_once, len(self.started) - len(self.sent))
        while self.claims < 2:  # no clock involved: other tasks run until the sender's thread has claimed
            await asyncio.sleep(0)
        for _ in range(20):  # and a while longer, so whatever the round would start meanwhile has started
            await asyncio.sleep(0)
        return await super().send(envelope)


def test_a_round_sends_in_claim_order_on_at_most_its_connections(runtime: Runtime, clock: ManualClock) -> None:
    # Three connections, batches of 4: the workers take one queue, oldest batch first, so
    # a later batch never starts before every message of the earlier ones has, and no more
    # than three messages are ever out at once (two batches side by side made that six).
    put(runtime, *(mail(i, not_before_ms=to_ms(clock.now()) + 11 - i) for i in range(11)))  # last queued, first due
    clock.advance(timedelta(seconds=1))
    transport = SlowRepliesTransport()
    sender = make_sender(runtime, transport, batch_size=4, connections=3)
    claim = sender.claim_batch

    def counted_claim() -> Any:
        claimed = claim()
        transport.claims += 1
        return claimed

    sender.claim_batch = counted_claim  # type: ignore[method-assign]
    assert sender.run_round() == 11
    sender.close()
    assert transport.started == [f"p{i}@example.org" for i in reversed(range(11))]
    assert transport.most_at_once == 3
    with runtime.store.read() as conn:
        assert counts(conn)["sent"] == 11
        attempts = conn.execute(select(func.count()).select_from(delivery_attempts)).scalar_one()
    assert attempts == 11


@pytest.mark.parametrize(("before", "during"), [(0.005, SWITCH_INTERVAL), (0.0001, 0.0001)])
def test_a_send_round_shortens_the_switch_interval_and_restores_it(before: float, during: float) -> None:
    saved = sys.getswitchinterval()
    sys.setswitchinterval(before)
    try:
        with responsive_threads():
            with responsive_threads():  # nested (two senders at once): restored after the outer one only
                assert sys.getswitchinterval() == pytest.approx(during, rel=0.05)
            assert sys.getswitchinterval() == pytest.approx(during, rel=0.05)
        assert sys.getswitchinterval() == pytest.approx(before, rel=0.05)
    finally:
        sys.setswitchinterval(saved)
