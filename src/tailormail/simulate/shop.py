"""The simulated shop as a whole: a spec, its messages, and where they go.

A ``ShopSpec`` (seed, customers, days, end) fully decides the data.  Messages
come out customer by customer, one block of ``BLOCK`` customers at a time, so
memory stays bounded whatever the size; the store path hands them to
``bulk_ingest`` and the file path to a batched writer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

import numpy as np

from tailormail.clock import to_ms
from tailormail.config import EventNames
from tailormail.errors import ValidationError
from tailormail.ingest.messages import Message
from tailormail.simulate.behaviour import Calendar, Shopper, draw_sessions, make_calendar
from tailormail.simulate.catalog import Catalog, build_catalog
from tailormail.simulate.customers import BLOCK, DAY, CustomerBlock, make_block
from tailormail.simulate.places import PLACES

Progress = Callable[[int], None]
"""Called with the number of customers just finished."""

MAX_DAYS = 3660


@dataclass(frozen=True)
class ShopSpec:
    """Everything that decides a simulated shop; equal specs give identical data."""

    customers: int
    days: int
    seed: int
    end: int
    """End of the window, seconds since the epoch (exclusive)."""
    events: EventNames = field(default_factory=EventNames)

    def __post_init__(self) -> None:
        if self.customers < 1:
            raise ValidationError("customers must be at least 1", field="customers", hint="e.g. --customers 5000")
        if not 1 <= self.days <= MAX_DAYS:
            raise ValidationError(f"days must be 1 to {MAX_DAYS}", field="days", hint="e.g. --days 90")
        if self.seed < 0:
            raise ValidationError("seed must be 0 or more", field="seed")

    @property
    def start(self) -> int:
        """Start of the window (seconds since the epoch)."""
        return self.end - self.days * DAY

    @property
    def key(self) -> str:
        """A short digest of the window and seed; every messageId and order id carries it."""
        text = f"{self.seed}:{self.days}:{self.end}"
        return hashlib.sha256(text.encode()).hexdigest()[:8]

    @classmethod
    def ending(
        cls, end: datetime, *, customers: int, days: int, seed: int, events: EventNames | None = None
    ) -> ShopSpec:
        """A spec whose window ends at ``end``, truncated to the whole hour.

        Truncating makes two runs within the same hour the same shop, so
        simulating again into a workspace adds nothing.
        """
        seconds = to_ms(end) // 1000 // 3600 * 3600
        return cls(customers=customers, days=days, seed=seed, end=seconds, events=events or EventNames())


@dataclass
class Customer:
    """One simulated customer's messages (identify first, then events in time order)."""

    user_id: str
    messages: list[Message]


class Shop:
    """A simulated shop: its catalog, and its customers' messages block by block."""

    def __init__(self, spec: ShopSpec) -> None:
        self.spec = spec
        self.catalog: Catalog = build_catalog(spec.seed)
        self.key = spec.key

    @cached_property
    def calendar(self) -> Calendar:
        """Busyness and timezone offsets of the window's days."""
        return make_calendar(self.spec.start, self.spec.end)

    def blocks(self) -> Iterator[tuple[CustomerBlock, list[Customer]]]:
        """Each block of customers with their messages; the last block is cut to size."""
        for number in range(self.block_count):
            yield self.block(number)

    @property
    def block_count(self) -> int:
        """How many blocks of ``BLOCK`` customers the shop has (the last one may be cut)."""
        return (self.spec.customers + BLOCK - 1) // BLOCK

    def block(self, number: int) -> tuple[CustomerBlock, list[Customer]]:
        """Block ``number`` with its customers' messages; each block has its own random streams."""
        spec = self.spec
        block = make_block(spec.seed, number, spec.start, spec.end, self.catalog)
        rng = np.random.default_rng([spec.seed, 0x5E55, number])
        sessions = draw_sessions(rng, block, self.calendar, self.catalog)
        user_ids = [block.user_id(k, spec.seed) for k in range(min(BLOCK, spec.customers - block.first))]
        tracks = Shopper(block, sessions, self.catalog, spec.events, self.key).messages_by_customer(user_ids)
        return block, [self._customer(block, k, user_id, tracks[k]) for k, user_id in enumerate(user_ids)]

    def messages(self, progress: Progress | None = None) -> Iterator[Message]:
        """Every message of the shop, customer by customer."""
        for _block, customers in self.blocks():
            for customer in customers:
                yield from customer.messages
            if progress:
                progress(len(customers))

    def _customer(self, block: CustomerBlock, k: int, user_id: str, tracks: list[Message]) -> Customer:
        # Zero-padded so ids sort in the order they are written: the unique index only appends.
        prefix = f"sim-{self.key}-{block.first + k:07d}-"
        place = PLACES[int(block.place[k])]
        identify = Message(
            type="identify",
            message_id=prefix + "00000",
            user_id=user_id,
            anonymous_id=None,
            timestamp=int(block.active_from[k]) * 1000,
            traits=block.traits(k),
            context={"timezone": place.timezone, "locale": f"{place.language}-{place.country}"},
        )
        for n, message in enumerate(tracks, start=1):
            message.message_id = f"{prefix}{n:05d}"  # numbered in time order: stable for a given spec
        return Customer(user_id, [identify, *tracks])
