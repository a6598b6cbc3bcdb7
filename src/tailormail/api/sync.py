"""Sync API (admin key): health, run logs, run now, dead letters."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from tailormail.api.auth import require
from tailormail.runtime import Runtime
from tailormail.sync import tasks
from tailormail.sync.runs import run_json


def router(runtime: Runtime) -> APIRouter:
    """Routes on sources, destinations and their logs."""
    api = APIRouter(prefix="/v1/sync")

    @api.get("/status")
    def sync_status(request: Request) -> list[dict[str, Any]]:
        """Every source and destination with its last run and health."""
        require(runtime, request, "admin")
        return [h.as_json() for h in tasks.status(runtime)]

    @api.get("/{name}/runs")
    def sync_runs(name: str, request: Request, limit: int = 50) -> list[dict[str, Any]]:
        """The run history of one source or destination, newest first."""
        require(runtime, request, "admin")
        return [run_json(r) for r in tasks.history(runtime, name, min(max(limit, 1), 500))]

    @api.post("/{name}/run")
    def sync_run(name: str, request: Request) -> dict[str, Any]:
        """Run a source or destination now; answers with its run log."""
        require(runtime, request, "admin")
        return run_json(tasks.run_now(runtime, name))

    @api.get("/{name}/dead")
    def sync_dead(name: str, request: Request) -> list[dict[str, Any]]:
        """A destination's dead-letter list."""
        require(runtime, request, "admin")
        return [
            {
                "id": r["id"],
                "key": r["idempotency_key"],
                "attempts": r["attempts"],
                "lastError": r["last_error"],
                "payload": r["payload"],
            }
            for r in tasks.dead_letters(runtime, name)
        ]

    return api
