"""The only package that opens database connections: schema, migrations, queries."""

from tailormail.store.engine import Store

__all__ = ["Store"]
