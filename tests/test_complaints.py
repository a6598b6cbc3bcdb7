"""Spam complaints: ARF feedback reports suppress the address and become email_complained events."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from outbox_helpers import send_plain
from tailormail.api.app import create_app
from tailormail.cli import app
from tailormail.clock import ManualClock, to_ms
from tailormail.errors import ValidationError
from tailormail.runtime import Runtime
from tailormail.store import deliver as deliver_q
from tailormail.store import keys
from tailormail.store.schema import events
from tailormail.store.schema_deliver import outbox
from tailormail.track.complaints import parse_report

USERS = ["ann", "bob"]


def arf(message_id: str, recipient: str, *, headers_only: bool = False) -> bytes:
    """A feedback report as a mailbox provider's feedback loop sends it (RFC 5965)."""
    original_type = "text/rfc822-headers" if headers_only else "message/rfc822"
    return f"""From: fbl@mailbox.example
To: abuse@shop.example
Subject: complaint about message from shop.example
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="b1"

--b1
Content-Type: text/plain

This is an email abuse report for an email message received from IP 192.0.2.1.

--b1
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: SomeFBL/1.0
Version: 1
Original-Rcpt-To: <{recipient}>
Arrival-Date: Mon, 02 Mar 2026 13:00:00 +0000

--b1
Content-Type: {original_type}

From: shop@example.com
To: {recipient}
Subject: Hi
Message-ID: {message_id}

hi
--b1--
""".replace("\n", "\r\n").encode()


@pytest.fixture
def sent(runtime: Runtime, clock: ManualClock) -> dict[str, str]:
    """One campaign email each, really sent; user -> its Message-ID."""
    runtime.ingestor.ingest_raw(
        [{"type": "identify", "userId": u, "traits": {"email": f"{u}@example.com"}} for u in USERS]
    )
    keys_of = send_plain(
        runtime, clock, {u: {"key": f"spring/{u}", "campaign": "spring", "variant": "A"} for u in USERS}
    )
    with runtime.store.read() as conn:
        ids = {r["idempotency_key"]: r["message_id"] for r in conn.execute(select(outbox)).mappings()}
    assert set(ids) == {k for k, _ in keys_of.values()}
    clock.advance(timedelta(hours=1))
    return {u: ids[f"spring/{u}"] for u in USERS}


def complaints_stored(runtime: Runtime) -> list[dict]:
    with runtime.store.read() as conn:
        stmt = select(events.c.properties, events.c.profile_id).where(events.c.event == "email_complained")
        return [dict(r) for r in conn.execute(stmt).mappings()]


@pytest.mark.parametrize("headers_only", [False, True])
def test_a_report_names_the_email_and_who_complained(headers_only: bool) -> None:
    report = parse_report(arf("<abc@shop.example>", "ann@example.com", headers_only=headers_only), "r.eml")
    assert (report.message_id, report.feedback_type, report.recipient) == (
        "<abc@shop.example>",
        "abuse",
        "ann@example.com",
    )
    assert report.arrived_ms == to_ms(datetime(2026, 3, 2, 13, 0, tzinfo=UTC))


def test_mail_that_is_not_a_report_is_refused_with_its_name() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_report(b"From: a@b.example\r\nSubject: hello\r\n\r\nhi\r\n", "inbox/17.eml")
    assert "inbox/17.eml" in caught.value.message and "feedback report" in caught.value.message


def test_importing_reports_suppresses_and_records_once(
    runtime: Runtime, sent: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "fbl" / "new"
    folder.mkdir(parents=True)
    (folder / "1.eml").write_bytes(arf(sent["ann"], "ann@example.com"))
    (folder / "2.eml").write_bytes(arf(sent["ann"], "ann@example.com"))  # the same complaint reported twice
    (folder / "3.eml").write_bytes(arf("<someone-else@other.example>", "zed@example.com"))
    monkeypatch.setenv("TAILORMAIL_WORKSPACE", str(runtime.settings.workspace))
    shown = CliRunner().invoke(app, ["complaints", "import", str(tmp_path / "fbl"), "--json"])
    assert shown.exit_code == 0, shown.output
    summary = json.loads(shown.output)
    assert summary["reports"] == 3 and summary["recorded"] == 1 and len(summary["unknown"]) == 1
    with runtime.store.read() as conn:
        assert set(deliver_q.suppressed_among(conn, ["ann@example.com", "bob@example.com"])) == {"ann@example.com"}
    (stored,) = complaints_stored(runtime)
    assert stored["properties"]["campaign"] == "spring" and stored["properties"]["variant"] == "A"
    assert stored["properties"]["message_key"] == "spring/ann"


def test_the_api_takes_one_raw_report_with_an_admin_key(
    runtime: Runtime, sent: dict[str, str], clock: ManualClock
) -> None:
    with runtime.store.begin() as conn:
        admin = keys.create_key(conn, "admin", "t", to_ms(clock.now()))[1]
    with TestClient(create_app(runtime)) as client:
        body = arf(sent["bob"], "bob@example.com")
        assert client.post("/v1/complaints", content=body).status_code == 401
        answer = client.post("/v1/complaints", content=body, headers={"Authorization": f"Bearer {admin}"})
    assert answer.status_code == 200 and answer.json() == {
        "recorded": 1,
        "suppressed": ["bob@example.com"],
        "ours": True,
    }


def test_complaints_count_in_metrics_per_campaign(
    runtime: Runtime, sent: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "fbl" / "new").mkdir(parents=True)
    (tmp_path / "fbl" / "new" / "1.eml").write_bytes(arf(sent["ann"], "ann@example.com"))
    monkeypatch.setenv("TAILORMAIL_WORKSPACE", str(runtime.settings.workspace))
    imported = CliRunner().invoke(app, ["complaints", "import", str(tmp_path / "fbl")])
    assert imported.exit_code == 0, imported.output
    shown = CliRunner().invoke(app, ["metrics", "--by", "campaign", "--json"])
    assert shown.exit_code == 0, shown.output
    (spring,) = json.loads(shown.output)
    assert (spring["delivered"], spring["complained"], spring["complaint_rate"]) == (2, 1, 0.5)
    table = CliRunner().invoke(app, ["metrics", "--by", "campaign"])
    assert "spam %" in table.output and "50.00%" in table.output
