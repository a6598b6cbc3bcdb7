"""The content package (see DESIGN.md)."""
