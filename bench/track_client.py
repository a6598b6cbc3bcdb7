"""The load generator for bench_track: GETs tracking URLs over keep-alive connections, prints JSON.

A small asyncio HTTP/1.1 client (one request in flight per connection), so
the client costs little next to the server it measures.

    python bench/track_client.py HOST PORT URLS_FILE CONNECTIONS
"""

from __future__ import annotations

import asyncio
import json
import sys
import time


async def connection(host: str, port: int, paths: list[str], cursor: list[int], out: dict[str, list[float]]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    while cursor[0] < len(paths):
        path = paths[cursor[0]]
        cursor[0] += 1
        start = time.perf_counter()
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"
            "\r\nAccept: */*\r\n\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        if length:
            await reader.readexactly(length)
        out["latencies"].append(time.perf_counter() - start)
        out.setdefault(str(status), []).append(1.0)
    writer.close()


async def run(host: str, port: int, paths: list[str], connections: int) -> dict[str, object]:
    cursor = [0]
    out: dict[str, list[float]] = {"latencies": []}
    started = time.perf_counter()
    await asyncio.gather(*(connection(host, port, paths, cursor, out) for _ in range(connections)))
    seconds = time.perf_counter() - started
    statuses = {k: len(v) for k, v in out.items() if k != "latencies"}
    return {"seconds": seconds, "latencies": out["latencies"], "statuses": statuses, "client_cpu": time.process_time()}


def main() -> None:
    host, port, urls_file, connections = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    with open(urls_file, encoding="utf-8") as f:
        paths = [line.strip() for line in f if line.strip()]
    print(json.dumps(asyncio.run(run(host, port, paths, connections))))


if __name__ == "__main__":
    main()
