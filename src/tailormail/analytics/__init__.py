"""The analytics package (see DESIGN.md)."""
