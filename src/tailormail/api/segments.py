"""Segments API (admin key): CRUD on definitions (YAML files), members, explain, overlap."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from tailormail.api.auth import require
from tailormail.clock import parse_time, to_ms
from tailormail.errors import ValidationError
from tailormail.runtime import Runtime
from tailormail.segments.service import SegmentService


def _moment(runtime: Runtime, as_of: str | None) -> int:
    if not as_of:
        return to_ms(runtime.clock.now())
    try:
        return to_ms(parse_time(as_of))
    except ValueError:
        raise ValidationError(f"as_of {as_of!r} is not an ISO time", field="as_of") from None


def router(runtime: Runtime) -> APIRouter:
    """Routes on segments; every one needs an admin key."""
    api = APIRouter(prefix="/v1/segments")
    service = SegmentService(runtime.store, runtime.settings)

    @api.get("")
    def list_segments(request: Request) -> list[dict[str, Any]]:
        """Every segment with size, 7-day change and last refresh."""
        require(runtime, request, "admin")
        return service.summaries(to_ms(runtime.clock.now()))

    @api.get("/overlap")
    def overlap(request: Request) -> dict[str, Any]:
        """The Jaccard overlap matrix of the active segments."""
        require(runtime, request, "admin")
        return service.overlap()

    @api.get("/{name}")
    def show(name: str, request: Request) -> dict[str, Any]:
        """A definition with its rule in words, its SQL and its size."""
        require(runtime, request, "admin")
        return service.show(name, to_ms(runtime.clock.now()))

    @api.put("/{name}")
    async def save(name: str, request: Request) -> dict[str, Any]:
        """Create or replace a segment (JSON: description, active, rule); it is refreshed at once."""
        await run_in_threadpool(require, runtime, request, "admin")
        try:
            body = await request.json()
        except ValueError:
            raise ValidationError("body is not valid JSON", field="body") from None
        return await run_in_threadpool(service.save, name, body, to_ms(runtime.clock.now()))

    @api.delete("/{name}", status_code=204)
    def delete(name: str, request: Request) -> Response:
        """Delete a segment's file and memberships (history stays)."""
        require(runtime, request, "admin")
        service.delete(name)
        return Response(status_code=204)

    @api.get("/{name}/members")
    def members(
        name: str, request: Request, after: int = 0, limit: int = 100, as_of: str | None = None
    ) -> dict[str, Any]:
        """A page of members; pass ``next_after`` back as ``after`` for the next page."""
        require(runtime, request, "admin")
        if not 1 <= limit <= 10_000:
            raise ValidationError("limit must be between 1 and 10000", field="limit")
        moment = _moment(runtime, as_of) if as_of else None
        return service.members(name, as_of=moment, after=after, limit=limit)

    @api.get("/{name}/explain/{user_id}")
    def explain(name: str, user_id: str, request: Request, as_of: str | None = None) -> dict[str, Any]:
        """Each condition for one person, whether it holds, and the deciding values."""
        require(runtime, request, "admin")
        return service.explain(name, user_id, _moment(runtime, as_of))

    return api
