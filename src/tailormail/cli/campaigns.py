"""`tailormail campaigns`: send a one-off broadcast to a segment, now or later; list, show, cancel."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from tailormail.cli.common import JsonOption, WorkspaceOption, console, print_json, print_table, runtime_for
from tailormail.clock import from_ms, to_ms
from tailormail.journeys import campaigns as c
from tailormail.journeys.definitions import send_policy
from tailormail.store import campaigns as q

if TYPE_CHECKING:
    from tailormail.runtime import Runtime

app = typer.Typer(help="One-off broadcasts: send, list, show, cancel.", no_args_is_help=True)


@app.command("send")
def send(
    template: Annotated[str, typer.Argument(help="The template to send (a name in templates/).")],
    segment: Annotated[str, typer.Option(help="The segment to send to, as it is at send time.")],
    at: Annotated[
        str | None,
        typer.Option(help="When: ISO date-time (workspace timezone unless given) or +30m / +2h / +1d; default now."),
    ] = None,
    ab: Annotated[str | None, typer.Option(help="What to A/B test: 'subject' (give two or more --subject).")] = None,
    subject: Annotated[
        list[str] | None, typer.Option(help="A subject line variant (repeat for A/B); one replaces the template's.")
    ] = None,
    holdout: Annotated[
        str | None, typer.Option(help="Share of the segment that receives nothing, to measure lift, e.g. 10%.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="The campaign's name (default: TEMPLATE-YYYYMMDD-HHMM).")] = None,
    transactional: Annotated[
        bool, typer.Option(help="Transactional mail: exempt from quiet hours and the frequency cap.")
    ] = False,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check the template, then send it to everyone in the segment (or schedule it); the worker delivers."""
    subjects = tuple(subject or ())
    with runtime_for(workspace) as rt:
        now_ms = to_ms(rt.clock.now())
        campaign = c.request(
            template, segment, now_ms=now_ms, timezone=rt.settings.timezone, at=at, ab=ab,
            subjects=subjects, holdout=holdout, name=name, transactional=transactional,
        )  # fmt: skip
        send_at = campaign.send_at_ms
        with rt.store.begin() as conn:
            c.schedule(rt.settings, conn, campaign, now_ms)
        if send_at <= now_ms:
            _decide_now(rt, now_ms)
        with rt.store.read() as conn:
            summary = c.summary(conn, campaign.name)
    if subjects and ab is None:  # one --subject: it replaces the template's
        console.print(
            "[yellow]note:[/] a single --subject needs --ab subject to be used; the template's subject is sent"
        )
    if as_json:
        print_json(summary)
        return
    _print_summary(summary)
    if summary["status"] == "scheduled":
        console.print(f"Scheduled for {from_ms(send_at).isoformat()}; a running `tailormail worker` sends it.")
    else:
        console.print("Queued in the outbox; `tailormail worker` (or `serve`) delivers it.")


def _decide_now(rt: Runtime, now_ms: int) -> None:
    """Resolve the segment and decide every member now, batch by batch, each batch its own transaction."""
    from tailormail.runtime import journey_effects

    settings = rt.settings
    with rt.store.begin() as conn:
        c.resolve_due(conn, settings, now_ms)
    effects, policy = journey_effects(settings), send_policy(settings)
    while True:
        with rt.store.begin() as conn:
            if not c.send_due(conn, effects, policy, now_ms, timezone=settings.timezone).decided:
                break
    with rt.store.begin() as conn:
        c.finish_done(conn, now_ms)


@app.command("list")
def list_campaigns(workspace: WorkspaceOption = None, as_json: JsonOption = False) -> None:
    """Every campaign with its segment, moment, state and counts."""
    with runtime_for(workspace) as rt, rt.store.read() as conn:
        summaries = [c.summary(conn, row["name"]) for row in q.list_campaigns(conn)]
    columns = ["campaign", "template", "segment", "send at", "status", "people", "queued", "holdout", "skipped", "sent"]
    rows = []
    for s in summaries:
        states = c.totals(s["arms"])
        skipped = sum(n for k, n in states.items() if k.startswith("skipped"))
        rows.append(
            [
                s["name"],
                s["template"],
                s["segment"],
                from_ms(s["send_at"]).strftime("%Y-%m-%d %H:%M"),
                s["status"],
                sum(states.values()),
                states.get("queued", 0),
                states.get("holdout", 0),
                skipped,
                s["delivery"].get("sent", 0),
            ]
        )
    if as_json:
        print_json([dict(zip(columns, r, strict=True)) for r in rows])
    elif rows:
        print_table("Campaigns", columns, rows)
    else:
        console.print("No campaigns yet: `tailormail campaigns send TEMPLATE --segment NAME`.")


@app.command("show")
def show(name: str, workspace: WorkspaceOption = None, as_json: JsonOption = False) -> None:
    """One campaign: people per arm and state (queued, holdout, skipped and why) and delivery."""
    with runtime_for(workspace) as rt, rt.store.read() as conn:
        summary = c.summary(conn, name)
    if as_json:
        print_json(summary)
    else:
        _print_summary(summary)


@app.command("cancel")
def cancel(name: str, workspace: WorkspaceOption = None) -> None:
    """Stop a scheduled or sending campaign; people not yet decided get nothing."""
    with runtime_for(workspace) as rt, rt.store.begin() as conn:
        c.cancel(conn, name, to_ms(rt.clock.now()))
    console.print(f"Cancelled {name}.")


def _print_summary(summary: dict[str, object]) -> None:
    arms: dict[str, dict[str, int]] = summary["arms"]  # type: ignore[assignment]
    subjects = list(summary.get("subjects") or [])  # type: ignore[call-overload]
    states = sorted({state for counts in arms.values() for state in counts})
    rows = []
    for arm, counts in sorted(arms.items()):
        label = arm
        if arm in c.ARM_NAMES and subjects:
            label = f"{arm}: {subjects[c.ARM_NAMES.index(arm)]}"
        rows.append([label, *(counts.get(state, 0) for state in states), sum(counts.values())])
    title = (
        f"{summary['name']}: {summary['template']} to {summary['segment']} ({summary['status']}, "
        f"{from_ms(int(summary['send_at'])).strftime('%Y-%m-%d %H:%M')} UTC)"  # type: ignore[call-overload]
    )
    if rows:
        print_table(title, ["arm", *states, "people"], rows)
    else:
        console.print(title + ": not sent yet")
    delivery: dict[str, int] = summary["delivery"]  # type: ignore[assignment]
    if delivery:
        console.print("Delivery: " + ", ".join(f"{k} {v:,}" for k, v in sorted(delivery.items())))
