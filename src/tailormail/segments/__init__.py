"""The segments package (see DESIGN.md)."""
