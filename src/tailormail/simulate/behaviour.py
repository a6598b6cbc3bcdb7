"""What simulated customers do: sessions of views, carts, checkouts and purchases.

Everything random is drawn per block with numpy (session counts and times,
categories, products, quantities, outcomes); only the assembly of each event
is a Python loop, because every event ends up as its own Python object anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from tailormail.config import EventNames
from tailormail.ingest.messages import Message
from tailormail.simulate.catalog import Catalog
from tailormail.simulate.customers import ARCHETYPES, DAY, CustomerBlock
from tailormail.simulate.places import PLACES

WEEKDAY_FACTOR = np.array([0.9, 0.9, 0.95, 1.0, 1.05, 1.15, 1.1])
"""Visits by weekday (Monday first): a little more at the end of the week."""

HOURLY = np.array(
    [0.5, 0.3, 0.2, 0.15, 0.15, 0.3, 0.8, 1.5, 2.5, 3.0, 3.2, 3.5,
     4.0, 3.8, 3.5, 3.4, 3.6, 4.0, 4.5, 5.2, 5.5, 4.8, 3.2, 1.5]
)  # fmt: skip
"""Visits by local hour: little at night, a lunch peak, the evening peak."""

CURRENCY = "USD"


@dataclass(frozen=True)
class Calendar:
    """The window's days: how busy each is, and each place's UTC offset on it."""

    day0: int
    """Midnight UTC of the window's first day, seconds since the epoch."""
    grid: np.ndarray
    """Day boundaries (seconds)."""
    cumulative: np.ndarray
    """Cumulative busyness at each boundary: sessions are spread in proportion to it."""
    offsets: np.ndarray
    """UTC offset in seconds, per place and day."""


def make_calendar(start: int, end: int) -> Calendar:
    """Weekday and seasonal busyness and timezone offsets for the window [start, end)."""
    day0 = start // DAY * DAY
    days = (end - day0) // DAY + 2
    grid = day0 + np.arange(days + 1, dtype=np.int64) * DAY
    dates = [datetime.fromtimestamp(int(t), UTC) for t in grid[:-1]]
    weekday = WEEKDAY_FACTOR[[d.weekday() for d in dates]]
    # Shops are busiest before Christmas and quietest in late summer.
    season = 1.0 + 0.25 * np.cos(2 * np.pi * (np.array([d.timetuple().tm_yday for d in dates]) - 350) / 365.25)
    cumulative = np.concatenate([[0.0], np.cumsum(weekday * season)])
    zones = {p.timezone: ZoneInfo(p.timezone) for p in PLACES}
    offsets = np.array(
        [[_offset(zones[p.timezone], int(t) + DAY // 2) for t in grid[:-1]] for p in PLACES], dtype=np.int64
    )
    return Calendar(day0=day0, grid=grid, cumulative=cumulative, offsets=offsets)


def _offset(zone: ZoneInfo, moment: int) -> int:
    delta = datetime.fromtimestamp(moment, UTC).astimezone(zone).utcoffset()
    return int(delta.total_seconds()) if delta else 0


@dataclass
class Sessions:
    """The sessions of one block, sorted by customer then time, and their random draws."""

    owner: np.ndarray
    start: np.ndarray
    views: np.ndarray
    """Product index of every view, all sessions concatenated."""
    view_count: np.ndarray
    in_cart: np.ndarray
    quantity: np.ndarray
    gaps: np.ndarray
    """Seconds between one view and the next."""
    outcome: np.ndarray
    """Per session: draws deciding checkout, purchase and a delay (3 columns in [0, 1))."""
    delay: np.ndarray
    """Seconds until a delayed purchase."""


def draw_sessions(rng: np.random.Generator, block: CustomerBlock, calendar: Calendar, catalog: Catalog) -> Sessions:
    """Sessions of every customer of the block, with their views and outcomes."""
    cum, grid = calendar.cumulative, calendar.grid
    lo = np.interp(block.active_from, grid, cum)
    hi = np.interp(block.active_to, grid, cum)
    owner = np.repeat(np.arange(len(block)), rng.poisson(block.rate * np.maximum(hi - lo, 0.0)))
    moment = np.interp(lo[owner] + rng.random(len(owner)) * (hi - lo)[owner], cum, grid)
    day = ((moment - calendar.day0) // DAY).astype(np.int64)
    hour = np.searchsorted(np.cumsum(HOURLY / HOURLY.sum()), rng.random(len(owner)), side="right")
    local = hour * 3600 + rng.integers(0, 3600, len(owner))
    start = calendar.day0 + day * DAY + local - calendar.offsets[block.place[owner], day]
    keep = (start >= block.active_from[owner]) & (start < block.active_to[owner])
    owner, start = owner[keep], start[keep]
    order = np.lexsort((start, owner))
    owner, start = owner[order], start[order]
    view_count = np.minimum(rng.geometric(0.38, len(owner)), 12)
    view_owner = np.repeat(owner, view_count)
    category = (block.affinity_cum[view_owner] < rng.random((len(view_owner), 1))).sum(axis=1)
    category = np.minimum(category, len(catalog.category_names) - 1)
    cart_rate = np.array([a.cart_rate for a in ARCHETYPES])[block.archetype[view_owner]]
    qty_draw = rng.random(len(view_owner))
    return Sessions(
        owner=owner,
        start=start,
        views=catalog.pick(category, rng.random(len(view_owner))),
        view_count=view_count,
        in_cart=rng.random(len(view_owner)) < cart_rate,
        quantity=1 + (qty_draw > 0.8) + (qty_draw > 0.95),
        gaps=rng.integers(15, 180, len(view_owner)),
        outcome=rng.random((len(owner), 3)),
        delay=(3600 + rng.exponential(20 * 3600, len(owner))).astype(np.int64),
    )


class Shopper:
    """Turns one block's sessions into each customer's track messages."""

    def __init__(self, block: CustomerBlock, sessions: Sessions, catalog: Catalog, names: EventNames, key: str):
        self.block = block
        self.names = names
        self.key = key
        self.lines = [catalog.line(i) for i in range(len(catalog.products))]
        self.owner = sessions.owner.tolist()
        self.start = sessions.start.tolist()
        self.views = sessions.views.tolist()
        self.in_cart = sessions.in_cart.tolist()
        self.quantity = sessions.quantity.tolist()
        self.gaps = sessions.gaps.tolist()
        self.outcome = sessions.outcome.tolist()
        self.delay = sessions.delay.tolist()
        self.first_view = np.concatenate([[0], np.cumsum(sessions.view_count)]).tolist()
        self.archetype = [ARCHETYPES[a] for a in block.archetype.tolist()]
        self.active_to = block.active_to.tolist()

    def messages_by_customer(self, user_ids: list[str]) -> list[list[Message]]:
        """Each customer's track messages in time order (message ids still blank)."""
        result: list[list[Message]] = [[] for _ in range(len(self.block))]
        orders = [0] * len(self.block)
        for s, k in enumerate(self.owner):
            if k < len(user_ids):
                self._session(s, k, user_ids[k], result[k], orders)
        by_time = attrgetter("timestamp")
        for messages in result:
            messages.sort(key=by_time)  # a purchase finished days later lands among later sessions
        return result

    def _session(self, s: int, k: int, user_id: str, out: list[Message], orders: list[int]) -> None:
        names = self.names
        archetype = self.archetype[k]
        active_to = self.active_to[k]
        cart_id = f"cart-{self.key}-{self.block.first + k}-{s}"
        t = self.start[s]
        cart: list[dict[str, Any]] = []
        for v in range(self.first_view[s], self.first_view[s + 1]):
            line = self.lines[self.views[v]]
            props = {**line, "quantity": 1, "cart_id": cart_id}
            out.append(Message("track", "", user_id, None, t * 1000, names.product_view, props))
            t += self.gaps[v]
            if self.in_cart[v]:
                item = {**line, "quantity": self.quantity[v]}
                props = {**item, "cart_id": cart_id}
                out.append(Message("track", "", user_id, None, t * 1000, names.add_to_cart, props))
                cart.append(item)
                t += self.gaps[v] // 2
        checkout, purchase, delayed = self.outcome[s]
        if not cart or checkout >= archetype.checkout_rate:
            return  # no cart, or an abandoned one
        if delayed < archetype.delayed_share:
            t += self.delay[s]  # comes back later to finish; may lapse or run out of window first
            if t >= active_to:
                return
        props = {"cart_id": cart_id, "products": cart, "currency": CURRENCY}
        out.append(Message("track", "", user_id, None, t * 1000, names.checkout_started, props))
        if purchase < archetype.purchase_rate and t + 90 < active_to:
            props = self._order(k, orders, cart)
            out.append(Message("track", "", user_id, None, (t + 90) * 1000, names.purchase, props))

    def _order(self, k: int, orders: list[int], cart: list[dict[str, Any]]) -> dict[str, Any]:
        orders[k] += 1
        revenue = round(sum(item["price"] * item["quantity"] for item in cart), 2)
        return {
            "order_id": f"ord-{self.key}-{self.block.first + k}-{orders[k]}",
            "revenue": revenue,
            "currency": CURRENCY,
            "products": cart,
        }
