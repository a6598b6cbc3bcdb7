"""Many clients at once against a live `tailormail serve`: every batch is answered after its commit, once."""

from __future__ import annotations

import base64
import threading
from pathlib import Path

import httpx
from sqlalchemy import func, select

from live import served
from tailormail.clock import to_ms
from tailormail.runtime import open_runtime
from tailormail.store import keys
from tailormail.store.schema import events

CLIENTS = 6
BATCHES_EACH = 5
BATCH = 40


def batch(client: int, number: int) -> list[dict[str, object]]:
    return [
        {
            "type": "track",
            "messageId": f"c{client}-b{number}-{i}",
            "userId": f"user-{(client * 7 + i) % 30}",
            "event": "add_to_cart" if i % 3 == 0 else "product_view",
            "properties": {"product_id": f"p{i}"},
        }
        for i in range(BATCH)
    ]


def test_concurrent_batches_are_all_stored_exactly_once(workspace: Path) -> None:
    rt = open_runtime(workspace)
    with rt.store.begin() as conn:
        _, key = keys.create_key(conn, "write", "site", to_ms(rt.clock.now()))
    auth = {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}
    statuses: list[int] = []
    start = threading.Barrier(CLIENTS)  # every client posts at once, so transactions are shared

    def client(number: int, base: str) -> None:
        with httpx.Client(base_url=base, headers=auth, timeout=60) as http:
            start.wait()
            for b in range(BATCHES_EACH):
                statuses.append(http.post("/v1/batch", json={"batch": batch(number, b)}).status_code)
            # one batch again: a retry after a lost answer changes nothing
            statuses.append(http.post("/v1/batch", json={"batch": batch(number, 0)}).status_code)

    with served(workspace) as base:
        threads = [threading.Thread(target=client, args=(n, base)) for n in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    with rt.store.read() as conn:
        stored = conn.execute(select(func.count(), func.count(func.distinct(events.c.message_id))).where(
            events.c.message_id.like("c%-b%-%"))).one()  # fmt: skip
    rt.close()
    assert statuses == [200] * (CLIENTS * (BATCHES_EACH + 1))
    assert tuple(stored) == (CLIENTS * BATCHES_EACH * BATCH,) * 2
