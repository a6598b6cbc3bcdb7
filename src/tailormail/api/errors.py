"""The one place where library errors become HTTP responses."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tailormail.errors import (
    AuthError,
    BatchTooLarge,
    ConfigError,
    NotFound,
    PayloadTooLarge,
    ScopeError,
    StoreError,
    TailormailError,
    ValidationError,
)

STATUS: list[tuple[type[TailormailError], int]] = [
    (ScopeError, 403),
    (AuthError, 401),
    (BatchTooLarge, 413),
    (PayloadTooLarge, 400),
    (ValidationError, 400),
    (NotFound, 404),
    (ConfigError, 500),
    (StoreError, 503),
]
"""Most specific first: the first class an error is an instance of decides."""


def status_of(error: TailormailError) -> int:
    """The HTTP status for a library error."""
    for cls, status in STATUS:
        if isinstance(error, cls):
            return status
    return 500


def error_body(error: TailormailError) -> dict[str, object]:
    """The JSON body: ``code`` and ``message``, plus where the problem is."""
    body: dict[str, object] = {"code": error.code, "message": error.message}
    if error.hint:
        body["hint"] = error.hint
    if isinstance(error, ValidationError):
        for name in ("field", "index", "line"):
            value = getattr(error, name)
            if value is not None:
                body[name] = value
    return body


def install(app: FastAPI) -> None:
    """Register the handler that turns TailormailError into JSON responses."""

    @app.exception_handler(TailormailError)
    async def _handle(_request: Request, error: TailormailError) -> JSONResponse:
        headers = {"WWW-Authenticate": 'Basic realm="tailormail"'} if status_of(error) == 401 else None
        return JSONResponse(error_body(error), status_code=status_of(error), headers=headers)
