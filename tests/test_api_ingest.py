"""The Segment HTTP API, in-process: auth, wire format, limits, idempotency."""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tailormail.api.app import create_app
from tailormail.api.auth import KEY_TRUST_SECONDS, key_cache
from tailormail.clock import to_ms
from tailormail.runtime import Runtime
from tailormail.store import keys
from tailormail.store.schema import events


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime)) as c:
        yield c


def make_key(runtime: Runtime, scope: str) -> str:
    with runtime.store.begin() as conn:
        return keys.create_key(conn, scope, "t", to_ms(runtime.clock.now()))[1]


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def stored(runtime: Runtime) -> int:
    with runtime.store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(events)).scalar_one())


def msg(i: int) -> dict[str, object]:
    return {"type": "track", "userId": f"u{i}", "event": "product_view", "messageId": f"m{i}"}


def test_batch_answers_exactly_success_true(client: TestClient, runtime: Runtime) -> None:
    key = make_key(runtime, "write")
    r = client.post("/v1/batch", json={"batch": [msg(1), msg(2)]}, headers=basic(key))
    assert (r.status_code, r.json()) == (200, {"success": True})
    assert stored(runtime) == 2


def test_write_key_in_body_and_gzip_are_accepted(client: TestClient, runtime: Runtime) -> None:
    key = make_key(runtime, "write")
    body = gzip.compress(json.dumps({"writeKey": key, "batch": [msg(3)]}).encode())
    r = client.post("/v1/batch", content=body, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})
    assert r.status_code == 200 and stored(runtime) == 1


@pytest.mark.parametrize("path", ["/v1/track", "/v1/identify", "/v1/page", "/v1/screen", "/v1/group", "/v1/alias"])
def test_single_call_endpoints(client: TestClient, runtime: Runtime, path: str) -> None:
    key = make_key(runtime, "write")
    body = {"userId": "u1", "event": "x", "groupId": "g", "previousId": "anon", "messageId": path}
    r = client.post(path, json=body, headers=basic(key))
    assert r.json() == {"success": True}
    assert stored(runtime) == 1


def test_missing_unknown_and_revoked_keys_are_refused(client: TestClient, runtime: Runtime) -> None:
    assert client.post("/v1/batch", json={"batch": [msg(1)]}).status_code == 401
    assert client.post("/v1/batch", json={"batch": [msg(1)]}, headers=basic("tm_write_nope")).status_code == 401
    key = make_key(runtime, "write")
    with runtime.store.begin() as conn:
        keys.revoke_key(conn, keys.list_keys(conn)[0].id, 0)
    assert client.post("/v1/batch", json={"batch": [msg(1)]}, headers=basic(key)).status_code == 401
    assert stored(runtime) == 0


def test_a_key_revoked_elsewhere_is_refused_once_its_trust_runs_out(client: TestClient, runtime: Runtime) -> None:
    seconds = [100.0]
    key_cache(runtime).clock = lambda: seconds[0]
    key = make_key(runtime, "write")
    assert client.post("/v1/batch", json={"batch": [msg(1)]}, headers=basic(key)).status_code == 200
    with runtime.store.begin() as conn:  # as `tailormail keys revoke` does from another process
        keys.revoke_key(conn, keys.list_keys(conn)[0].id, 0)
    seconds[0] += KEY_TRUST_SECONDS - 0.1
    assert client.post("/v1/batch", json={"batch": [msg(2)]}, headers=basic(key)).status_code == 200
    seconds[0] += 0.1
    assert client.post("/v1/batch", json={"batch": [msg(3)]}, headers=basic(key)).status_code == 401
    assert stored(runtime) == 2


def test_a_trusted_write_key_still_may_not_read_profiles(client: TestClient, runtime: Runtime) -> None:
    write = make_key(runtime, "write")
    assert client.post("/v1/track", json=msg(1), headers=basic(write)).status_code == 200  # now trusted
    assert client.get("/v1/profiles/u1", headers=basic(write)).status_code == 403


def test_write_keys_may_not_read_profiles(client: TestClient, runtime: Runtime) -> None:
    write, admin = make_key(runtime, "write"), make_key(runtime, "admin")
    client.post("/v1/track", json=msg(1), headers=basic(write))
    assert client.get("/v1/profiles/u1", headers=basic(write)).status_code == 403
    assert client.get("/v1/profiles/u1", headers=basic(admin)).status_code == 200


def test_malformed_message_names_field_and_index_and_writes_nothing(client: TestClient, runtime: Runtime) -> None:
    key = make_key(runtime, "write")
    r = client.post("/v1/batch", json={"batch": [msg(1), {"type": "track", "userId": "u"}]}, headers=basic(key))
    assert r.status_code == 400
    assert r.json()["field"] == "event" and r.json()["index"] == 1 and r.json()["code"] == "invalid_request"
    assert stored(runtime) == 0


def test_oversized_message_is_400_and_oversized_batch_is_413(client: TestClient, runtime: Runtime) -> None:
    key = make_key(runtime, "write")
    big = {**msg(1), "properties": {"blob": "x" * 33_000}}
    r = client.post("/v1/batch", json={"batch": [big]}, headers=basic(key))
    assert r.status_code == 400 and r.json()["code"] == "payload_too_large"
    many = [{**msg(i), "properties": {"blob": "y" * 20_000}} for i in range(30)]
    r = client.post("/v1/batch", json={"batch": many}, headers=basic(key))
    assert r.status_code == 413 and "limit" in r.json()["message"]
    assert stored(runtime) == 0


def test_gzip_bomb_is_refused_without_inflating_it(client: TestClient, runtime: Runtime) -> None:
    key = make_key(runtime, "write")
    bomb = gzip.compress(b"{" + b" " * 50_000_000 + b"}")
    r = client.post("/v1/batch", content=bomb, headers={**basic(key), "Content-Encoding": "gzip"})
    assert r.status_code == 413


def test_repeated_batch_is_idempotent(client: TestClient, runtime: Runtime) -> None:
    key = make_key(runtime, "write")
    for _ in range(2):
        assert client.post("/v1/batch", json={"batch": [msg(1), msg(2)]}, headers=basic(key)).status_code == 200
    assert stored(runtime) == 2


def test_profile_patch_export_and_erase(client: TestClient, runtime: Runtime) -> None:
    admin = make_key(runtime, "admin")
    client.post(
        "/v1/identify", json={"userId": "u7", "traits": {"firstName": "Jo", "city": "Oslo"}}, headers=basic(admin)
    )
    client.post("/v1/track", json={**msg(70), "userId": "u7"}, headers=basic(admin))
    r = client.patch("/v1/profiles/u7", json={"traits": {"city": None, "plan": "gold"}}, headers=basic(admin))
    assert r.json()["traits"] == {"firstName": "Jo", "plan": "gold"}
    view = client.get("/v1/profiles/u7", headers=basic(admin)).json()
    assert [e["type"] for e in view["events"]] == ["track", "identify"] or len(view["events"]) == 2
    exported = client.get("/v1/profiles/u7/export", headers=basic(admin)).json()
    assert len(exported["events"]) == 2
    assert client.delete("/v1/profiles/u7", headers=basic(admin)).status_code == 204
    assert client.get("/v1/profiles/u7", headers=basic(admin)).status_code == 404
    assert stored(runtime) == 0


BATCH_CASES = [
    ("success", {}, json.dumps({"batch": [msg(900)]}).encode()),
    ("body key", {}, json.dumps({"batch": [msg(901)], "writeKey": "KEY"}).encode()),
    ("gzip", {"Content-Encoding": "gzip"}, gzip.compress(json.dumps({"batch": [msg(902)]}).encode())),
    ("bad gzip", {"Content-Encoding": "gzip"}, b"not gzip"),
    ("not JSON", {}, b"{nope"),
    ("not an object", {}, b"[1, 2]"),
    ("batch not a list", {}, b'{"batch": {}}'),
    ("bad message", {}, json.dumps({"batch": [msg(903), {"type": "track", "userId": "u"}]}).encode()),
    ("too large", {}, json.dumps({"batch": [msg(904)], "pad": "x" * 600_000}).encode()),
    ("repeat", {}, json.dumps({"batch": [msg(900)]}).encode()),
]


@pytest.mark.parametrize(("case", "headers", "body"), BATCH_CASES, ids=[c[0] for c in BATCH_CASES])
@pytest.mark.parametrize("auth", ["basic", "none", "unknown"])
def test_fast_batch_answers_as_the_fastapi_route(
    runtime: Runtime, case: str, headers: dict[str, str], body: bytes, auth: str
) -> None:
    """``POST /v1/batch`` is served in front of FastAPI: same checks, same order, same answers."""
    from tailormail.api.app import routes

    key = make_key(runtime, "write")
    sent = {"basic": basic(key), "none": {}, "unknown": basic("tm_write_nope")}[auth]
    if case == "body key":
        body, sent = body.replace(b"KEY", key.encode()), {}
    answers = []
    for app in (routes(runtime), create_app(runtime)):
        with TestClient(app) as c:
            response = c.post("/v1/batch", content=body, headers={**sent, **headers})
        answers.append((response.status_code, response.json(), response.headers.get("www-authenticate")))
    assert answers[0] == answers[1]
