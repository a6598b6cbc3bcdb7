"""The Segment HTTP tracking API, wire-compatible: /v1/batch, /v1/track, ..."""

from __future__ import annotations

import json
import zlib
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from tailormail.api import errors
from tailormail.api.auth import key_from_authorization, key_from_headers, require_key
from tailormail.errors import BatchTooLarge, PayloadTooLarge, TailormailError, ValidationError
from tailormail.ingest.group import GroupCommit
from tailormail.runtime import Runtime

SUCCESS = {"success": True}


def router(runtime: Runtime) -> APIRouter:
    """Routes that ingest events; a write key is enough."""
    api = APIRouter()
    limits = runtime.settings.limits
    group = ingest_group(runtime)

    @api.post("/v1/batch")
    async def batch(request: Request) -> JSONResponse:
        """Ingest a batch of Segment messages (served by ``FastBatch`` in front of the app)."""
        body = await _json_body(request, limits.max_batch_bytes, BatchTooLarge)
        messages = _batch_of(body)
        await _ingest(runtime, group, request, body, messages)
        return JSONResponse(SUCCESS)

    for kind in ("identify", "track", "page", "screen", "group", "alias"):
        api.add_api_route(f"/v1/{kind}", _single(runtime, group, kind, limits.max_message_bytes), methods=["POST"])
    return api


def ingest_group(runtime: Runtime) -> GroupCommit:
    """The runtime's group commit for API ingest: one per runtime, so concurrent requests share transactions."""
    return runtime.kept("ingest_group", lambda: GroupCommit(runtime.ingestor))


def _single(runtime: Runtime, group: GroupCommit, kind: str, max_bytes: int) -> Any:
    async def endpoint(request: Request) -> JSONResponse:
        body = await _json_body(request, max_bytes, PayloadTooLarge)
        await _ingest(runtime, group, request, body, [{**body, "type": kind}])
        return JSONResponse(SUCCESS)

    endpoint.__name__ = f"ingest_{kind}"
    endpoint.__doc__ = f"Ingest one Segment {kind} call."
    return endpoint


async def _ingest(
    runtime: Runtime, group: GroupCommit, request: Request, body: dict[str, Any], messages: list[Any]
) -> None:
    header_key = key_from_headers(request)
    await run_in_threadpool(_authenticated_ingest, runtime, group, header_key, body, messages)


def _authenticated_ingest(
    runtime: Runtime, group: GroupCommit, header_key: str | None, body: dict[str, Any], messages: list[Any]
) -> None:
    """Check the write key, then store the messages: one trip to the threadpool for both."""
    write_key = body.get("writeKey") if isinstance(body.get("writeKey"), str) else None
    require_key(runtime, header_key or write_key, "write")
    sent_at = body.get("sentAt") if isinstance(body.get("sentAt"), str) else None
    max_bytes = runtime.settings.limits.max_message_bytes
    # Commit before answering: the 200 means the events are durable.  Requests that arrive while a
    # transaction is under way share the next one (ingest/group.py).
    group.ingest_raw(messages, sent_at=sent_at, max_bytes=max_bytes)


def _batch_of(body: dict[str, Any]) -> list[Any]:
    messages = body.get("batch")
    if not isinstance(messages, list):
        raise ValidationError("batch must be a list of messages", field="batch")
    return messages


class FastBatch:
    """Answers ``POST /v1/batch`` before FastAPI routing (it is nearly all ingest traffic).

    The same checks, in the same order, and the same answers as the route:
    body size and gzip, JSON, the batch, the key, then the commit before the
    200.  Written straight to ASGI: routing, the request object, the response
    class and the exception middleware cost more per request than parsing the
    batch.  Everything else passes through to the app.
    """

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app, self.runtime = app, runtime
        self.group = ingest_group(runtime)
        self.limit = runtime.settings.limits.max_batch_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Ingest a batch, or hand the request to the app."""
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != "/v1/batch":
            await self.app(scope, receive, send)
            return
        authorization, encoding = "", ""
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"content-encoding":
                encoding = value.decode("latin-1")
        raw = await _read_body(receive)
        if raw is None:
            return  # the client went away: nobody to answer
        headers = _JSON_HEADERS
        try:
            body = _decoded(raw, encoding, self.limit, BatchTooLarge)
            messages = _batch_of(body)
            key = key_from_authorization(authorization)
            await run_in_threadpool(_authenticated_ingest, self.runtime, self.group, key, body, messages)
            status, content = 200, _SUCCESS_BODY
        except TailormailError as error:  # as errors.install answers it behind FastAPI
            status, content = errors.status_of(error), json.dumps(errors.error_body(error)).encode()
            headers = _JSON_HEADERS + ([_CHALLENGE] if status == 401 else [])
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-length", str(len(content)).encode()), *headers]})  # fmt: skip
        await send({"type": "http.response.body", "body": content})


_SUCCESS_BODY = json.dumps(SUCCESS, separators=(",", ":")).encode()
_JSON_HEADERS = [(b"content-type", b"application/json")]
_CHALLENGE = (b"www-authenticate", b'Basic realm="tailormail"')


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body (None: the client disconnected first)."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _json_body(request: Request, limit: int, too_large: type[PayloadTooLarge]) -> dict[str, Any]:
    return _decoded(await request.body(), request.headers.get("content-encoding", ""), limit, too_large)


def _decoded(raw: bytes, encoding: str, limit: int, too_large: type[PayloadTooLarge]) -> dict[str, Any]:
    """The JSON object of a request body: gzip inflated within ``limit``, size checked, parsed."""
    if encoding.lower() == "gzip":
        raw = _gunzip(raw, limit, too_large)
    if len(raw) > limit:
        raise too_large(
            f"request body is {len(raw)} bytes, over the {limit}-byte limit", field="body", hint="send smaller batches"
        )
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationError(f"body is not valid JSON: {exc}", field="body") from None
    if not isinstance(body, dict):
        raise ValidationError("body must be a JSON object", field="body")
    return body


def _gunzip(raw: bytes, limit: int, too_large: type[PayloadTooLarge]) -> bytes:
    """Decompress, refusing to inflate past the limit (no gzip bombs)."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(raw, limit + 1)
    except zlib.error:
        raise ValidationError("body is not valid gzip", field="body") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise too_large(f"request body inflates past the {limit}-byte limit", field="body", hint="send smaller batches")
    return out
