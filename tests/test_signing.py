"""Signed tokens: round trip, and every kind of tampering refused."""

from __future__ import annotations

import pytest

from tailormail.track.signing import BadToken, sign, verify

SECRET = "s3cret"


def test_round_trip() -> None:
    token = sign(SECRET, "click", {"m": "msg-1", "l": 3})
    assert verify(SECRET, "click", token) == {"m": "msg-1", "l": 3}


@pytest.mark.parametrize(
    ("secret", "purpose", "mutate"),
    [
        ("other", "click", lambda t: t),  # wrong secret
        (SECRET, "unsubscribe", lambda t: t),  # signed for another purpose
        (SECRET, "click", lambda t: t[:-2] + ("AA" if t[-2:] != "AA" else "BB")),  # edited signature
        (SECRET, "click", lambda t: "f" + t[1:]),  # edited payload (tokens start with "e")
        (SECRET, "click", lambda t: t.split(".")[0]),  # no signature
        (SECRET, "click", lambda t: "!!!." + t.split(".")[1]),  # garbage
        ("", "click", lambda t: t),  # no secret configured
    ],
)
def test_tampering_is_refused(secret: str, purpose: str, mutate) -> None:  # type: ignore[no-untyped-def]
    token = mutate(sign(SECRET, "click", {"m": "msg-1", "l": 3}))
    with pytest.raises(BadToken):
        verify(secret, purpose, token)


def test_prepared_key_is_rfc2104_hmac_sha256() -> None:
    import hashlib
    import hmac

    from tailormail.track.signing import Key

    key = hashlib.sha256(b"click:" + SECRET.encode()).digest()
    for data in (b"", b"abc", b"x" * 200):
        assert Key(SECRET, "click").mac(data) == hmac.digest(key, data, "sha256")


def _old_sign(secret: str, purpose: str, payload: dict) -> str:  # type: ignore[type-arg]
    """The token as it was first written (json.dumps, hmac module): tokens already sent must still verify."""
    import base64
    import hashlib
    import hmac
    import json

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")

    body = b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode("utf-8"))
    key = hashlib.sha256(f"{purpose}:{secret}".encode()).digest()
    return f"{body}.{b64(hmac.new(key, body.encode('ascii'), hashlib.sha256).digest())}"


PAYLOADS = [
    {"m": "msg-1", "l": 3},
    {"k": "send:1", "p": None, "l": 0, "b": None, "i": 1, "u": 'https://x.example/é?a=1&b="q"'},
    {"email": "zoë@example.com", "profile_id": 12, "outbox_id": None},
    {"k": "a\\b\u2028", "p": -5, "nested": {"z": [1, 2.5, True]}},
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_tokens_are_unchanged_and_old_ones_verify(payload: dict) -> None:  # type: ignore[type-arg]
    old = _old_sign(SECRET, "click", payload)
    assert sign(SECRET, "click", payload) == old
    assert verify(SECRET, "click", old) == payload


@pytest.mark.parametrize(
    "value", ["plain", 'é"\\\n\u2028😀', "", None, 0, -12, 10**20, True, 1.5, [1, "a"], {"b": 1, "a": None}]
)
def test_json_value_matches_json_dumps(value: object) -> None:
    import json

    from tailormail.track.signing import json_value

    assert json_value(value) == json.dumps(value, separators=(",", ":"), sort_keys=True)
