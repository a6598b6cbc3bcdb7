"""Tracking routes, public (their tokens are the credentials): pixel, clicks, unsubscribe, preferences, view."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from tailormail.api import pages
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


def router(runtime: Runtime) -> APIRouter:
    """Routes a recipient's mail client and browser reach."""
    delay_ms = track_settings(runtime.settings).batch_ms
    buffer = HitBuffer(runtime, delay_ms / 1000) if delay_ms > 0 else None

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
            if buffer is not None:
                buffer.add(hits.open_hit(runtime, token, visitor(request)))
            else:
                await run_in_threadpool(hits.record_open, runtime, token, visitor(request))
        except BadToken:
            return NOT_FOUND
        return Response(PIXEL, media_type="image/gif", headers=NO_CACHE)

    @api.get("/c/{token}")
    async def click(token: str, request: Request) -> Response:
        """Record a click and redirect to the URL that was in the email (and nowhere else)."""
        try:
            if buffer is not None:
                hit, url = hits.click_hit(runtime, token, visitor(request))
                buffer.add(hit)
            else:
                url = await run_in_threadpool(hits.record_click, runtime, token, visitor(request))
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
