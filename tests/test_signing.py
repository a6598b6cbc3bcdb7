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
