"""The FastAPI application: every route and the key scope it needs, in one list."""

from __future__ import annotations

from fastapi import FastAPI

from tailormail.api import errors, ingest, profiles, track
from tailormail.runtime import Runtime

# Route modules and the scope their routes require:
#   ingest   /v1/batch, /v1/identify, /v1/track, /v1/page, /v1/screen,
#            /v1/group, /v1/alias                              write or admin
#   profiles /v1/profiles/{user_id}[/export]  GET PATCH DELETE  admin
#   track    /o/{token}.gif /c/{token} /u/{token} /p/{token} /v/{token}
#                                    public: the signed token is the credential
ROUTERS = [ingest.router, profiles.router, track.router]


def create_app(runtime: Runtime) -> FastAPI:
    """The HTTP API of one opened workspace."""
    app = FastAPI(title="tailormail", version="0.1.0")
    errors.install(app)
    for make in ROUTERS:
        app.include_router(make(runtime))

    @app.get("/health")
    def health() -> dict[str, str]:
        """Liveness: answers when the process serves requests."""
        return {"status": "ok"}

    return app
