"""The plain-text part from pieces: blank-line runs cut at the pieces' edges, as the regex cuts the joined text."""

from __future__ import annotations

import binascii
import random
import re

import pytest

from tailormail.content.render import cut_blank_runs, text_body

BLANK_LINES = re.compile(r"\n(?:[ \t]*\n){2,}")


def _decoded(body: str | bytes) -> str:
    if isinstance(body, str):
        return body
    assert all(len(line) <= 76 for line in body.split(b"\r\n"))
    assert b"\n" not in body.replace(b"\r\n", b"")
    return binascii.a2b_qp(body).decode("utf-8").replace("\r\n", "\n")


@pytest.mark.parametrize(
    ("pieces", "cut"),
    [
        (["a\n\n", "\n\nb"], ["a\n\n", "b"]),
        (["a\n", "\n", "\n", "\nb"], ["a\n", "\n", "b"]),
        (["a\n", "\n\n\nb"], ["a\n", "\nb"]),
        (["a\n\n", "", "\n\n", "b"], ["a\n\n", "b"]),
        (["a", "\n\nb"], ["a", "\n\nb"]),
        (["a\n\n\n", "b"], ["a\n\n\n", "b"]),  # inside one piece: left to the regex
        (["a\n\n", " \n\nb"], ["a\n\n", " \n\nb"]),
        (["Hi ", "", ",\n\n", "\n\nThanks"], ["Hi ", ",\n\n", "Thanks"]),
    ],
)
def test_cut_blank_runs(pieces: list[str], cut: list[str]) -> None:
    assert cut_blank_runs(pieces) == cut


@pytest.mark.parametrize(
    "pieces",
    [
        ["TAILORMAIL SHOP\n\n", "\n\nHi ", "Zoë", ",\n\n", "\n\nSee (", "https://t.example/c/abc", ")\n\n", "\n"],
        ["a\n\n", " \n\nb"],  # a blank line of spaces: the regex decides
        ["a\n\n\n\n", "b"],
        ["trailing space ", "\n", "tab\t", "\n\n", "\n", "x = 1 ", "=", "\n"],
        ["", "", ""],
        ["line " * 40 + "\n\n", "\n\n", "end"],
    ],
)
def test_text_body_decodes_to_the_regex_result(pieces: list[str]) -> None:
    assert _decoded(text_body(pieces)) == BLANK_LINES.sub("\n\n", "".join(pieces))


def test_text_body_matches_the_regex_on_random_pieces() -> None:
    rng = random.Random(5)
    alphabet = ["\n", "\n", "\n", " ", "\t", "a", "é", "=", "x" * 80, "\n\n", ""]
    for _ in range(3000):
        pieces = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 4))) for _ in range(rng.randint(0, 8))]
        assert _decoded(text_body(pieces)) == BLANK_LINES.sub("\n\n", "".join(pieces)), pieces
