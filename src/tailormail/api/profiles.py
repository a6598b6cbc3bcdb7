"""Profiles API (admin key): read, edit traits, export, erase."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from tailormail.api.auth import require
from tailormail.clock import to_ms
from tailormail.ingest import profiles
from tailormail.runtime import Runtime
from tailormail.segments.realtime import reevaluate_user


def router(runtime: Runtime) -> APIRouter:
    """Routes on one person's data."""
    api = APIRouter(prefix="/v1/profiles")

    @api.get("/{user_id}")
    def get_profile(user_id: str, request: Request) -> dict[str, Any]:
        """Traits, memberships and the last 50 events of a person."""
        require(runtime, request, "admin")
        return profiles.profile_view(runtime.store, user_id)

    @api.patch("/{user_id}")
    async def patch_profile(user_id: str, request: Request) -> dict[str, Any]:
        """Merge traits (JSON object; null removes a trait)."""
        await run_in_threadpool(require, runtime, request, "admin")
        body = await request.json()
        changes = body.get("traits", body) if isinstance(body, dict) else body
        now = to_ms(runtime.clock.now())
        patched = await run_in_threadpool(profiles.patch_traits, runtime.store, user_id, changes, now)
        await run_in_threadpool(reevaluate_user, runtime.store, runtime.settings, user_id, now)  # segments follow
        return patched

    @api.delete("/{user_id}", status_code=204)
    def delete_profile(user_id: str, request: Request) -> Response:
        """Erase the person everywhere (GDPR)."""
        require(runtime, request, "admin")
        profiles.erase(runtime.store, user_id)
        return Response(status_code=204)

    @api.get("/{user_id}/export")
    def export_profile(user_id: str, request: Request) -> dict[str, Any]:
        """Everything stored about the person (GDPR access request)."""
        require(runtime, request, "admin")
        return profiles.export(runtime.store, user_id)

    return api
