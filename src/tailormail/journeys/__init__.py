"""The journeys package (see DESIGN.md)."""
