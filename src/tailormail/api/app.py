"""The FastAPI application: every route and the key scope it needs, in one list."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.types import ASGIApp

from tailormail.api import errors, ingest, journeys, predict, profiles, segments, sync, track
from tailormail.runtime import Runtime

# Route modules and the scope their routes require:
#   ingest   /v1/batch, /v1/identify, /v1/track, /v1/page, /v1/screen,
#            /v1/group, /v1/alias                              write or admin
#   profiles /v1/profiles/{user_id}[/export]  GET PATCH DELETE  admin
#   sync     /v1/sync/status, /v1/sync/{name}/runs, /v1/sync/{name}/dead  GET,
#            /v1/sync/{name}/run  POST                         admin
#   segments /v1/segments[/{name}] GET PUT DELETE, /v1/segments/overlap,
#            /v1/segments/{name}/members, /v1/segments/{name}/explain/{user_id}  admin
#   predict  /v1/predict/profiles/{user_id}, /v1/predict/reports[/{model}]  GET  admin
#   journeys /v1/journeys[/{name}[/pause|/resume|/test]], /v1/campaigns[/{name}[/cancel]]  admin
#   track    /o/{token}.gif /c/{token} /u/{token} /p/{token} /v/{token}
#                                    public: the signed token is the credential
#            (GET /o and /c are answered by track.FastHits in front of FastAPI: same code, less overhead;
#             POST /v1/batch by ingest.FastBatch)
ROUTERS = [ingest.router, profiles.router, sync.router, segments.router, predict.router, journeys.router]


def create_app(runtime: Runtime) -> ASGIApp:
    """The HTTP API of one opened workspace (pixels, clicks and batches answered in front of FastAPI)."""
    recorder = track.Hits(runtime)
    # Outside FastAPI's own middleware (error pages, telemetry, body limits), which cost a pixel
    # more than verifying and queueing it; an unexpected error still gets uvicorn's 500.
    # POST /v1/batch likewise (ingest.FastBatch): nearly all ingest traffic.
    return track.FastHits(ingest.FastBatch(routes(runtime, recorder), runtime), recorder)


def routes(runtime: Runtime, recorder: track.Hits | None = None) -> FastAPI:
    """The FastAPI application alone: every route, without the fast paths ``create_app`` puts in front."""
    app = FastAPI(title="tailormail", version="0.1.0")
    errors.install(app)
    for make in ROUTERS:
        app.include_router(make(runtime))
    app.include_router(track.router(runtime, recorder or track.Hits(runtime)))

    @app.get("/health")
    def health() -> dict[str, str]:
        """Liveness: answers when the process serves requests."""
        return {"status": "ok"}

    return app
