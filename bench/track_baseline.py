"""The baseline of bench_track: a bare ASGI app answering the same GIF and redirect, doing nothing else.

python -m bench.track_baseline PORT
"""

from __future__ import annotations

import sys
from typing import Any

PIXEL = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b")
NO_CACHE = [
    (b"cache-control", b"no-store, no-cache, must-revalidate, max-age=0"),
    (b"pragma", b"no-cache"),
    (b"expires", b"0"),
]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """/o/... answers the pixel, /c/... a 302 to a fixed URL, anything else 404."""
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path.startswith("/o/"):
        headers = [(b"content-type", b"image/gif"), (b"content-length", str(len(PIXEL)).encode()), *NO_CACHE]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": PIXEL})
    elif path.startswith("/c/"):
        headers = [(b"location", b"https://shop.example/p/1"), (b"content-length", b"0"), *NO_CACHE]
        await send({"type": "http.response.start", "status": 302, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
    else:
        await send({"type": "http.response.start", "status": 404, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="info")
