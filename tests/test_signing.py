"""Signed tokens: round trip, and every kind of tampering refused."""

from __future__ import annotations

import pytest

from tailormail.track.signing import (
    MAC_BYTES,
    BadToken,
    _unb64,
    b64,
    compact_key,
    key_for,
    pack,
    section,
    sign,
    sign_compact,
    unpack,
    verify,
)

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


# --- the compact format ------------------------------------------------------------

COMPACT_PAYLOADS = [
    ("click", {"k": "send-1:7", "p": 7, "b": "product_grid", "i": 4, "l": 3, "u": "https://shop.example/p/1?x=1"}),
    ("click", {"k": 'j:é"', "p": None, "b": None, "i": 1, "l": 0, "u": "http://x.example/é?a=1&b=2"}),
    ("click", {"k": "", "p": -5, "b": "", "i": 0, "l": 10**20, "u": "mailto:a@b.example"}),
    ("click", {"k": "k" * 300, "p": 0, "b": "hero", "i": 2, "l": 1, "u": "https://" + "a" * 5000}),
    ("open", {"k": "campaign:spring/profile:12", "p": 12}),
    ("view", {"k": "welcome:3:send:0"}),
    ("unsubscribe", {"email": "zoë@example.com", "outbox_id": None, "profile_id": 42}),
]


@pytest.mark.parametrize(("purpose", "payload"), COMPACT_PAYLOADS)
def test_compact_round_trip(purpose: str, payload: dict) -> None:  # type: ignore[type-arg]
    token = sign_compact(SECRET, purpose, payload)
    assert "." not in token and "=" not in token
    assert verify(SECRET, purpose, token) == payload


def test_compact_token_is_shorter_than_json() -> None:
    purpose, payload = COMPACT_PAYLOADS[0]
    assert len(sign_compact(SECRET, purpose, payload)) < 0.75 * len(sign(SECRET, purpose, payload))


def _flip(token: str, index: int) -> str:
    """The token with one byte of its decoded form changed (re-encoded canonically)."""
    data = bytearray(_unb64(token))
    data[index] ^= 1
    return b64(bytes(data))


@pytest.mark.parametrize(
    ("secret", "purpose", "mutate"),
    [
        ("other", "click", lambda t: t),  # wrong secret
        (SECRET, "open", lambda t: t),  # signed for another purpose
        (SECRET, "nonsense", lambda t: t),  # a purpose with no compact fields
        (SECRET, "click", lambda t: _flip(t, 0)),  # version byte
        (SECRET, "click", lambda t: _flip(t, 5)),  # payload
        (SECRET, "click", lambda t: _flip(t, -1)),  # MAC
        (SECRET, "click", lambda t: t[:-1] + ("A" if t[-1] != "A" else "B")),  # edited last character
        (SECRET, "click", lambda t: t[:-2]),  # truncated
        (SECRET, "click", lambda t: t + "AAAA"),  # extended
        (SECRET, "click", lambda t: t[:10] + "!" + t[10:]),  # a character base64 decoding would skip
        (SECRET, "click", lambda t: "AA"),  # too short
        (SECRET, "click", lambda t: "é" + t),  # not ASCII
        ("", "click", lambda t: t),  # no secret configured
    ],
)
def test_compact_tampering_is_refused(secret: str, purpose: str, mutate) -> None:  # type: ignore[no-untyped-def]
    token = mutate(sign_compact(SECRET, "click", COMPACT_PAYLOADS[0][1]))
    with pytest.raises(BadToken):
        verify(secret, purpose, token)


def test_compact_tokens_have_their_own_key() -> None:
    """A compact body MACed with the JSON format's key does not verify (the formats never mix)."""
    data = section(["k", 1], first=True)
    forged = b64(data + key_for(SECRET, "open").mac(data)[:MAC_BYTES])
    with pytest.raises(BadToken):
        verify(SECRET, "open", forged)
    assert verify(SECRET, "open", compact_key(SECRET, "open").compact(data)) == {"k": "k", "p": 1}


def test_compact_padding_must_be_zero() -> None:
    data = bytearray(section(["kk"], first=True))  # version, header, 2 bytes: 4, padded to 6
    assert data[-1] == 0  # padded to a multiple of 3
    data[-1] = 7
    with pytest.raises(BadToken):
        verify(SECRET, "view", compact_key(SECRET, "view").compact(bytes(data)))


@pytest.mark.parametrize(
    ("values", "encoded"),
    [
        ([None], b"\0"),
        ([0], b"\x09" + b"0"),
        ([-12], b"\x19" + b"-12"),
        (["ab"], b"\x12" + b"ab"),
        (["é"], b"\x12" + "é".encode()),
        (["https://a.b"], b"\x1b" + b"a.b"),
        (["http://a.b"], b"\x1c" + b"a.b"),
        (["x" * 16], b"\x82\x01" + b"x" * 16),  # a two-byte length
        ([None, 1, "a"], b"\0" + b"\x09" + b"1" + b"\x0a" + b"a"),
    ],
)
def test_pack_and_unpack(values: list, encoded: bytes) -> None:  # type: ignore[type-arg]
    assert pack(values) == encoded
    assert unpack(encoded, 0, len(values)) == (values, len(encoded))


@pytest.mark.parametrize("value", [True, 1.5, [1], {"a": 1}, b"x"])
def test_pack_refuses_other_types(value: object) -> None:
    with pytest.raises(TypeError):
        pack([value])  # type: ignore[list-item]


@pytest.mark.parametrize("data", [b"", b"\x12a", b"\x07", b"\x80"])
def test_unpack_refuses_malformed(data: bytes) -> None:
    with pytest.raises((ValueError, IndexError)):
        unpack(data, 0, 1)
