"""The data every template sees, the same in Liquid and Handlebars.

=====================  ====================================================
``customer`` / ``user``  traits as ingested (``firstName``, ``email``...) plus
                         ``location`` (a state's full name, else city or
                         country) and ``recommendations``
``segment``              memberships: ``segment.active_buyers`` is true/false,
                         also as camelCase (``segment.activeBuyers``), and
                         ``segment.purchaseHistory``: has purchased before
``predicted``            scores, ``traits["predicted"]``
``purchase_history``     the last orders, newest first, each with its lines
``recommendations``      products: name, price ("19.99"), url, image
``event``                the trigger's properties (e.g. the cart's items)
``campaign``             the send's name and settings
``links``                unsubscribe, preferences, view_in_browser, open_pixel
``variant``              the block variants chosen for this person
=====================  ====================================================
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

US_STATES = {
    "AL": "Alabama", "AK": "Alaska", "AZ": "Arizona", "AR": "Arkansas", "CA": "California", "CO": "Colorado",
    "CT": "Connecticut", "DE": "Delaware", "DC": "District of Columbia", "FL": "Florida", "GA": "Georgia",
    "HI": "Hawaii", "ID": "Idaho", "IL": "Illinois", "IN": "Indiana", "IA": "Iowa", "KS": "Kansas",
    "KY": "Kentucky", "LA": "Louisiana", "ME": "Maine", "MD": "Maryland", "MA": "Massachusetts", "MI": "Michigan",
    "MN": "Minnesota", "MS": "Mississippi", "MO": "Missouri", "MT": "Montana", "NE": "Nebraska", "NV": "Nevada",
    "NH": "New Hampshire", "NJ": "New Jersey", "NM": "New Mexico", "NY": "New York", "NC": "North Carolina",
    "ND": "North Dakota", "OH": "Ohio", "OK": "Oklahoma", "OR": "Oregon", "PA": "Pennsylvania",
    "RI": "Rhode Island", "SC": "South Carolina", "SD": "South Dakota", "TN": "Tennessee", "TX": "Texas",
    "UT": "Utah", "VT": "Vermont", "VA": "Virginia", "WA": "Washington", "WV": "West Virginia",
    "WI": "Wisconsin", "WY": "Wyoming",
}  # fmt: skip
"""US state codes to names, so ``customer.location == 'California'`` works for ``state: CA``."""


@dataclass
class Recipient:
    """One person to render for: who, where to, and the data about them."""

    profile_id: int
    email: str
    message_key: str
    """The idempotency key of this mail; the Message-ID derives from it."""
    traits: dict[str, Any] = field(default_factory=dict)
    segments: Iterable[str] = ()
    purchase_history: list[dict[str, Any]] = field(default_factory=list)
    recommendations: list[dict[str, Any]] = field(default_factory=list)
    event: dict[str, Any] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    user_id: str | None = None


@functools.lru_cache(maxsize=4096)
def camel(name: str) -> str:
    """``active_buyers`` -> ``activeBuyers`` (Segment's spec spells traits in camelCase)."""
    head, *rest = name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def location_of(traits: Mapping[str, Any]) -> str:
    """A person's location for templates: explicit ``location``, else state name, city, country."""
    explicit = traits.get("location")
    if isinstance(explicit, str) and explicit:
        return explicit
    raw_address = traits.get("address")
    address: Mapping[str, Any] = raw_address if isinstance(raw_address, dict) else {}
    for key in ("state", "city", "country"):
        value = traits.get(key) or address.get(key)
        if isinstance(value, str) and value:
            return US_STATES.get(value.upper(), value) if key == "state" else value
    return ""


def segment_flags(known: Iterable[str], member_of: Iterable[str], has_purchased: bool) -> dict[str, bool]:
    """Membership flags by name and camelCase alias, plus ``purchaseHistory``."""
    members = set(member_of)
    flags: dict[str, bool] = {}
    for name in {*known, *members}:
        flags[name] = flags[camel(name)] = name in members
    # Not a stored segment: "has purchased before", from the person's order history.
    flags["purchaseHistory"] = flags["purchase_history"] = has_purchased
    return flags


def build_context(
    recipient: Recipient,
    *,
    campaign: Mapping[str, Any],
    known_segments: Iterable[str] = (),
    variant: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The template data for one recipient (see the module docstring)."""
    traits = recipient.traits
    customer = dict(traits)
    customer.setdefault("email", recipient.email)
    customer["location"] = location_of(traits)
    customer["recommendations"] = recipient.recommendations
    predicted = traits.get("predicted")
    return {
        "customer": customer,
        "user": customer,
        "segment": segment_flags(known_segments, recipient.segments, bool(recipient.purchase_history)),
        "predicted": predicted if isinstance(predicted, dict) else {},
        "purchase_history": recipient.purchase_history,
        "recommendations": recipient.recommendations,
        "event": recipient.event,
        "campaign": dict(campaign),
        "links": recipient.links,
        "variant": dict(variant or {}),
    }
