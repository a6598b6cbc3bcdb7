"""The data a template may read: the profile schema plus the template's own data."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field

from tailormail.content.context import camel
from tailormail.content.engines import ROOTS
from tailormail.content.lint.findings import Finding
from tailormail.content.lint.variables import Reference

SEGMENT_SPEC_TRAITS = frozenset(
    {
        "address",
        "age",
        "avatar",
        "birthday",
        "company",
        "createdAt",
        "description",
        "email",
        "firstName",
        "gender",
        "id",
        "lastName",
        "name",
        "phone",
        "title",
        "username",
        "website",
        "location",
        "country",
        "state",
        "city",
        "language",
        "timezone",
    }
)
"""Segment's reserved identify traits (and the location ones content rules use): always known."""

PROFILE_EXTRAS = frozenset({"recommendations", "purchase_history", "predicted", "user_id"})
"""Names the renderer adds to ``customer``/``user`` besides traits."""

PRODUCT_FIELDS = frozenset({"product_id", "id", "name", "price", "url", "image", "category"})
"""What each item of ``recommendations`` has."""

LINK_NAMES = frozenset({"unsubscribe", "preferences", "view_in_browser", "open_pixel"})
"""The links every email gets."""

FREE_ROOTS = frozenset(ROOTS - {"customer", "user", "segment", "recommendations", "links"}) | {
    "forloop",
    "tablerowloop",
}
"""Roots whose inside is free-form (trigger payloads, campaign settings, model names, variants)."""

ALWAYS_SEGMENTS = frozenset({"purchaseHistory", "purchase_history"})
"""Segment flags the renderer always sets (has purchased before)."""

PROFILE_ROOTS = frozenset({"customer", "user"})


@dataclass
class Schema:
    """Known names: profile traits and segments (the template's own names come from analysis)."""

    traits: set[str] = field(default_factory=lambda: set(SEGMENT_SPEC_TRAITS))
    segments: set[str] = field(default_factory=set)

    @property
    def roots(self) -> set[str]:
        """Every top-level name a template may read."""
        return {*PROFILE_ROOTS, *FREE_ROOTS, "segment", "recommendations", "links"}

    @property
    def segment_flags(self) -> set[str]:
        """Names ``segment.X`` may use: each segment, also in camelCase, and the built-in flags."""
        return {*self.segments, *(camel(s) for s in self.segments), *ALWAYS_SEGMENTS}

    def with_traits(self, names: Iterable[str]) -> Schema:
        """A copy that also knows these traits (observed in the store)."""
        return Schema(self.traits | set(names), set(self.segments))

    def check(self, ref: Reference) -> Finding | None:
        """A finding when ``ref`` reads a name this schema does not have."""
        if ref.scope is not None:
            return self._check_scoped(ref)
        if not ref.path:
            return None
        root = str(ref.path[0])
        if root not in self.roots:
            return _unknown(ref, root, self.roots, "is not a known variable")
        rest = ref.path[1:]
        if not rest or not isinstance(rest[0], str):
            return self._check_item(ref, root, rest)
        return self._check_member(ref, root, rest[0])

    def _check_member(self, ref: Reference, root: str, name: str) -> Finding | None:
        if root in PROFILE_ROOTS and name not in self.traits and name not in PROFILE_EXTRAS:
            return _unknown(ref, name, self.traits, "is not a known profile trait")
        if root == "links" and name not in LINK_NAMES:
            return _unknown(ref, name, LINK_NAMES, "is not a link every email has")
        if root == "segment" and self.segments and name not in self.segment_flags:
            return Finding(
                "unknown-segment",
                f"{ref.text}: no segment named {name!r} is defined, so it is always false",
                ref.file,
                ref.line,
                hint=_suggest(name, self.segment_flags) or "define it in segments/ or fix the name",
            )
        if root == "recommendations" and name not in ("first", "last", "size"):
            return _unknown(ref, name, PRODUCT_FIELDS, "is not a field of recommendations[n]")
        return None

    def _check_item(self, ref: Reference, root: str, rest: tuple[str | int, ...]) -> Finding | None:
        field_name = rest[1] if root == "recommendations" and len(rest) >= 2 else None
        if isinstance(field_name, str) and field_name not in PRODUCT_FIELDS:
            return _unknown(ref, field_name, PRODUCT_FIELDS, "is not a product field")
        return None

    def _check_scoped(self, ref: Reference) -> Finding | None:
        """Inside ``{{#each X}}``: a product field when X is the recommendations."""
        if ref.scope.split(".")[-1] != "recommendations" or not ref.path:  # type: ignore[union-attr]
            return None
        name = str(ref.path[0])
        if name not in PRODUCT_FIELDS:
            return _unknown(ref, name, PRODUCT_FIELDS, f"is not a field of {ref.scope} items")
        return None


def _unknown(ref: Reference, name: str, known: Iterable[str], what: str) -> Finding:
    return Finding(
        "unknown-variable",
        f"{ref.text}: {name!r} {what}",
        ref.file,
        ref.line,
        hint=_suggest(name, known) or "fix the name, or list the trait under [lint] traits in tailormail.toml",
    )


def _suggest(name: str, known: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else None
