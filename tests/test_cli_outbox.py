"""`tailormail outbox` through Typer's runner on a real workspace."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tailormail.cli import app
from tailormail.deliver import Email, enqueue_many
from tailormail.deliver.memory import MemoryTransport
from tailormail.deliver.service import open_sender
from tailormail.deliver.transport import SendResult
from tailormail.runtime import open_runtime

runner = CliRunner()


def outbox(workspace: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["outbox", *args, "--workspace", str(workspace)])
    return result.exit_code, result.output


def seed(workspace: Path) -> None:
    """Two sent messages and one bounce, through the real send loop."""
    rt = open_runtime(workspace)
    mails = [
        Email(
            key=f"k{i}", to=f"p{i}@example.org", mime=b"From: a@shop.example\r\nSubject: s\r\n\r\nhi\r\n", campaign="c"
        )
        for i in range(3)
    ]
    with rt.store.begin() as conn:
        enqueue_many(conn, mails, now_ms=0)
    sender = open_sender(rt, MemoryTransport({"p2@example.org": [SendResult(550, "no such user")]}))
    sender.run_round()
    sender.close()
    rt.close()


def test_list_show_and_json(workspace: Path) -> None:
    seed(workspace)
    code, output = outbox(workspace, "list")
    assert code == 0 and "p0@" in output and "sent: 2" in output and "bounced: 1" in output
    code, output = outbox(workspace, "list", "--status", "bounced", "--json")
    data = json.loads(output)
    assert [m["recipient"] for m in data["messages"]] == ["p2@example.org"] and data["counts"]["sent"] == 2
    code, output = outbox(workspace, "show", "3")
    assert code == 0 and "550" in output and "no such user" in output and "Subject: s" in output
    assert outbox(workspace, "list", "--status", "lost")[0] == 65
    assert outbox(workspace, "show", "99")[0] == 3


def test_suppress_unsuppress_and_retry(workspace: Path) -> None:
    seed(workspace)
    code, output = outbox(workspace, "suppressions", "--json")
    assert [(s["address"], s["reason"]) for s in json.loads(output)] == [("p2@example.org", "bounce")]
    assert outbox(workspace, "unsuppress", "P2@example.org")[0] == 0
    assert outbox(workspace, "unsuppress", "p2@example.org")[0] == 3
    assert outbox(workspace, "retry", "3")[0] == 0
    code, output = outbox(workspace, "retry", "1")
    assert code == 65 and "is sent" in output
    code, output = outbox(workspace, "suppress", "x@example.org", "--reason", "unsubscribe")
    assert code == 0 and "Suppressed x@example.org" in output
    code, output = outbox(workspace, "suppress", "not-an-address")
    assert code == 65 and "not an email address" in output
