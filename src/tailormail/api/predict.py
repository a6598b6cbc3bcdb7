"""Predict API (admin key): a person's scores and the latest model reports."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from tailormail.api.auth import require
from tailormail.errors import NotFound
from tailormail.predict import service
from tailormail.runtime import Runtime
from tailormail.store import profiles as profile_q


def router(runtime: Runtime) -> APIRouter:
    """Routes under /v1/predict."""
    api = APIRouter(prefix="/v1/predict")

    @api.get("/profiles/{user_id}")
    def profile_scores(user_id: str, request: Request) -> dict[str, Any]:
        """The person's predicted scores (traits.predicted)."""
        require(runtime, request, "admin")
        with runtime.store.read() as conn:
            found = profile_q.get_profile(conn, user_id=user_id)
        if found is None:
            raise NotFound(f"no profile with user id {user_id!r}")
        return {"user_id": user_id, "predicted": (found["traits"] or {}).get("predicted", {})}

    @api.get("/reports")
    def reports(request: Request) -> list[dict[str, Any]]:
        """The newest version of every model: metrics, calibration, lift, coefficients."""
        require(runtime, request, "admin")
        return service.latest_reports(runtime.store)

    @api.get("/reports/{model}")
    def model_report(model: str, request: Request) -> dict[str, Any]:
        """The newest version of one model."""
        require(runtime, request, "admin")
        return service.latest_reports(runtime.store, model)[0]

    return api
