"""Journeys, campaigns and complaints API (admin key): the same definitions and actions as the CLI."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from tailormail.api.auth import require
from tailormail.clock import to_ms
from tailormail.errors import ValidationError
from tailormail.journeys import admin
from tailormail.journeys import campaigns as c
from tailormail.journeys.dryrun import dry_run
from tailormail.runtime import Runtime
from tailormail.store import campaigns as campaign_q
from tailormail.track.complaints import parse_report, record_complaints


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise ValidationError("body is not valid JSON", field="body") from None
    if not isinstance(body, dict):
        raise ValidationError("body must be a JSON object", field="body")
    return body


def router(runtime: Runtime) -> APIRouter:
    """Routes on journeys (/v1/journeys) and campaigns (/v1/campaigns); every one needs an admin key."""
    api = APIRouter()
    settings = runtime.settings

    def now_ms() -> int:
        return to_ms(runtime.clock.now())

    @api.get("/v1/journeys")
    def list_journeys(request: Request) -> list[dict[str, Any]]:
        """Every journey with its entry in words, state and runs."""
        require(runtime, request, "admin")
        with runtime.store.read() as conn:
            return admin.overview(settings, conn)

    @api.get("/v1/journeys/{name}")
    def show_journey(name: str, request: Request) -> dict[str, Any]:
        """A journey's steps in words with how many people are at and have passed each."""
        require(runtime, request, "admin")
        with runtime.store.read() as conn:
            return admin.detail(settings, conn, name)

    @api.put("/v1/journeys/{name}")
    async def save_journey(name: str, request: Request) -> dict[str, Any]:
        """Create or replace a journey (the YAML file's shape as JSON); errors name the node and field."""
        await run_in_threadpool(require, runtime, request, "admin")
        body = await _json_object(request)

        def save() -> dict[str, Any]:
            admin.write_journey(settings, name, body)
            _forget_cached_runners()
            with runtime.store.read() as conn:
                return admin.detail(settings, conn, name)

        return await run_in_threadpool(save)

    @api.delete("/v1/journeys/{name}", status_code=204)
    def delete_journey(name: str, request: Request) -> Response:
        """Delete a journey's file: no one new enters (runs and logs stay for the reports)."""
        require(runtime, request, "admin")
        admin.delete_journey(settings, name)
        _forget_cached_runners()
        return Response(status_code=204)

    @api.post("/v1/journeys/{name}/pause")
    def pause(name: str, request: Request) -> dict[str, Any]:
        """Pause: no one enters and waiting runs hold until resumed."""
        require(runtime, request, "admin")
        admin.set_paused(runtime.store, settings, name, True, now_ms())
        return {"journey": name, "paused": True}

    @api.post("/v1/journeys/{name}/resume")
    def resume(name: str, request: Request) -> dict[str, Any]:
        """Resume a paused journey; held runs continue on the next worker tick."""
        require(runtime, request, "admin")
        admin.set_paused(runtime.store, settings, name, False, now_ms())
        return {"journey": name, "paused": False}

    @api.post("/v1/journeys/{name}/test")
    async def test_journey(name: str, request: Request) -> dict[str, Any]:
        """Dry run for one person on a virtual clock: {"profile": USER_ID, "events": [track calls]}."""
        await run_in_threadpool(require, runtime, request, "admin")
        body = await _json_object(request)
        profile, events = body.get("profile"), body.get("events") or []
        if not isinstance(profile, str) or not profile:
            raise ValidationError("profile (a userId) is required", field="profile")
        if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
            raise ValidationError("events must be a list of track calls (objects)", field="events")
        result = await run_in_threadpool(dry_run, runtime, name, profile, events)
        return {"timeline": result.timeline, "emails": [e.__dict__ for e in result.emails]}

    @api.get("/v1/campaigns")
    def list_campaigns(request: Request) -> list[dict[str, Any]]:
        """Every campaign with its arms, states and delivery counts."""
        require(runtime, request, "admin")
        with runtime.store.read() as conn:
            return [c.summary(conn, row["name"]) for row in campaign_q.list_campaigns(conn)]

    @api.post("/v1/campaigns", status_code=201)
    async def send_campaign(request: Request) -> dict[str, Any]:
        """Schedule a broadcast: {template, segment, at?, ab?, subjects?, holdout?, name?, transactional?}.

        The template is linted first; the worker resolves the segment at the moment and sends.
        """
        await run_in_threadpool(require, runtime, request, "admin")
        body = await _json_object(request)
        unknown = sorted(
            set(body) - {"template", "segment", "at", "ab", "subjects", "holdout", "name", "transactional"}
        )
        if unknown:
            raise ValidationError(f"unknown field {unknown[0]!r}", field=unknown[0])
        for required in ("template", "segment"):
            if not isinstance(body.get(required), str) or not body[required]:
                raise ValidationError(f"{required} is required (a name)", field=required)
        subjects = body.get("subjects") or []
        if not isinstance(subjects, list) or not all(isinstance(s, str) for s in subjects):
            raise ValidationError("subjects must be a list of subject lines", field="subjects")
        holdout = body.get("holdout")

        def schedule() -> dict[str, Any]:
            moment = now_ms()
            campaign = c.request(
                body["template"], body["segment"], now_ms=moment, timezone=settings.timezone,
                at=body.get("at"), ab=body.get("ab"), subjects=tuple(subjects),
                holdout=None if holdout is None else str(holdout), name=body.get("name"),
                transactional=bool(body.get("transactional", False)),
            )  # fmt: skip
            with runtime.store.begin() as conn:
                c.schedule(settings, conn, campaign, moment)
            with runtime.store.read() as conn:
                return c.summary(conn, campaign.name)

        return await run_in_threadpool(schedule)

    @api.get("/v1/campaigns/{name}")
    def show_campaign(name: str, request: Request) -> dict[str, Any]:
        """One campaign: people per arm and state, and delivery."""
        require(runtime, request, "admin")
        with runtime.store.read() as conn:
            return c.summary(conn, name)

    @api.post("/v1/campaigns/{name}/cancel")
    def cancel_campaign(name: str, request: Request) -> dict[str, Any]:
        """Stop a scheduled or sending campaign; people not yet decided get nothing."""
        require(runtime, request, "admin")
        with runtime.store.begin() as conn:
            c.cancel(conn, name, now_ms())
        with runtime.store.read() as conn:
            return c.summary(conn, name)

    @api.post("/v1/complaints")
    async def complaint(request: Request) -> dict[str, Any]:
        """One feedback-loop report (the raw ARF email as the body): suppress the address, record the event."""
        await run_in_threadpool(require, runtime, request, "admin")
        report = parse_report(await request.body(), "request body")
        result = await run_in_threadpool(record_complaints, runtime, [report])
        return {"recorded": result.recorded, "suppressed": result.suppressed, "ours": not result.unknown}

    return api


def _forget_cached_runners() -> None:
    """Runners cache the journey files; a changed file must be read again."""
    from tailormail.journeys.service import forget_runners

    forget_runners()
