"""Ingestion: Segment-compatible payloads, bulk import, stream sources, identity merge."""
