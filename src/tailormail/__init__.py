"""tailormail: a self-hosted engine for data-driven email personalization."""

__version__ = "0.1.0"
