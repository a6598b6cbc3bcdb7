"""The real segment-analytics-python client against a live `tailormail serve`."""

from __future__ import annotations

from pathlib import Path

import pytest
from segment.analytics.client import Client
from segment.analytics.request import APIError

from live import served
from tailormail.clock import to_ms
from tailormail.runtime import open_runtime
from tailormail.store import events as event_q
from tailormail.store import keys
from tailormail.store import profiles as profile_q


def test_identify_track_and_page_land_with_traits_and_properties(workspace: Path) -> None:
    rt = open_runtime(workspace)
    with rt.store.begin() as conn:
        _, write_key = keys.create_key(conn, "write", "site", to_ms(rt.clock.now()))
    errors: list[Exception] = []
    with served(workspace) as base:
        client = Client(write_key, host=base, sync_mode=True, gzip=True, on_error=lambda e, _: errors.append(e))
        client.identify("user-42", {"firstName": "Ada", "email": "ada@example.com", "location": "California"})
        client.track("user-42", "purchase", {"revenue": 99.5, "products": [{"product_id": "p1", "quantity": 2}]})
        client.page("user-42", "Shop", "Product", {"url": "https://shop.example/p1"})
        client.track(anonymous_id="anon-7", event="product_view", properties={"product_id": "p9"})
        client.identify("user-42", anonymous_id="anon-7")
        client.flush()
    assert errors == []
    with rt.store.read() as conn:
        profile = profile_q.get_profile(conn, user_id="user-42")
        assert profile is not None
        assert profile["traits"] == {"firstName": "Ada", "email": "ada@example.com", "location": "California"}
        got = {(e["type"], e["event"]): e for e in event_q.events_of(conn, profile["id"])}
    rt.close()
    assert got[("track", "purchase")]["revenue"] == 99.5
    assert got[("track", "purchase")]["properties"]["products"] == [{"product_id": "p1", "quantity": 2}]
    assert got[("page", "Product")]["properties"]["url"] == "https://shop.example/p1"
    # The anonymous browsing counts for the person once identified.
    assert got[("track", "product_view")]["properties"] == {"product_id": "p9"}
    assert got[("track", "product_view")]["anonymous_id"] == "anon-7"


def test_a_wrong_write_key_is_refused_and_nothing_lands(workspace: Path) -> None:
    with served(workspace) as base:
        client = Client("tm_write_bogus", host=base, sync_mode=True, max_retries=0)
        with pytest.raises(APIError) as caught:
            client.track("u1", "purchase", {"revenue": 1})
    assert caught.value.status == 401 and "unknown or revoked" in caught.value.message
    rt = open_runtime(workspace)
    with rt.store.read() as conn:
        assert profile_q.count_profiles(conn) == 0
    rt.close()
