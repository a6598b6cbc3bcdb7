"""Thin HTTP adapter: parse, call the library once, format."""
