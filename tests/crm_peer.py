"""A small CRM on loopback for sync tests and benchmarks: a real HTTP server in a thread."""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

Route = Callable[[dict[str, str], "Peer"], tuple[int, Any, dict[str, str]]]
"""Query parameters and the peer -> (status, JSON body, extra headers)."""


@dataclass
class Peer:
    """The running server: its base URL, the routes, and every request it saw."""

    routes: dict[str, Route]
    base_url: str = ""
    requests: list[tuple[str, dict[str, str], dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def seen(self, path: str) -> list[dict[str, str]]:
        """The query parameters of every request to ``path``."""
        return [q for p, q, _, _ in self.requests if p == path]


def _handler(peer: Peer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            url = urlparse(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with peer.lock:
                peer.requests.append((url.path, query, dict(self.headers), body))
            route = peer.routes.get(url.path)
            status, payload, headers = route(query, peer) if route else (404, {"error": "no route"}, {})
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        do_GET = _serve
        do_POST = _serve

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def serve(routes: dict[str, Route], tls: ssl.SSLContext | None = None) -> Iterator[Peer]:
    """Run a peer on a free loopback port until the block ends (HTTPS when given a TLS context)."""
    peer = Peer(routes)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(peer))
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    scheme = "https" if tls is not None else "http"
    peer.base_url = f"{scheme}://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield peer
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def append_config(workspace: Path, text: str) -> None:
    """Add TOML (sync sources, destinations) to a test workspace's tailormail.toml."""
    config = workspace / "tailormail.toml"
    config.write_text(config.read_text() + text)
