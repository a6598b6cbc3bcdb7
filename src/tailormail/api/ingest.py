"""The Segment HTTP tracking API, wire-compatible: /v1/batch, /v1/track, ..."""

from __future__ import annotations

import json
import zlib
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from tailormail.api.auth import require
from tailormail.errors import BatchTooLarge, PayloadTooLarge, ValidationError
from tailormail.runtime import Runtime

SUCCESS = {"success": True}


def router(runtime: Runtime) -> APIRouter:
    """Routes that ingest events; a write key is enough."""
    api = APIRouter()
    limits = runtime.settings.limits

    @api.post("/v1/batch")
    async def batch(request: Request) -> JSONResponse:
        body = await _json_body(request, limits.max_batch_bytes, BatchTooLarge)
        messages = body.get("batch")
        if not isinstance(messages, list):
            raise ValidationError("batch must be a list of messages", field="batch")
        await _ingest(runtime, request, body, messages)
        return JSONResponse(SUCCESS)

    for kind in ("identify", "track", "page", "screen", "group", "alias"):
        api.add_api_route(f"/v1/{kind}", _single(runtime, kind, limits.max_message_bytes), methods=["POST"])
    return api


def _single(runtime: Runtime, kind: str, max_bytes: int) -> Any:
    async def endpoint(request: Request) -> JSONResponse:
        body = await _json_body(request, max_bytes, PayloadTooLarge)
        await _ingest(runtime, request, body, [{**body, "type": kind}])
        return JSONResponse(SUCCESS)

    endpoint.__name__ = f"ingest_{kind}"
    endpoint.__doc__ = f"Ingest one Segment {kind} call."
    return endpoint


async def _ingest(runtime: Runtime, request: Request, body: dict[str, Any], messages: list[Any]) -> None:
    write_key = body.get("writeKey") if isinstance(body.get("writeKey"), str) else None
    await run_in_threadpool(require, runtime, request, "write", write_key)
    sent_at = body.get("sentAt") if isinstance(body.get("sentAt"), str) else None
    max_bytes = runtime.settings.limits.max_message_bytes
    # Commit before answering: the 200 means the events are durable.
    await run_in_threadpool(runtime.ingestor.ingest_raw, messages, sent_at=sent_at, max_bytes=max_bytes)


async def _json_body(request: Request, limit: int, too_large: type[PayloadTooLarge]) -> dict[str, Any]:
    raw = await request.body()
    if request.headers.get("content-encoding", "").lower() == "gzip":
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
