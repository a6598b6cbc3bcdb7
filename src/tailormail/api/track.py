"""Tracking routes, public (their tokens are the credentials): pixel, clicks, unsubscribe, preferences, view."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from tailormail.api import errors, pages
from tailormail.errors import TailormailError
from tailormail.runtime import Runtime
from tailormail.track import hits
from tailormail.track.buffer import HitBuffer
from tailormail.track.settings import track_settings
from tailormail.track.signing import BadToken

PIXEL = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b")
"""A transparent 1x1 GIF."""
NO_CACHE = {"Cache-Control": "no-store, no-cache, must-revalidate, max-age=0", "Pragma": "no-cache", "Expires": "0"}
NOT_FOUND = PlainTextResponse("This link is not valid.", status_code=404)


def visitor(request: Request) -> hits.Visitor:
    """Who sent the request."""
    return hits.Visitor(request.headers.get("user-agent"), request.client.host if request.client else None)


class Hits:
    """Records opens and clicks: at once (``batch_ms = 0``) or through a write-behind HitBuffer."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        delay_ms = track_settings(runtime.settings).batch_ms
        self.buffer = HitBuffer(runtime, delay_ms / 1000) if delay_ms > 0 else None

    async def open(self, token: str, who: hits.Visitor) -> None:
        """Record an open (raises BadToken)."""
        if self.buffer is not None:
            self.buffer.add(hits.open_hit(self.runtime, token, who))
        else:
            await run_in_threadpool(hits.record_open, self.runtime, token, who)

    async def click(self, token: str, who: hits.Visitor) -> str:
        """Record a click; the URL that was in the email (raises BadToken)."""
        if self.buffer is not None:
            hit, url = hits.click_hit(self.runtime, token, who)
            self.buffer.add(hit)
            return url
        return await run_in_threadpool(hits.record_click, self.runtime, token, who)


# Starlette's RedirectResponse quotes the location with these characters kept; so do we.
_LOCATION_SAFE = ":/%#?=@[]!$&'()*+,;~"
_NO_CACHE_RAW = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in NO_CACHE.items()]
_PIXEL_HEADERS = [(b"content-length", str(len(PIXEL)).encode()), (b"content-type", b"image/gif"), *_NO_CACHE_RAW]
_NOT_FOUND_BODY = b"This link is not valid."
_NOT_FOUND_HEADERS = [(b"content-length", str(len(_NOT_FOUND_BODY)).encode()),
                      (b"content-type", b"text/plain; charset=utf-8")]  # fmt: skip


class FastHits:
    """Answers GET pixel and click requests before FastAPI routing (they are most of the traffic).

    The same verification, recording and answers as the ``/o`` and ``/c`` routes,
    written straight to ASGI: routing, request objects and response classes cost
    more per hit than the work itself.  Everything else passes through to the app.
    """

    def __init__(self, app: ASGIApp, recorder: Hits) -> None:
        self.app, self.recorder = app, recorder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve a pixel or click, or hand the request to the app."""
        path: str = scope.get("path", "") if scope["type"] == "http" and scope["method"] == "GET" else ""
        is_open = path.startswith("/o/") and path.endswith(".gif") and "/" not in path[3:]
        if not (is_open or (path.startswith("/c/") and len(path) > 3 and "/" not in path[3:])):
            await self.app(scope, receive, send)
            return
        agent = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"user-agent"), None)
        client = scope.get("client")
        who = hits.Visitor(agent, client[0] if client else None)
        try:
            if is_open:
                await self.recorder.open(path[3:-4], who)
                status, headers, body = 200, _PIXEL_HEADERS, PIXEL
            else:
                url = await self.recorder.click(path[3:], who)
                location = quote(url, safe=_LOCATION_SAFE).encode("latin-1")
                status, headers, body = 302, [(b"content-length", b"0"), (b"location", location), *_NO_CACHE_RAW], b""
        except BadToken:
            status, headers, body = 404, _NOT_FOUND_HEADERS, _NOT_FOUND_BODY
        except TailormailError as error:  # as errors.install answers it behind FastAPI
            status, body = errors.status_of(error), json.dumps(errors.error_body(error)).encode()
            headers = [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def router(runtime: Runtime, recorder: Hits | None = None) -> APIRouter:
    """Routes a recipient's mail client and browser reach."""
    recorder = recorder or Hits(runtime)
    buffer = recorder.buffer

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        yield
        if buffer is not None:
            await run_in_threadpool(buffer.close)  # a clean shutdown records every pending hit

    api = APIRouter(lifespan=lifespan)

    @api.get("/o/{token}.gif")
    async def open_pixel(token: str, request: Request) -> Response:
        """Record an open; answer a 1x1 GIF that no cache keeps."""
        try:
            await recorder.open(token, visitor(request))
        except BadToken:
            return NOT_FOUND
        return Response(PIXEL, media_type="image/gif", headers=NO_CACHE)

    @api.get("/c/{token}")
    async def click(token: str, request: Request) -> Response:
        """Record a click and redirect to the URL that was in the email (and nowhere else)."""
        try:
            url = await recorder.click(token, visitor(request))
        except BadToken:
            return NOT_FOUND
        return RedirectResponse(url, status_code=302, headers=NO_CACHE)

    @api.get("/u/{token}", response_class=HTMLResponse)
    async def unsubscribe_page(token: str) -> Response:
        """Ask for confirmation (a GET never unsubscribes: scanners follow links)."""
        try:
            prefs = await run_in_threadpool(hits.preferences, runtime, token)
        except BadToken:
            return NOT_FOUND
        return HTMLResponse(pages.confirm_unsubscribe(prefs.address, token))

    @api.post("/u/{token}")
    async def unsubscribe(token: str, request: Request) -> Response:
        """RFC 8058 one-click unsubscribe (mail clients), or the confirmation page's button."""
        body = (await request.body()).decode("utf-8", "replace")
        one_click = "List-Unsubscribe=One-Click" in body
        try:
            prefs = await run_in_threadpool(
                lambda: hits.unsubscribe(runtime, token, source="one_click" if one_click else "page")
            )
        except BadToken:
            return NOT_FOUND
        if one_click:
            return PlainTextResponse("unsubscribed")
        return HTMLResponse(pages.unsubscribed(prefs.address, token))

    @api.get("/p/{token}", response_class=HTMLResponse)
    async def preferences_page(token: str) -> Response:
        """Choose topics, or unsubscribe from everything."""
        try:
            prefs = await run_in_threadpool(hits.preferences, runtime, token)
        except BadToken:
            return NOT_FOUND
        return HTMLResponse(pages.preferences_form(prefs, token))

    @api.post("/p/{token}", response_class=HTMLResponse)
    async def save_preferences(token: str, request: Request) -> Response:
        """Save the preference form."""
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        try:
            current = await run_in_threadpool(hits.preferences, runtime, token)
            off = [t for t in current.topics if t not in form.get("topic", [])]
            prefs = await run_in_threadpool(
                lambda: hits.save_preferences(
                    runtime, token, everything_off="all_off" in form, topics_off=off, source="preferences"
                )
            )
        except BadToken:
            return NOT_FOUND
        return HTMLResponse(pages.preferences_form(prefs, token, saved=True))

    @api.get("/v/{token}", response_class=HTMLResponse)
    async def view(token: str) -> Response:
        """The email as it was sent, in the browser."""
        try:
            html = await run_in_threadpool(hits.view_in_browser, runtime, token)
        except BadToken:
            return NOT_FOUND
        return HTMLResponse(html)

    return api
