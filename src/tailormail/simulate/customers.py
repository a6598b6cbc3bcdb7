"""Simulated customers: who they are (traits) and how they behave (propensities).

Customers are generated in fixed blocks of ``BLOCK`` with one random stream per
block, so customer ``i`` is the same person whatever the total count: simulating
2,000 customers after 1,000 adds exactly the second thousand.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import numpy as np

from tailormail.simulate.catalog import Catalog
from tailormail.simulate.places import EMAIL_DOMAINS, FIRST_NAMES, LAST_NAMES, PLACES

BLOCK = 1000
"""Customers per random stream; fixed so that data never depends on batch sizes."""

DAY = 86_400
"""Seconds in a day."""


@dataclass(frozen=True)
class Archetype:
    """A kind of customer: how often they come and how readily they buy."""

    name: str
    share: float
    sessions_per_day: float
    cart_rate: float
    """Chance that one product view ends in add_to_cart."""
    checkout_rate: float
    """Chance that a session with a cart starts checkout."""
    purchase_rate: float
    """Chance that a started checkout becomes a purchase (now or later)."""
    delayed_share: float
    """Of those purchases, the share completed in a later visit (hours or days after)."""


ARCHETYPES: tuple[Archetype, ...] = (
    Archetype("heavy", 0.05, 0.25, 0.30, 0.75, 0.85, 0.20),
    Archetype("regular", 0.25, 0.08, 0.22, 0.65, 0.75, 0.25),
    Archetype("occasional", 0.35, 0.03, 0.18, 0.55, 0.70, 0.30),
    Archetype("browser", 0.20, 0.06, 0.08, 0.30, 0.00, 0.00),
    Archetype("lapsing", 0.10, 0.09, 0.22, 0.65, 0.75, 0.25),
    Archetype("newcomer", 0.05, 0.10, 0.20, 0.60, 0.70, 0.25),
)
"""Heavy, regular and occasional buyers; browsers who never buy; customers who
lapse midway; new signups late in the period."""

LAPSING = 4
NEWCOMER = 5
ARCHETYPE_NAMES = [a.name for a in ARCHETYPES]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class CustomerBlock:
    """One block of customers as arrays (row k is customer ``first + k``)."""

    first: int
    archetype: np.ndarray
    signup: np.ndarray
    """Signup time, seconds since the epoch (before or inside the window)."""
    active_from: np.ndarray
    active_to: np.ndarray
    """End of activity: the window's end, or the moment a lapsing customer stops."""
    rate: np.ndarray
    """Sessions per (weighted) day of this customer."""
    place: np.ndarray
    affinity_cum: np.ndarray
    """Cumulative category preferences, one row per customer."""
    names: list[tuple[str, str]]
    phone: np.ndarray
    """A phone number's digits, or -1 when the customer gave none."""
    birthday: np.ndarray
    """Birthday, days since the epoch."""
    consent: np.ndarray

    def __len__(self) -> int:
        return len(self.archetype)

    def user_id(self, k: int, seed: int) -> str:
        """The userId of row ``k``."""
        return customer_user_id(seed, self.first + k)

    def traits(self, k: int) -> dict[str, Any]:
        """The Segment identify traits of row ``k``."""
        place = PLACES[int(self.place[k])]
        first, last = self.names[k]
        index = self.first + k
        traits: dict[str, Any] = {
            "firstName": first,
            "lastName": last,
            "email": f"{_ascii(first)}.{_ascii(last)}.{index}@{EMAIL_DOMAINS[index % len(EMAIL_DOMAINS)]}",
            "country": place.country,
            "state": place.state,
            "city": place.city,
            "location": place.state,
            "address": {"city": place.city, "state": place.state, "country": place.country},
            "timezone": place.timezone,
            "language": place.language,
            "birthday": (EPOCH + timedelta(days=int(self.birthday[k]))).date().isoformat(),
            "createdAt": iso(int(self.signup[k])),
            "consent": {"email": bool(self.consent[k])},
        }
        if self.phone[k] >= 0:
            traits["phone"] = f"{place.phone_prefix} {int(self.phone[k]):010d}"
        return traits


def customer_user_id(seed: int, index: int) -> str:
    """The userId of simulated customer ``index`` under ``seed``."""
    return f"cust-{seed}-{index:07d}"


def iso(seconds: int) -> str:
    """An ISO-8601 UTC time with a Z, exact to the second."""
    return (EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


@cache
def _ascii(name: str) -> str:
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return "".join(ch for ch in plain.lower() if ch.isalnum())


def make_block(seed: int, block: int, start: int, end: int, catalog: Catalog) -> CustomerBlock:
    """The customers of block number ``block`` for the window [start, end) in seconds."""
    rng = np.random.default_rng([seed, 0xC057, block])
    n = BLOCK
    shares = np.array([a.share for a in ARCHETYPES])
    archetype = rng.choice(len(ARCHETYPES), size=n, p=shares / shares.sum())
    signup = _signups(rng, archetype, start, end)
    active_from = np.maximum(signup, start)
    lapse = active_from + rng.uniform(0.2, 0.6, n) * (end - active_from)
    active_to = np.where(archetype == LAPSING, lapse.astype(np.int64), end)
    base_rate = np.array([a.sessions_per_day for a in ARCHETYPES])[archetype]
    rate = base_rate * rng.lognormal(-0.125, 0.5, n)  # individuals differ; mean stays the archetype's
    place_weights = np.array([p.weight for p in PLACES])
    place = rng.choice(len(PLACES), size=n, p=place_weights / place_weights.sum())
    affinity = 0.85 * rng.dirichlet(catalog.category_weight * 2.0, size=n) + 0.15 * catalog.category_weight
    name_draws = rng.random((n, 2))
    age_days = (18 + rng.gamma(4.0, 5.0, n).clip(0, 62)) * 365.25
    birthday = ((end - age_days * DAY) // DAY).astype(np.int64)
    phone = np.where(rng.random(n) < 0.6, rng.integers(2_000_000_000, 9_999_999_999, n), -1)
    return CustomerBlock(
        first=block * BLOCK,
        archetype=archetype,
        signup=signup,
        active_from=active_from,
        active_to=active_to,
        rate=rate,
        place=place,
        affinity_cum=np.cumsum(affinity, axis=1),
        names=[_name(int(p), draw) for p, draw in zip(place, name_draws, strict=True)],
        phone=phone,
        birthday=birthday,
        consent=rng.random(n) < 0.85,
    )


def _signups(rng: np.random.Generator, archetype: np.ndarray, start: int, end: int) -> np.ndarray:
    """Signup times: most before the window (up to 3 years), some inside it, newcomers late in it."""
    n = len(archetype)
    span = end - start
    before = start - (rng.uniform(0, 3 * 365, n) * DAY).astype(np.int64)
    inside = start + (rng.uniform(0, 0.75, n) * span).astype(np.int64)
    late = start + (rng.uniform(0.75, 0.97, n) * span).astype(np.int64)
    signup = np.where(rng.random(n) < 0.7, before, inside)
    return np.where(archetype == NEWCOMER, late, signup).astype(np.int64)


def _name(place: int, draw: np.ndarray) -> tuple[str, str]:
    language = PLACES[place].language
    firsts, lasts = FIRST_NAMES[language], LAST_NAMES[language]
    return firsts[int(draw[0] * len(firsts))], lasts[int(draw[1] * len(lasts))]
