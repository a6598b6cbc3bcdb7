"""Tracking endpoints in-process on a real database: signed links, bots, unsubscribe, preferences."""

from __future__ import annotations

import email
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tailormail.api.app import create_app
from tailormail.clock import ManualClock, to_ms
from tailormail.deliver.memory import MemoryTransport
from tailormail.deliver.outbox import Email, enqueue
from tailormail.deliver.service import open_sender
from tailormail.runtime import Runtime
from tailormail.store import deliver as outbox_q
from tailormail.store import profiles as profile_q
from tailormail.store.schema import events
from tailormail.track import links
from tailormail.track.detect import automated_reason
from tailormail.track.signing import sign, sign_compact, verify

BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari"
BASE = "http://testserver"


@dataclass(frozen=True)
class Slot:
    id: int
    block: str | None
    position: int


@pytest.fixture(autouse=True)
def record_each_hit(workspace: Path) -> None:
    """These tests look at each hit's event right after its request: record before answering.

    The default write-behind mode (and its journal) is tested in test_track_buffer.py.
    """
    with (workspace / "tailormail.toml").open("a", encoding="utf-8") as toml:
        toml.write("\n[track]\nbatch_ms = 0\n")


@pytest.fixture
def sent(runtime: Runtime, clock: ManualClock) -> Iterator[tuple[TestClient, dict[str, Any]]]:
    """One email, really sent through the outbox to a memory transport, to u1 <ann@example.com>."""
    runtime.ingestor.ingest_raw([{"type": "identify", "userId": "u1", "traits": {"email": "ann@example.com"}}])
    with runtime.store.read() as conn:
        profile = profile_q.get_profile(conn, user_id="u1")
    assert profile is not None
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "shop@example.com", "ann@example.com", "Hi"
    message.set_content("plain")
    message.add_alternative("<html><body><p>Hello Ann</p></body></html>", subtype="html")
    key = "campaign:spring/profile:1"
    with runtime.store.begin() as conn:
        enqueue(
            conn,
            Email(
                key=key,
                to="ann@example.com",
                mime=message.as_bytes(),
                profile_id=profile["id"],
                campaign="spring",
                template="newsletter",
            ),
            now_ms=to_ms(clock.now()),
        )
    transport = MemoryTransport()
    sender = open_sender(runtime, transport)
    sender.run_round()
    sender.close()
    with runtime.store.read() as conn:
        outbox_id = outbox_q.outbox_ids_by_key(conn, [key])[key]
    info = {"key": key, "profile_id": profile["id"], "outbox_id": outbox_id, "mime": transport.sent[0].data}
    with TestClient(create_app(runtime), follow_redirects=False) as client:
        yield client, info


def tracked(runtime: Runtime, name: str) -> list[dict[str, Any]]:
    with runtime.store.read() as conn:
        rows = conn.execute(select(events).where(events.c.event == name).order_by(events.c.id)).mappings()
        return [dict(r) for r in rows]


def click_path(runtime: Runtime, info: dict[str, Any], url: str = "https://shop.example/p/1") -> str:
    full = links.click_url(
        BASE, runtime.settings.secret, info["key"], info["profile_id"], Slot(3, "product_grid", 2), url
    )
    return full.removeprefix(BASE)


def test_a_click_redirects_to_the_emails_url_and_records_the_link(
    runtime: Runtime, clock: ManualClock, sent: tuple[TestClient, dict[str, Any]]
) -> None:
    client, info = sent
    clock.advance(timedelta(minutes=5))
    r = client.get(click_path(runtime, info), headers={"User-Agent": BROWSER})
    assert r.status_code == 302 and r.headers["location"] == "https://shop.example/p/1"
    (event,) = tracked(runtime, "email_clicked")
    props = event["properties"]
    assert (props["link_id"], props["block"], props["position"]) == (3, "product_grid", 2)
    assert props["campaign"] == "spring" and props["template"] == "newsletter" and props["automated"] is False


def test_forged_and_edited_click_tokens_get_404_and_record_nothing(
    runtime: Runtime, sent: tuple[TestClient, dict[str, Any]]
) -> None:
    client, info = sent
    forged = sign(
        "not-the-secret", links.CLICK, {"k": info["key"], "p": info["profile_id"], "u": "https://evil.example"}
    )
    assert client.get(f"/c/{forged}").status_code == 404
    path = click_path(runtime, info)
    body, signature = path.removeprefix("/c/").split(".")
    other = sign(runtime.settings.secret, links.CLICK, {"k": info["key"], "u": "https://evil.example"}).split(".")[0]
    assert client.get(f"/c/{other}.{signature}").status_code == 404
    assert client.get(f"/c/{body}.{signature[:-1]}x").status_code == 404
    opener = sign(runtime.settings.secret, links.OPEN, {"k": info["key"], "p": info["profile_id"], "u": "https://x"})
    assert client.get(f"/c/{opener}").status_code == 404  # an open token is no click token
    assert tracked(runtime, "email_clicked") == []


def test_forged_tokens_are_logged_and_answered_like_the_routes(
    runtime: Runtime, sent: tuple[TestClient, dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    client, info = sent
    forged = sign("not-the-secret", links.OPEN, {"k": info["key"], "p": info["profile_id"]})
    with caplog.at_level("WARNING", logger="tailormail.track"):
        r = client.get(f"/o/{forged}.gif")
    assert (r.status_code, r.text, r.headers["content-type"]) == (
        404,
        "This link is not valid.",
        "text/plain; charset=utf-8",
    )
    assert any("does not verify" in m for m in caplog.messages)
    assert client.get("/o/.gif").status_code == 404 and client.get("/c/").status_code == 404
    assert tracked(runtime, "email_opened") == []


@pytest.mark.parametrize(
    "url",
    [
        "https://shop.example/p/1",
        "https://shop.example/p?a=1&b=two%20words#top",
        "https://shop.example/ä ö/ü?q=ß",
        "https://shop.example/p?x=[1]&y=a'b(c)*+,;~!$@",
    ],
)
def test_the_fast_path_redirects_exactly_as_starlette_would(
    runtime: Runtime, sent: tuple[TestClient, dict[str, Any]], url: str
) -> None:
    from starlette.responses import RedirectResponse

    client, info = sent
    r = client.get(click_path(runtime, info, url), headers={"User-Agent": BROWSER})
    assert r.status_code == 302
    assert r.headers["location"] == RedirectResponse(url).headers["location"]
    assert "no-store" in r.headers["cache-control"]


def test_scanners_and_instant_clicks_are_flagged_automated(
    runtime: Runtime, clock: ManualClock, sent: tuple[TestClient, dict[str, Any]]
) -> None:
    client, info = sent
    clock.advance(timedelta(seconds=2))
    client.get(click_path(runtime, info), headers={"User-Agent": BROWSER})
    clock.advance(timedelta(minutes=10))
    client.get(click_path(runtime, info), headers={"User-Agent": "Mozilla/5.0 (compatible; Barracuda Sentinel)"})
    reasons = [e["properties"]["automated_reason"] for e in tracked(runtime, "email_clicked")]
    assert reasons == ["too_soon_after_delivery", "scanner_user_agent"]


def test_open_pixel_is_an_uncacheable_gif_and_records_an_open(
    runtime: Runtime, clock: ManualClock, sent: tuple[TestClient, dict[str, Any]]
) -> None:
    client, info = sent
    clock.advance(timedelta(hours=1))
    url = links.open_url(BASE, runtime.settings.secret, info["key"], info["profile_id"]).removeprefix(BASE)
    r = client.get(url, headers={"User-Agent": BROWSER})
    assert r.status_code == 200 and r.headers["content-type"] == "image/gif" and r.content.startswith(b"GIF89a")
    assert "no-store" in r.headers["cache-control"]
    (event,) = tracked(runtime, "email_opened")
    assert event["properties"]["automated"] is False and event["properties"]["message_key"] == info["key"]


def unsubscribe_token(runtime: Runtime, info: dict[str, Any]) -> str:
    from tailormail.deliver.headers import unsubscribe_token as make

    return make(runtime.settings.secret, "ann@example.com", info["profile_id"], info["outbox_id"])


def test_the_list_unsubscribe_header_url_works_as_rfc_8058_one_click(
    runtime: Runtime, sent: tuple[TestClient, dict[str, Any]]
) -> None:
    client, info = sent
    header = email.message_from_bytes(info["mime"])["List-Unsubscribe"]
    url = header.split("<")[1].split(">")[0]
    path = "/" + url.split("/", 3)[3]
    assert client.get(path).status_code == 200  # the page asks; a GET changes nothing
    with runtime.store.read() as conn:
        assert outbox_q.suppressed_among(conn, ["ann@example.com"]) == {}
    r = client.post(
        path, content="List-Unsubscribe=One-Click", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert (r.status_code, r.text) == (200, "unsubscribed")
    with runtime.store.read() as conn:
        assert outbox_q.suppressed_among(conn, ["ann@example.com"]) == {"ann@example.com": "unsubscribe"}
        traits = profile_q.traits_of(conn, [info["profile_id"]])[info["profile_id"]]
    assert traits["unsubscribed"] is True
    assert tracked(runtime, "unsubscribed")[0]["properties"]["source"] == "one_click"


def test_preferences_by_topic_and_opting_back_in(runtime: Runtime, sent: tuple[TestClient, dict[str, Any]]) -> None:
    client, info = sent
    token = unsubscribe_token(runtime, info)
    page = client.get(f"/p/{token}")
    assert page.status_code == 200 and "ann@example.com" in page.text and "Offers" in page.text
    client.post(
        f"/p/{token}",
        content="topic=newsletter&topic=product_updates",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    with runtime.store.read() as conn:
        traits = profile_q.traits_of(conn, [info["profile_id"]])[info["profile_id"]]
        assert outbox_q.suppressed_among(conn, ["ann@example.com"]) == {}
    assert traits["unsubscribed_topics"] == ["offers"] and traits["unsubscribed"] is False
    client.post(f"/p/{token}", content="all_off=1", headers={"Content-Type": "application/x-www-form-urlencoded"})
    client.post(f"/p/{token}", content="topic=offers", headers={"Content-Type": "application/x-www-form-urlencoded"})
    with runtime.store.read() as conn:
        assert outbox_q.suppressed_among(conn, ["ann@example.com"]) == {}
    assert [e["event"] for e in tracked(runtime, "resubscribed")] == []
    assert len(tracked(runtime, "unsubscribed")) == 3


def test_view_in_browser_shows_the_sent_html(runtime: Runtime, sent: tuple[TestClient, dict[str, Any]]) -> None:
    client, info = sent
    r = client.get(links.view_url(BASE, runtime.settings.secret, info["key"]).removeprefix(BASE))
    assert r.status_code == 200 and "Hello Ann" in r.text


@pytest.mark.parametrize(
    ("agent", "address", "seconds", "reason"),
    [
        (BROWSER, "203.0.113.9", 3600, None),
        ("Mozilla/5.0", "203.0.113.9", 3600, "apple_privacy_proxy"),
        (BROWSER, "17.58.1.2", 3600, "apple_privacy_proxy"),
        (BROWSER, "17.0.0.0", 3600, "apple_privacy_proxy"),
        (BROWSER, "17.255.255.255", 3600, "apple_privacy_proxy"),
        (BROWSER, "16.255.255.255", 3600, None),
        (BROWSER, "18.0.0.1", 3600, None),
        (BROWSER, "117.1.2.3", 3600, None),
        (BROWSER, "2001:db8::17", 3600, None),
        (BROWSER, "testclient", 3600, None),
        (BROWSER, "17.1.2.3\x00", 3600, None),
        (
            "Mozilla/5.0 (Windows NT 10.0) Chrome/120 Safari/537.36 HeadlessChrome",
            "203.0.113.9",
            3600,
            "scanner_user_agent",
        ),
        ("Go-http-client/1.1", "203.0.113.9", 3600, "scanner_user_agent"),
        ("Mozilla/5.0 (compatible; Proofpoint)", "203.0.113.9", 3600, "scanner_user_agent"),
        (BROWSER, "203.0.113.9", 4, "too_soon_after_delivery"),
        ("", "203.0.113.9", 3600, "no_user_agent"),
        (BROWSER, None, None, None),
    ],
)
def test_automated_reason(agent: str, address: str | None, seconds: float | None, reason: str | None) -> None:
    assert automated_reason(agent, address, seconds, 10.0) == reason


@pytest.mark.parametrize(
    ("url", "utm", "expected"),
    [
        ("https://a.example/x", {}, "https://a.example/x"),
        ("https://a.example/x", {"utm_source": "tm"}, "https://a.example/x?utm_source=tm"),
        (
            "https://a.example/x?utm_source=own&q=1",
            {"utm_source": "tm", "utm_medium": "email"},
            "https://a.example/x?utm_source=own&q=1&utm_medium=email",
        ),
    ],
)
def test_utm_parameters_are_added_not_overwritten(url: str, utm: dict[str, str], expected: str) -> None:
    assert links.with_utm(url, utm) == expected


@pytest.mark.parametrize(
    ("key", "profile_id", "slot", "url", "utm"),
    [
        ("send-1:7", 7, Slot(3, "product_grid", 4), "https://shop.example/p/1?x=1", {"utm_source": "tm"}),
        ('j:é"', None, Slot(0, None, 1), "https://shop.example/é", {}),
        (
            "k",
            0,
            Slot(12, "hero", 13),
            "https://shop.example/?utm_source=kept",
            {"utm_source": "tm", "utm_medium": "email"},
        ),
    ],
)
def test_tracker_signs_compact_tokens_carrying_what_click_url_carries(
    key: str, profile_id: int | None, slot: Slot, url: str, utm: dict[str, str]
) -> None:
    tracker = links.Tracker(BASE + "/", "s3cret", utm)
    signed = tracker.signer({key: profile_id})
    general = links.click_url(BASE, "s3cret", key, profile_id, slot, links.with_utm(url, utm))
    payload = verify("s3cret", links.CLICK, general.rsplit("/", 1)[1])
    expected = f"{BASE}/c/{sign_compact('s3cret', links.CLICK, payload)}"
    assert signed(key, slot, url) == expected
    assert signed(key, slot, url) == expected  # again, from the link-section cache
    assert verify("s3cret", links.CLICK, expected.rsplit("/", 1)[1]) == payload
    assert len(expected) < len(general)


def test_tracker_system_links_are_the_signed_tokens() -> None:
    from tailormail.content.context import Recipient

    tracker = links.Tracker(BASE, "s3cret")
    person = Recipient(42, "zoë@example.com", "send-9:42")
    got = tracker.links_for(person)
    token = sign_compact("s3cret", "unsubscribe", {"email": "zoë@example.com", "profile_id": 42, "outbox_id": None})
    assert got == {
        "unsubscribe": f"{BASE}/u/{token}",
        "preferences": f"{BASE}/p/{token}",
        "view_in_browser": f"{BASE}/v/{sign_compact('s3cret', links.VIEW, {'k': 'send-9:42'})}",
        "open_pixel": f"{BASE}/o/{sign_compact('s3cret', links.OPEN, {'k': 'send-9:42', 'p': 42})}.gif",
    }
    # The JSON tokens sent before keep working next to the compact ones.
    assert verify("s3cret", links.OPEN, links.open_url(BASE, "s3cret", "send-9:42", 42)[len(BASE) + 3 : -4]) == {
        "k": "send-9:42",
        "p": 42,
    }
