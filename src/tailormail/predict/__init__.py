"""The predict package (see DESIGN.md)."""
