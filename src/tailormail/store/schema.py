"""The foundation tables: profiles, identity links, events, products, API keys.

Times are integers, milliseconds since the Unix epoch in UTC: they compare and
index the same way on SQLite and PostgreSQL, and window arithmetic in segment
SQL stays plain integer arithmetic.  Later domains define their tables in their
own ``schema_*`` modules on the same ``metadata``.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()
"""All of tailormail's tables, across every domain."""

# An auto-incrementing 64-bit key: SQLite only autoincrements INTEGER PRIMARY KEY.
Id = BigInteger().with_variant(Integer(), "sqlite")

profiles = Table(
    "profiles",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("user_id", String(255), unique=True, nullable=True, doc="null: anonymous"),
    Column("traits", JSON, nullable=False, default=dict),
    Column("updated_at", BigInteger, nullable=False),
    # Real-time segments read when each person of a batch last changed (traits, merge, creation):
    # from this narrow index rather than from the wide rows, nine to a page, which at a million
    # profiles are mostly outside the page cache.
    Index("ix_profiles_clock", "id", "updated_at"),
)

# When a person was first and last seen, apart from the wide profile row: every ingested
# batch moves last_seen for each person in it, and a profile row (traits and all) holds
# nine to a page where these hold over a hundred.  On a shop of 50,000 a batch of 1,000
# people wrote about 900 pages of profiles and writes about 260 of this table; of a million,
# each person still takes a page of it, but a table a twelfth the size stays in cache.
profile_seen = Table(
    "profile_seen",
    metadata,
    Column("profile_id", Id, ForeignKey("profiles.id", ondelete="CASCADE"), primary_key=True, autoincrement=False),
    Column("first_seen", BigInteger, nullable=False),
    Column("last_seen", BigInteger, nullable=False),
)

identity_links = Table(
    "identity_links",
    metadata,
    Column("anonymous_id", String(255), primary_key=True),
    Column("profile_id", Id, ForeignKey("profiles.id", ondelete="CASCADE"), nullable=False),
    Column("linked_at", BigInteger, nullable=False),
    Index("ix_identity_links_profile", "profile_id"),
)

events = Table(
    "events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("message_id", String(255), nullable=False, unique=True),
    Column("profile_id", Id, nullable=False),
    Column("anonymous_id", String(255), nullable=True),
    Column("type", String(16), nullable=False),
    Column("event", String(255), nullable=True, doc="track: event name; page/screen: name"),
    Column("properties", JSON, nullable=False, default=dict),
    Column("context", JSON, nullable=True),
    Column("revenue", Float, nullable=True, doc="properties.revenue (or total), for aggregates"),
    Column("ts", BigInteger, nullable=False, doc="when it happened (ms)"),
    Column("received_at", BigInteger, nullable=False, doc="when we stored it (ms)"),
    # Segment rules ask "did this person do E in a window" and "who did E in a window".
    Index("ix_events_profile_event_ts", "profile_id", "event", "ts"),
    Index("ix_events_event_ts", "event", "ts", "profile_id"),
)

products = Table(
    "products",
    metadata,
    Column("product_id", String(255), primary_key=True),
    Column("name", String(500), nullable=False),
    Column("category", String(255), nullable=True),
    Column("price", Float, nullable=True),
    Column("url", Text, nullable=True),
    Column("image_url", Text, nullable=True),
    Column("properties", JSON, nullable=False, default=dict),
    Column("updated_at", BigInteger, nullable=False),
    Index("ix_products_category", "category"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False),
    Column("prefix", String(32), nullable=False, doc="the first characters, to recognise a key"),
    Column("key_hash", String(64), nullable=False, unique=True, doc="SHA-256 of the key"),
    Column("scope", String(16), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("last_used_at", BigInteger, nullable=True),
    Column("revoked_at", BigInteger, nullable=True),
)

schema_migrations = Table(
    "schema_migrations",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("name", String(255), nullable=False),
    Column("applied_at", BigInteger, nullable=False),
)
